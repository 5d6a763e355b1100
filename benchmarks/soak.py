"""Soak test: run the daemon flat out for a while and watch memory, threads and file descriptors.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--video PATH] [--json OUT]

Runs ``blazepose-edge run`` on a looping video (no pacing: as fast as the machine goes) with the
pose messages going to stdout (read and discarded here), samples the process every 5 s, and
reports: frames per second, RSS after warm-up and at the end (growth must stay < 5 %), and the
thread and open-file counts (which must not grow). Exit status 1 if a limit is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from edge.service.media import media_dir

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    media = media_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--video", default=str(media / "video" / "street.avi"))
    parser.add_argument("--variant", default="auto", choices=("auto", "float", "int8"))
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    cmd = [sys.executable, "-m", "edge.service.cli", "run", "--source", args.video, "--loop",
           "--mqtt-host", "none", "--device-id", "soak", "--variant", args.variant]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    frames = 0

    def drain() -> None:
        nonlocal frames
        for _ in proc.stdout:
            frames += 1

    threading.Thread(target=drain, daemon=True).start()
    p = psutil.Process(proc.pid)
    samples = []
    start = time.monotonic()
    end = start + args.minutes * 60
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(5)
        samples.append({
            "t": round(time.monotonic() - start, 1),
            "frames": frames,
            "rss_mb": round(p.memory_info().rss / 2**20, 1),
            "threads": p.num_threads(),
            "fds": p.num_fds(),
        })  # fmt: skip
        print(json.dumps(samples[-1]), flush=True)
    proc.terminate()
    proc.wait(30)
    base = next(s for s in samples if s["t"] >= args.warmup)
    last = samples[-1]
    growth = (last["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    report = {
        "machine": f"{os.cpu_count()} cores",
        "minutes": args.minutes,
        "fps": round((last["frames"] - base["frames"]) / (last["t"] - base["t"]), 1),
        "rss_mb_after_warmup": base["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_growth_pct": round(100 * growth, 2),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "threads": sorted({s["threads"] for s in samples}),
        "fds": sorted({s["fds"] for s in samples}),
        "exit_code": proc.returncode,
    }
    ok = growth < 0.05 and last["threads"] <= base["threads"] and last["fds"] <= base["fds"]
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"report": report, "samples": samples}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
