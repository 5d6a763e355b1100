"""What this board is: CPU model and instruction set, board name, SoC temperature, throttling.

Probes read from /proc and /sys, each returning None (or a fallback) where the kernel has no such
file. The pose library uses them to key its cached choice of model variant (``variants.py``); the
service reports them in its stats and ``bench`` reports. A public module of the library.
"""

from __future__ import annotations

import platform
from pathlib import Path

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


def has_fp16_arithmetic(cpuinfo: str | None = None) -> bool:
    """Whether the cores can run XNNPACK's fp16 kernels natively: ARMv8.2 FP16 arithmetic, which
    /proc/cpuinfo (text ``cpuinfo``, default this machine's) reports on ARM as ``fphp`` (scalar)
    and ``asimdhp`` (NEON), e.g. the Pi 5's Cortex-A76, not the Pi 4's Cortex-A72. Every core's
    ``Features`` line must have both. Never true on x86: XNNPACK counts no x86 core as native
    fp16 (not even one with ``avx512_fp16``) and runs a model marked for fp16 in fp32 there."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    lines = [
        line.split(":", 1)[1].split()
        for line in cpuinfo.splitlines()
        if ":" in line and line.split(":", 1)[0].strip().lower() == "features"
    ]
    return bool(lines) and all({"fphp", "asimdhp"} <= set(flags) for flags in lines)


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
