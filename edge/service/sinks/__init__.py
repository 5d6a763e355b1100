"""Where pose messages go: an MQTT broker, or stdout (``--mqtt-host none``)."""

from __future__ import annotations

from ..config import Config
from .delivery import Delivery
from .mqtt import MqttPublisher, PublishError
from .payload import decode_binary, pose_binary, pose_json
from .stdout import StdoutPublisher

__all__ = [
    "Delivery", "MqttPublisher", "PublishError", "StdoutPublisher", "decode_binary", "make_publisher",
    "pose_binary", "pose_json",
]  # fmt: skip


def make_publisher(cfg: Config):
    if cfg.mqtt.host.lower() == "none":
        return StdoutPublisher()
    spool = None
    if cfg.spool_enabled:
        from .spool import Spool

        spool = Spool(
            cfg.spool_dir(),
            max_bytes=int(cfg.spool.max_mb * 2**20),
            max_age_s=cfg.spool.max_age_s,
            fsync_interval_s=cfg.spool.fsync_interval,
        )
    return MqttPublisher(cfg.mqtt, cfg.device_id, spool)
