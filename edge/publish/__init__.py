"""Where pose messages go: an MQTT broker, or stdout (``--mqtt-host none``)."""

from __future__ import annotations

from ..config import MqttConfig
from .mqtt import MqttPublisher, PublishError
from .payload import decode_binary, pose_binary, pose_json
from .stdout import StdoutPublisher

__all__ = [
    "MqttPublisher", "PublishError", "StdoutPublisher", "decode_binary", "make_publisher",
    "pose_binary", "pose_json",
]  # fmt: skip


def make_publisher(cfg: MqttConfig, device_id: str):
    if cfg.host.lower() == "none":
        return StdoutPublisher()
    return MqttPublisher(cfg, device_id)
