"""Run-time figures for the stats topic: throughput, per-stage latency, drops, CPU, memory, heat."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency; keep stats working without it
    psutil = None

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")


def _cpuinfo(keys: tuple[str, ...]) -> str | None:
    """The value of the first /proc/cpuinfo line starting with one of ``keys`` (lower case)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(keys):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``Hardware`` on older ARM kernels), else the
    architecture."""
    return _cpuinfo(("model name", "hardware")) or platform.processor() or platform.machine()


# CPU features that decide which XNNPACK kernels run, int8 ones above all (VNNI on x86, the dot
# product and i8mm on ARM): two hosts that report the same model name can differ in these.
ISA_FEATURES = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_fp16", "amx_int8",
    "asimd", "asimdhp", "asimddp", "i8mm", "sve", "sve2",
)  # fmt: skip


def cpu_isa() -> str:
    """LLVM's name for the host core (``znver3``, ``cortex-a76``) and the ``ISA_FEATURES`` the
    kernel reports, e.g. ``znver3 avx2 fma``. A VM shows one model name (``AMD EPYC``) on hosts
    whose int8 speed differs twofold; this tells them apart."""
    try:
        from llvmlite import binding

        name = binding.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - llvmlite comes with numba; the flags alone still help
        name = platform.machine()
    flags = set((_cpuinfo(("flags", "features")) or "").split())
    return " ".join([name, *(f for f in ISA_FEATURES if f in flags)])


def board_model() -> str | None:
    """The board's name from the device tree (``Raspberry Pi 5 Model B Rev 1.0``), else None."""
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n")
    except OSError:
        return None


def soc_temperature() -> float | None:
    """SoC temperature in degrees C where the kernel exposes it, else None."""
    try:
        return round(int(THERMAL.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def throttled_flags() -> int | None:
    """Raspberry Pi firmware throttling bits (under-voltage, capped, throttled), else None."""
    try:
        return int(THROTTLED.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


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
