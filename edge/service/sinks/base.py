"""The one small interface between the daemon and its outputs.

The daemon hands every sink each frame's result, every status change and every stats document,
and knows nothing else of them: MQTT, stdout, the Home Assistant device and the live view are
sinks, and adding one touches no other. A sink's methods are called from the daemon's threads
(``frame`` from the pipeline's, ``stats`` from the stats thread's): each returns quickly and never
raises for a passing fault (it counts and logs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...pose import Pose
from .delivery import Delivery


@dataclass(frozen=True)
class FrameResult:
    """One processed frame."""

    index: int  # the source's frame number
    ts: float  # capture time, epoch seconds
    width: int
    height: int
    poses: list[Pose]
    image: np.ndarray = field(repr=False)  # BGR; valid only during the call (buffers are reused)
    timings: dict[str, float] = field(default_factory=dict)  # ms per pipeline stage
    # False: not looked at (``pipeline.idle_detect_hz``: nobody tracked, no scan due); poses empty
    scanned: bool = True


class Sink:
    """Base class: every method does nothing unless a sink needs it."""

    name = "sink"  # its counters appear under this key in the stats document

    def start(self) -> None:
        """Before the first frame."""

    def frame(self, result: FrameResult) -> None:
        """Each processed frame, in order."""

    def set_status(self, status: str) -> None:
        """``online``, ``degraded: <why>`` (the camera is being reopened); ``offline`` is
        implied by ``stop``."""

    def stats(self, stats: dict) -> None:
        """The stats document, every ``mqtt.stats_interval`` seconds."""

    def stop(self) -> None:
        """After the last frame: deliver what is queued (briefly), release what is held."""

    def report(self) -> dict | None:
        """This sink's own counters for the stats document (None: nothing to report)."""
        return None

    def delivery(self, final: bool = False) -> Delivery | None:
        """What became of the pose messages, for sinks that deliver them (the exit summary and
        the 'delivered nothing' exit code); None for the others."""
        return None

    @property
    def fatal(self) -> str | None:
        """A fault that retrying cannot fix (refused credentials, a broker certificate that fails
        verification): the daemon stops, exit 5."""
        return None

    @property
    def broken(self) -> str | None:
        """A fault the sink cannot recover from by itself (a thread of its own died): the daemon
        stops, exit 1 (systemd restarts it)."""
        return None
