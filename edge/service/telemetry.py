"""Run-time figures for the stats topic: throughput, per-stage latency, drops, CPU, memory, heat."""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import numpy as np

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency; keep stats working without it
    psutil = None

from ..pose.board import soc_temperature, throttled_flags


class Telemetry:
    """Collects per-frame stage timings (ms) and summarises them over a sliding window.

    ``record`` runs in the pipeline thread and ``summary`` in the stats thread: a lock keeps the
    window consistent."""

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self.samples: dict[str, deque] = {}
        self.window = window
        self.frames = 0
        self.bad_frames = 0
        self.started = time.monotonic()
        self._last_frames = 0
        self._last_time = self.started
        self._process = psutil.Process(os.getpid()) if psutil else None
        if self._process is not None:
            self._process.cpu_percent(None)  # start the CPU measurement interval

    def record(self, timings: dict[str, float]) -> None:
        with self._lock:
            self.frames += 1
            for stage, ms in timings.items():
                self.samples.setdefault(stage, deque(maxlen=self.window)).append(ms)

    def summary(self) -> dict:
        with self._lock:
            now = time.monotonic()
            frames = self.frames
            window = {stage: np.array(v) for stage, v in self.samples.items() if v}
        elapsed = max(now - self._last_time, 1e-9)
        fps = (frames - self._last_frames) / elapsed
        self._last_frames, self._last_time = frames, now
        latency = {
            stage: {
                "p50": round(float(np.percentile(v, 50)), 2),
                "p95": round(float(np.percentile(v, 95)), 2),
            }
            for stage, v in window.items()
        }
        out = {
            "uptime_s": round(now - self.started, 1),
            "frames": frames,
            "fps": round(fps, 2),
            "bad_frames": self.bad_frames,
            "latency_ms": latency,
            "cpu_percent": None,
            "rss_mb": None,
            "threads": None,
            "temperature_c": soc_temperature(),
            "throttled": throttled_flags(),
        }
        if self._process is not None:
            out["cpu_percent"] = round(self._process.cpu_percent(None), 1)
            out["rss_mb"] = round(self._process.memory_info().rss / 2**20, 1)
            out["threads"] = self._process.num_threads()
        return out
