"""Sinks: where the daemon's results go (``base.Sink`` is the interface). The pose sink is an
MQTT broker, or stdout with ``--mqtt-host none``; with a broker, the Home Assistant device
(``homeassistant.discovery``) rides on its connection; the live view (``live.py``: web page,
MJPEG, Prometheus metrics) is one more with ``http.enabled``."""

from __future__ import annotations

from ..config import Config, ConfigError, spool_message
from .base import FrameResult, Sink
from .delivery import Delivery
from .mqtt import MqttPublisher, PublishError
from .payload import decode_binary, encode, pose_binary, pose_json
from .stdout import StdoutPublisher

__all__ = [
    "Delivery", "FrameResult", "MqttPublisher", "PublishError", "Sink", "StdoutPublisher",
    "decode_binary", "encode", "make_sinks", "pose_binary", "pose_json",
]  # fmt: skip


def pose_sink(cfg: Config) -> Sink:
    """MQTT, or stdout for ``mqtt.host = "none"``."""
    if cfg.mqtt.host.lower() == "none":
        return StdoutPublisher(device=cfg.device_id)
    spool = None
    if cfg.spool_enabled:
        from .spool import Spool

        try:
            spool = Spool(
                cfg.spool_dir(),
                max_bytes=int(cfg.spool.max_mb * 2**20),
                max_age_s=cfg.spool.max_age_s,
                fsync_interval_s=cfg.spool.fsync_interval,
            )
        except OSError as exc:  # checked at load (config.spool_problem); changed since
            why = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            raise ConfigError(spool_message(cfg, cfg.spool_dir(), why)) from None
    return MqttPublisher(cfg.mqtt, cfg.device_id, spool)


def make_sinks(cfg: Config) -> list[Sink]:
    """Every sink the configuration asks for, the pose sink first."""
    pose = pose_sink(cfg)
    sinks = [pose]
    if cfg.homeassistant.discovery and isinstance(pose, MqttPublisher):
        from .homeassistant import HomeAssistantDevice

        sinks.append(HomeAssistantDevice(cfg, pose))
    if cfg.http.enabled:
        from .live import LiveView  # prometheus_client and the server: only when asked for

        sinks.append(LiveView(cfg))
    return sinks
