"""Instructions retired per model invoke on an emulated Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5).

    .venv/bin/python benchmarks/icount.py                      # every model present, both cores
    .venv/bin/python benchmarks/icount.py --models detector,full --cpus cortex-a76 --json out.json
    .venv/bin/python benchmarks/icount.py --anchors            # also MobileNet v1/v2 (see below)
    .venv/bin/python benchmarks/icount.py --kernels            # also instructions per function
    .venv/bin/python benchmarks/icount.py --check              # within 2 % of icount/expected.json

A measure that a busy host does not move: each model runs under Debian's ``qemu-aarch64``
(``qemu-user``, which loads TCG plugins; ``qemu-user-static`` does not) with ``-cpu cortex-a72``
or ``-cpu cortex-a76`` and the counting plugin ``benchmarks/icount/insn_count.c``, in a Debian
Bookworm arm64 userland with the aarch64 wheels of the interpreter (the LiteRT and numpy versions
of this venv), one interpreter thread. The guest brackets each ``invoke()`` with two marker
system calls (``close()`` on two descriptors no process has open); the plugin counts the
instructions retired between them, in total and per class (SIMD/FP, loads and stores, float FMLA,
int8 dot product, fp16 arithmetic). Models as the pipeline runs them: the detector as shipped,
each estimator cut to the outputs the pipeline reads (segmentation head pruned), the int8
estimator when ``./install.sh --int8`` has built it, the fp16 estimators (``lite-fp16``,
``full-fp16``: the float model marked for fp16 inference, ``edge/pose/fp16.py``; fp16 kernels on
the A76 only, float's kernels and counts on the A72). Inputs are fixed pseudo-random tensors: the
kernels' instruction counts do not depend on the values.

XNNPACK picks its kernels by the features the emulated core reports (qemu sets the aarch64
HWCAPs by ``-cpu``; the guest gets a matching Raspberry Pi ``/proc/cpuinfo``, without which
LiteRT's cpuinfo cannot start). The ``dot`` and ``fp16`` classes show which family ran (on the
A76 the int8 GEMM uses SDOT, the A72 has none); ``--kernels`` names the functions: the ELF
symbols of LiteRT's library (it keeps XNNPACK's kernel names), found from the guest's
``/proc/self/maps`` and the plugin's per-block counts.

``--anchors`` also counts MobileNet v1 and v2 (1.0, 224x224, float32, random weights, built here
with LiteRT's flatbuffer schema: the networks of XNNPACK's published Raspberry Pi 4 timings), the
calibration of the Pi projection (docs/performance.md says how).

Needs root (apt-get install qemu-user debootstrap gcc, debootstrap) the first time; the cache
(``$BLAZEPOSE_EDGE_ICOUNT_CACHE``, default ``~/.cache/blazepose-edge/icount``) then holds the
userland, the wheels, QEMU's plugin header (from the Debian source of the installed qemu-user,
checked against its .dsc) and the built plugin (about 400 MB in all). A warm run of every model
and the anchors took 5-8 minutes per core on a busy 2-core host; the counts repeat to within
0.003 % (the FMLA and SDOT counts exactly). Too slow for CI: ``--check`` is for a manual run
after a LiteRT or model change.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN_SRC = HERE / "icount" / "insn_count.c"
EXPECTED = HERE / "icount" / "expected.json"
# the plugin's ICOUNT_MAGIC: close(MAGIC) starts a span, close(MAGIC + 1) ends it
MAGIC = 0x1C07A000
CPUS = ("cortex-a72", "cortex-a76")
CLASSES = ("total", "simd_fp", "ldst", "fmla", "dot", "fp16")

# --- the guest side (runs under qemu: stdlib, numpy and the interpreter only) -------------------


def _mark(code: int) -> None:
    with contextlib.suppress(OSError):
        os.close(MAGIC + code)


def guest(spec_path: str) -> None:
    import platform

    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    spec = json.loads(Path(spec_path).read_text())
    span = 0
    report = {"machine": platform.machine(), "numpy": np.__version__, "models": []}
    try:
        from importlib.metadata import version

        report["litert"] = version("ai-edge-litert")
    except Exception:  # informative only
        report["litert"] = "?"
    # marker overhead: a span with nothing in it
    for _ in range(2):
        _mark(0)
        _mark(1)
        span += 1
    report["empty_spans"] = [0, 1]
    for item in spec["models"]:
        t0 = time.monotonic()
        interpreter = Interpreter(model_path=item["path"], num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        rng = np.random.default_rng(0)
        shape = tuple(int(d) for d in detail["shape"])
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            lo, hi = item.get("input_range", (0.0, 1.0))
            data = rng.uniform(lo, hi, size=shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        interpreter.set_tensor(detail["index"], data)
        for _ in range(spec["warmup"]):
            interpreter.invoke()
        spans = []
        for _ in range(spec["invokes"]):
            _mark(0)
            interpreter.invoke()
            _mark(1)
            spans.append(span)
            span += 1
        report["models"].append(
            {
                "label": item["label"],
                "spans": spans,
                "input": [list(shape), dtype.name],
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
        del interpreter
    if spec.get("maps"):
        maps = Path("/proc/self/maps").read_text().splitlines()
        report["maps"] = [line for line in maps if line.split()[1][2] == "x"]
    print(json.dumps(report))


# --- the host side ------------------------------------------------------------------------------


def say(msg: str) -> None:
    print(f"icount: {msg}", file=sys.stderr, flush=True)


def key(*parts: object) -> str:
    return hashlib.sha256(" ".join(map(str, parts)).encode()).hexdigest()[:12]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 or one-line sources)."""
    found = []
    for path in Path("/etc/apt").glob("sources.list.d/*.sources"):
        found += re.findall(r"^URIs:\s*(\S+)", path.read_text(), re.M)
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt").glob("sources.list.d/*.list")]:
        if path.is_file():
            found += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", path.read_text(), re.M)
    for uri in found:
        if "security" not in uri and "updates" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def ensure_tools() -> None:
    need = []
    if not shutil.which("qemu-aarch64"):
        need.append("qemu-user")
    if not shutil.which("debootstrap"):
        need.append("debootstrap")
    if not shutil.which("gcc"):
        need.append("gcc")
    if not need:
        return
    if os.geteuid() != 0:
        sys.exit(f"icount: needs {' '.join(need)}: apt-get install them as root")
    say(f"apt-get install {' '.join(need)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *need],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def plugin_header(cache: Path) -> Path:
    """QEMU's qemu-plugin.h for the installed qemu-user, from its Debian source package: the
    .dsc of the installed version, then the orig tarball it names, checked by SHA-256."""
    src_version = subprocess.run(
        ["dpkg-query", "-W", "-f=${source:Version}", "qemu-user"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    version = src_version.split(":", 1)[-1]  # 7.2+dfsg-7+deb12u18
    upstream = version.rsplit("-", 1)[0]
    folder = cache / f"qemu-{upstream}"
    header = folder / "qemu-plugin.h"
    if header.is_file():
        return header
    mirror = apt_mirror()
    say(f"fetching qemu-plugin.h from the Debian source of qemu {version}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        dsc = Path(tmp) / "qemu.dsc"
        download(f"{mirror}/pool/main/q/qemu/qemu_{version}.dsc", dsc)
        text = dsc.read_text()
        sums = text.split("Checksums-Sha256:", 1)[1]
        match = re.search(r"^\s+([0-9a-f]{64})\s+\d+\s+(qemu_\S+\.orig\.tar\.xz)$", sums, re.M)
        if not match:
            sys.exit("icount: no orig tarball in the qemu .dsc")
        sha, name = match.groups()
        tarball = Path(tmp) / name
        download(f"{mirror}/pool/main/q/qemu/{name}", tarball)
        if sha256_file(tarball) != sha:
            sys.exit(f"icount: {name} does not match the SHA-256 in its .dsc")
        with tarfile.open(tarball) as tar:
            member = next(m for m in tar if m.name.endswith("/include/qemu/qemu-plugin.h"))
            data = tar.extractfile(member).read()
        folder.mkdir(parents=True, exist_ok=True)
        header.write_bytes(data)
    return header


def build_plugin(cache: Path) -> Path:
    header = plugin_header(cache)
    so = cache / f"insn_count-{key(PLUGIN_SRC.read_bytes(), header.read_bytes())}.so"
    if not so.is_file():
        say(f"building {so.name}")
        cmd = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{header.parent}"]
        subprocess.run([*cmd, "-o", str(so), str(PLUGIN_SRC)], check=True)
    return so


SUITE = "bookworm"  # Raspberry Pi OS Bookworm's Debian release
DEB_INCLUDE = "python3,python3-minimal,libpython3.11-stdlib,libstdc++6"


def build_root(cache: Path) -> Path:
    """A Debian arm64 userland (python3.11) unpacked with debootstrap --foreign: nothing runs in
    it as a chroot; qemu's -L makes the guest's absolute paths resolve inside it."""
    root = cache / f"root-{key(SUITE, DEB_INCLUDE)}"
    if (root / "usr/bin/python3.11").exists():
        return root
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    say(f"building a Debian {SUITE} arm64 userland")
    cmd = ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase"]
    cmd += [f"--include={DEB_INCLUDE}", SUITE, str(tmp), apt_mirror()]
    with open(cache / "build-root.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=log)
        for deb in sorted((tmp / "var/cache/apt/archives").glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True, stdout=log)
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(tmp / junk, ignore_errors=True)
    tmp.rename(root)
    return root


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"ai-edge-litert": version("ai-edge-litert"), "numpy": version("numpy")}


def build_site(cache: Path) -> Path:
    reqs = [f"{name}=={v}" for name, v in versions().items()]
    site = cache / f"site-{key(*reqs)}"
    if (site / ".complete").exists():
        return site
    say(f"installing aarch64 wheels: {' '.join(reqs)}")
    platforms = []
    for v in range(36, 16, -1):  # glibc 2.36
        platforms += ["--platform", f"manylinux_2_{v}_aarch64"]
    shutil.rmtree(site, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--target", str(site), *platforms, "--only-binary=:all:", "--python-version", "3.11"]
    subprocess.run([*cmd, "--implementation", "cp", *reqs], check=True)
    (site / ".complete").touch()
    return site


CPUINFO = {  # what a Pi 4 / Pi 5 shows; LiteRT's cpuinfo needs an ARM /proc/cpuinfo
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "Raspberry Pi 4 Model B"),
    "cortex-a76": (
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
        "dcpop asimddp",
        "0x4",
        "0xd0b",
        "1",
        "Raspberry Pi 5 Model B",
    ),
}


def cpu_view(cache: Path, root: Path, cpu: str) -> Path:
    """``root`` seen through symlinks, with this core's /proc/cpuinfo (qemu -L reads it)."""
    view = cache / f"view-{cpu}-{root.name}"
    view.mkdir(exist_ok=True)
    for entry in root.iterdir():
        if entry.name != "proc" and not (view / entry.name).exists():
            (view / entry.name).symlink_to(entry)
    (view / "proc").mkdir(exist_ok=True)
    features, variant, part, rev, model = CPUINFO[cpu]
    lines = []
    for i in range(4):
        lines += [
            f"processor\t: {i}",
            "BogoMIPS\t: 108.00",
            f"Features\t: {features}",
            "CPU implementer\t: 0x41",
            "CPU architecture: 8",
            f"CPU variant\t: {variant}",
            f"CPU part\t: {part}",
            f"CPU revision\t: {rev}",
            "",
        ]
    lines += ["Hardware\t: BCM2835", f"Model\t\t: {model}", ""]
    (view / "proc" / "cpuinfo").write_text("\n".join(lines))
    return view


def prepare_models(cache: Path, wanted: list[str], anchors: bool) -> list[dict]:
    """The model files as the pipeline runs them, written into the cache."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.pose import models
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.runtime import Model

    folder = cache / "models"
    folder.mkdir(exist_ok=True)
    directory = models.models_dir()
    items = []

    def add(label: str, name: str, content: bytes, input_range=(0.0, 1.0)) -> None:
        path = folder / f"{name}-{hashlib.sha256(content).hexdigest()[:12]}.tflite"
        if not path.exists():
            path.write_bytes(content)
        items.append({"label": label, "path": str(path), "input_range": list(input_range)})

    class _Source:  # what Model._pruned reads of a Model: the file
        def __init__(self, path: Path):
            self.path = path

    prune = ("landmarks", "flag", "heatmap", "world")
    for label in wanted:
        if label == "detector":
            path = directory / "pose_detection.tflite"
            if path.exists():
                add(label, "pose_detection", path.read_bytes(), (-1.0, 1.0))
            continue
        model, _, variant = label.partition("-")
        name = models.estimator_name(model) + ("_int8" if variant == "int8" else "")
        path = directory / f"{name}.tflite"
        if not path.exists():
            continue
        if variant == "fp16":  # the float model marked for fp16 inference (edge/pose/fp16.py)
            from edge.pose import fp16

            name = fp16.name_for(model)
            content = fp16.edit(path.read_bytes())
            path = folder / f"{name}-{hashlib.sha256(content).hexdigest()[:12]}.tflite"
            path.write_bytes(content)
        content = Model._pruned(_Source(path), Interpreter, LandmarkModel.OUTPUTS, prune)
        add(label, name, content if content is not None else path.read_bytes())
    if anchors:
        import mobilenets

        for label, build in (("mobilenet_v1", mobilenets.v1), ("mobilenet_v2", mobilenets.v2)):
            add(label, label, build(), (-1.0, 1.0))
            add(f"{label}_int8", f"{label}_int8", build(int8=True))
    return items


def is_f32_kernel(name: str) -> bool:
    """An XNNPACK float kernel (for the int8 model's float parts: stem, regression head)."""
    return name.startswith("xnn_f32_") and "qs8" not in name and "qu8" not in name


def f32_share(model: dict) -> float:
    """The share of ``model``'s instructions in float kernels (exact with --kernels; from the
    12 busiest functions in an older --json)."""
    if "f32_share" in model:
        return model["f32_share"]
    return sum(v for k, v in model.get("functions", {}).items() if is_f32_kernel(k))


def symbolize(view: Path, maps: list[str], profile: dict[int, int]) -> dict[str, int]:
    """Instructions per function: block addresses -> mapped file -> ELF symbol (.symtab)."""
    regions = []
    for line in maps:
        parts = line.split()
        if len(parts) < 6:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        regions.append((lo, hi, int(parts[2], 16), parts[5]))
    cache: dict[str, tuple] = {}

    def elf(path: str):
        if path not in cache:
            host = view / path.lstrip("/") if (view / path.lstrip("/")).exists() else Path(path)
            segs, syms = [], []
            try:
                out = subprocess.run(["readelf", "-lW", str(host)], capture_output=True, text=True)
                for m in re.finditer(r"LOAD\s+(0x\S+)\s+(0x\S+)\s+\S+\s+(0x\S+)", out.stdout):
                    segs.append(tuple(int(x, 16) for x in m.groups()))  # offset, vaddr, filesz
                out = subprocess.run(["readelf", "-WsC", str(host)], capture_output=True, text=True)
                for line in out.stdout.splitlines():
                    f = line.split(None, 7)
                    if len(f) == 8 and f[3] == "FUNC" and int(f[2], 0) > 0:
                        syms.append((int(f[1], 16), int(f[2], 0), f[7]))
            except OSError:
                pass
            syms.sort()
            cache[path] = (segs, syms, [a for a, _, _ in syms])
        return cache[path]

    import bisect

    per: dict[str, int] = {}
    for addr, n in profile.items():
        name = "?"
        for lo, hi, off, path in regions:
            if lo <= addr < hi:
                segs, syms, starts = elf(path)
                fileoff = addr - lo + off
                vaddr = next(
                    (fileoff - so + sv for so, sv, sz in segs if so <= fileoff < so + sz), fileoff
                )
                i = bisect.bisect_right(starts, vaddr) - 1
                inside = i >= 0 and vaddr < syms[i][0] + syms[i][1]
                name = syms[i][2] if inside else Path(path).name
                break
        per[name] = per.get(name, 0) + n
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def run_guest(cache, view, site, plugin, cpu, items, warmup, invokes, timeout, kernels) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"run-{cpu}-", dir=cache))
    spec = work / "spec.json"
    spec.write_text(
        json.dumps({"models": items, "warmup": warmup, "invokes": invokes, "maps": kernels})
    )
    spans_file = work / "spans.txt"
    prof_file = work / "prof.txt"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": str(site),
    }
    plugin_arg = f"{plugin},out={spans_file}" + (f",prof={prof_file}" if kernels else "")
    cmd = ["qemu-aarch64", "-cpu", cpu, "-L", str(view), "-plugin", plugin_arg]
    cmd += [str(view / "usr/bin/python3.11"), str(Path(__file__)), "--guest", str(spec)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            sys.exit(f"icount: the {cpu} run failed (exit {proc.returncode})")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        spans = {}
        for line in spans_file.read_text().splitlines():
            parts = line.split()
            if parts[0] == "span":
                spans[int(parts[1])] = {
                    parts[i]: int(parts[i + 1]) for i in range(2, len(parts), 2)
                }
        profiles: dict[int, dict[int, int]] = {}
        if kernels:
            current: dict[int, int] = {}
            for line in prof_file.read_text().splitlines():
                a, b = line.split()
                if a == "span":
                    current = profiles.setdefault(int(b), {})
                else:
                    current[int(a, 16)] = current.get(int(a, 16), 0) + int(b)
    finally:
        shutil.rmtree(work)
    overhead = min(spans[i]["total"] for i in report["empty_spans"])
    result = {
        "cpu": cpu,
        "seconds": round(time.monotonic() - t0, 1),
        "marker_overhead": overhead,
        "litert": report["litert"],
        "numpy": report["numpy"],
        "models": {},
    }
    for m in report["models"]:
        per = [spans[i] for i in m["spans"]]
        totals = [p["total"] - overhead for p in per]
        result["models"][m["label"]] = {
            "total": int(statistics.median(totals)),
            "spread": (max(totals) - min(totals)) / statistics.median(totals),
            **{c: int(statistics.median(p[c] for p in per)) for c in CLASSES[1:]},
            "input": m["input"],
            "emulated_seconds": m["seconds"],
        }
        if kernels:
            funcs = symbolize(view, report["maps"], profiles[m["spans"][-1]])
            total = sum(funcs.values())
            result["models"][m["label"]]["functions"] = {
                k: round(v / total, 4) for k, v in list(funcs.items())[:12]
            }
            result["models"][m["label"]]["f32_share"] = round(
                sum(v for k, v in funcs.items() if is_f32_kernel(k)) / total, 4
            )
    return result


def table(results: list[dict]) -> str:
    labels = list(dict.fromkeys(lbl for r in results for lbl in r["models"]))
    head = f"{'model':14s}" + "".join(f"{r['cpu']:>14s}" for r in results)
    lines = ["instructions per invoke, millions (1 thread):", head]
    for lbl in labels:
        row = f"{lbl:14s}"
        for r in results:
            m = r["models"].get(lbl)
            row += f"{m['total'] / 1e6:14.2f}" if m else f"{'-':>14s}"
        lines.append(row)
    lines += ["", "per class, share of the total (simd_fp / ldst / fmla / dot / fp16):"]
    for r in results:
        for lbl, m in r["models"].items():
            shares = " / ".join(f"{100 * m[c] / m['total']:.1f} %" for c in CLASSES[1:])
            lines.append(f"{r['cpu']:11s} {lbl:14s} {shares}   spread {m['spread']:.1e}")
    for r in results:
        for lbl, m in r["models"].items():
            if "functions" in m:
                lines += ["", f"{r['cpu']} {lbl}: instructions by function (last invoke)"]
                lines += [f"  {100 * v:5.1f} %  {k}" for k, v in m["functions"].items()]
    return "\n".join(lines)


# The anchor: XNNPACK's README (benchmarked Feb 8, 2022, end2end-bench, random weights), Raspberry
# Pi 4 (BCM2711, ARM64 build), multi-threaded (its 4 cores): MobileNet v1 1.0X FP32 77 ms, INT8
# 24 ms; v2 1.0X FP32 46 ms, INT8 17 ms. Raspberry Pi OS ran the Pi 4 at 1.5 GHz then (1.8 GHz
# came later, for C0-stepping boards).
ANCHORS_MS = {
    "mobilenet_v1": 77.0,
    "mobilenet_v2": 46.0,
    "mobilenet_v1_int8": 24.0,
    "mobilenet_v2_int8": 17.0,
}
ANCHOR_GHZ, ANCHOR_THREADS = 1.5, 4
PI5_GHZ = 2.4
# Cortex-A76 per-clock gain over the A72 for these kernels, a range: 1.5x from Raspberry Pi's
# launch figure for the Pi 5 (2-3x the Pi 4's CPU performance at 2.4 vs 1.8 GHz: 1.5-2.25x per
# clock), 2.0x from Arm's software optimization guides (Q-form FMLA: 1 per cycle on the A72, 2 on
# the A76; the float kernels are bound by it).
A76_GAIN = (1.5, 2.0)


def projection(results: list[dict]) -> str:
    """Pi 4 / Pi 5 milliseconds per invoke from the counts: time = instructions / (IPC x clock),
    with the A72's IPC calibrated on the MobileNet anchors counted the same way: the float
    anchors' for float models; for an int8 model, the float IPC for the instructions in float
    kernels (``f32_share``, from --kernels) and the int8 anchors' for the rest."""
    by_cpu = {r["cpu"]: r["models"] for r in results}
    a72 = by_cpu.get("cortex-a72", {})
    ipc = {}
    for name, ms in ANCHORS_MS.items():
        if name in a72:
            ipc[name] = a72[name]["total"] / (ANCHOR_THREADS * ms * 1e-3 * ANCHOR_GHZ * 1e9)
    kinds = {}
    for kind in ("float", "int8"):
        values = [v for k, v in ipc.items() if k.endswith("_int8") == (kind == "int8")]
        if values:
            kinds[kind] = statistics.mean(values)
    if not kinds:
        return "(no projection: run with --anchors on cortex-a72)"
    lines = [
        "PROJECTION, not a measurement (docs/performance.md says how): ms per invoke",
        "A72 IPC per core, 4 cores busy, calibrated: "
        + ", ".join(f"{name} {v:.2f}" for name, v in ipc.items())
        + f"; A76 per-clock gain x{A76_GAIN[0]}-{A76_GAIN[1]}",
        f"{'model':18s}{'Pi 4 1 thr':>11s}{'Pi 4 4 thr':>11s}{'Pi 5 1 thr':>14s}{'Pi 5 4 thr':>14s}",
    ]
    for lbl in a72:
        kind = "int8" if "int8" in lbl else "float"
        if lbl in ANCHORS_MS or kind not in kinds:
            continue

        def seconds_per_insn(model: dict, kind: str = kind) -> float:
            if kind == "float":
                return 1 / kinds["float"]
            share = f32_share(model) if "float" in kinds else 0.0
            return share / kinds.get("float", 1.0) + (1 - share) / kinds["int8"]

        pi4 = a72[lbl]["total"] * seconds_per_insn(a72[lbl]) / (ANCHOR_GHZ * 1e9) * 1e3
        row = f"{lbl:18s}{'<=' + format(pi4, '.0f'):>11s}{pi4 / 4:11.1f}"
        a76 = by_cpu.get("cortex-a76", {}).get(lbl)
        if a76:
            base = a76["total"] * seconds_per_insn(a76) / (PI5_GHZ * 1e9) * 1e3
            fast, slow = (base / g for g in A76_GAIN[::-1])
            row += f"{'<=' + format(slow, '.0f'):>14s}{fast / 4:7.1f}-{slow / 4:<6.1f}"
        lines.append(row)
    lines.append(
        "1 thread: an upper bound (the anchor's 4 threads taken as scaling perfectly); "
        "Pi 4 at the anchor's 1.5 GHz (at 1.8 GHz: x0.83)"
    )
    return "\n".join(lines)


def check(results: list[dict], tolerance: float) -> bool:
    expected = json.loads(EXPECTED.read_text())
    ok = True
    for r in results:
        for lbl, m in r["models"].items():
            want = expected["counts"].get(r["cpu"], {}).get(lbl)
            if want is None:
                continue
            diff = (m["total"] - want) / want
            good = abs(diff) <= tolerance
            ok &= good
            print(f"{'PASS' if good else 'FAIL'}: {r['cpu']} {lbl} {m['total']} vs {want} "
                  f"({diff:+.2%}, tolerance {tolerance:.0%})")  # fmt: skip
    return ok


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--guest":
        guest(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="detector,lite,full,heavy,full-int8,lite-int8,lite-fp16,full-fp16"
    )
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="JSON",
        help="only print the table and projection of --json files",
    )
    parser.add_argument("--cpus", default=",".join(CPUS))
    parser.add_argument("--anchors", action="store_true", help="also MobileNet v1/v2")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--invokes", type=int, default=3)
    parser.add_argument("--json", help="write the counts here")
    parser.add_argument(
        "--kernels", action="store_true", help="also instructions by function (XNNPACK kernels)"
    )
    parser.add_argument("--check", action="store_true", help=f"compare with {EXPECTED.name}")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument(
        "--save-expected", action="store_true", help=f"write these counts to {EXPECTED.name}"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="per core, seconds")
    args = parser.parse_args()
    if args.report:
        merged: dict[str, dict] = {}
        for path in args.report:
            for r in json.loads(Path(path).read_text())["results"]:
                merged.setdefault(r["cpu"], {"cpu": r["cpu"], "models": {}})["models"].update(
                    r["models"]
                )
        print(table(list(merged.values())) + "\n\n" + projection(list(merged.values())))
        return
    default_cache = Path.home() / ".cache" / "blazepose-edge" / "icount"
    cache = Path(os.environ.get("BLAZEPOSE_EDGE_ICOUNT_CACHE", default_cache))
    cache.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE / "icount"))
    ensure_tools()
    plugin = build_plugin(cache)
    root = build_root(cache)
    site = build_site(cache)
    items = prepare_models(cache, [m for m in args.models.split(",") if m], args.anchors)
    results = []
    for cpu in args.cpus.split(","):
        view = cpu_view(cache, root, cpu)
        say(f"{cpu}: {', '.join(i['label'] for i in items)}")
        r = run_guest(
            cache,
            view,
            site,
            plugin,
            cpu,
            items,
            args.warmup,
            args.invokes,
            args.timeout,
            args.kernels,
        )
        say(f"{cpu}: {r['seconds']} s")
        results.append(r)
    print(table(results))
    print()
    print(projection(results))
    doc = {
        "versions": versions(),
        "qemu": subprocess.run(
            ["qemu-aarch64", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "warmup": args.warmup,
        "invokes": args.invokes,
        "results": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.save_expected:
        counts = {r["cpu"]: {k: m["total"] for k, m in r["models"].items()} for r in results}
        saved = {k: doc[k] for k in ("versions", "qemu", "warmup", "invokes")}
        EXPECTED.write_text(json.dumps({**saved, "counts": counts}, indent=1) + "\n")
    if args.check and not check(results, args.tolerance):
        sys.exit(1)


if __name__ == "__main__":
    main()
