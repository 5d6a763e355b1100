"""Per-stage timing for one frame: ``with sw("stage"): ...`` accumulates milliseconds."""

from __future__ import annotations

import time
from contextlib import contextmanager


class Stopwatch:
    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - t0) * 1000.0
