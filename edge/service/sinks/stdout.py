"""``--mqtt-host none``: pose messages as JSON lines on stdout; status and stats go to the log."""

from __future__ import annotations

import json
import logging
import sys

from .base import FrameResult, Sink
from .delivery import Delivery
from .payload import encode

log = logging.getLogger(__name__)


class StdoutPublisher(Sink):
    name = "publish"  # the pose sink's counters: ``publish`` in stats, as MQTT's

    def __init__(self, stream=None, encoding: str = "json", device: str = ""):
        self.stream = stream or sys.stdout
        self.encoding = encoding
        self.device = device
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        log.info("publishing pose messages on stdout (--mqtt-host none)")

    def publish_pose(self, payload: bytes, ts: float | None = None) -> None:
        try:
            self.stream.write(payload.decode() + "\n")
            self.stream.flush()
            self.sent += 1
        except (BrokenPipeError, ValueError):
            self.failed += 1

    def frame(self, result: FrameResult) -> None:
        self.publish_pose(encode(result, "json", self.device), result.ts)  # text lines: JSON

    def stats(self, stats: dict) -> None:
        log.info("stats %s", json.dumps(stats, separators=(",", ":")))

    def set_status(self, status: str) -> None:
        log.info("status %s", status)

    def stop(self, timeout: float = 0.0) -> None:
        log.info("status offline")

    def delivery(self, final: bool = False) -> Delivery:
        """Pose messages written to stdout count as delivered."""
        return Delivery(
            produced=self.sent + self.failed,
            delivered=self.sent,
            dropped={"stdout": self.failed},
            verb="written to stdout",
        )

    def report(self) -> dict:
        return {"connected": True, "sent": self.sent, "dropped": self.failed,
                "pose": self.delivery().to_dict()}  # fmt: skip
