"""Per-stage timing for one frame: ``with sw("stage"): ...`` accumulates milliseconds.

A plain context-manager class rather than ``contextlib.contextmanager``: no generator per stage
(this runs several times a frame, right after an invoke has evicted the interpreter's code)."""

from __future__ import annotations

from time import perf_counter


class _Lap:
    __slots__ = ("ms", "stage", "t0")

    def __init__(self, ms: dict[str, float], stage: str):
        self.ms = ms
        self.stage = stage

    def __enter__(self) -> None:
        self.t0 = perf_counter()

    def __exit__(self, *exc_info) -> None:
        ms, stage = self.ms, self.stage
        ms[stage] = ms.get(stage, 0.0) + (perf_counter() - self.t0) * 1000.0


class Stopwatch:
    __slots__ = ("ms",)

    def __init__(self):
        self.ms: dict[str, float] = {}

    def __call__(self, stage: str) -> _Lap:
        return _Lap(self.ms, stage)
