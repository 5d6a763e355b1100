"""What every frame source gives the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class SourceError(RuntimeError):
    """The source cannot be opened or has failed; the message says what to do."""


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8, BGR
    index: int  # 0-based position in the source (gaps mean frames were dropped)
    ts: float  # capture time, epoch seconds
    mono_ns: int  # capture time on CLOCK_MONOTONIC, for latency
    pts_ms: float = 0.0  # presentation time (ms) that drives smoothing: media time for files
    release: Callable[[], None] | None = None  # hands a zero-copy buffer back to its owner

    def done(self) -> None:
        if self.release is not None:
            release, self.release = self.release, None
            release()


class Source:
    """A stream of frames. ``read()`` blocks for the next frame and returns None at the end.

    ``live`` sources (cameras, network streams, files paced in real time) produce frames whether
    or not the pipeline keeps up, so the daemon keeps only the newest; other sources (files,
    folders) wait for the pipeline, and every frame is processed.
    """

    live: bool = True
    description: str = ""

    def open(self) -> None:
        """Open (or reopen) the device; raises SourceError."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device. Safe to call more than once."""
