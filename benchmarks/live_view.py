"""What the live view costs the pipeline: FPS with the live view off, on with nobody watching, and
on with one MJPEG viewer, measured side by side.

    .venv/bin/python benchmarks/live_view.py [--cycles 30] [--window 40] [--fps 5] [--json OUT]

The daemon runs in this process on the demo clip, as fast as the machine goes (no pacing), with
the pose messages encoded as JSON and written to /dev/null (the stdout sink), and the live view
sink serving on 127.0.0.1. A machine shared with other work changes speed by tens of percent from
one minute to the next, so the three set-ups alternate within one run, a window of ``--window``
frames each, in a rotating order:

- off: the live view's ``frame()`` is not called (its server idles, listening);
- on: ``frame()`` is called for every frame, nobody watches;
- viewer: the same, and a separate process reads ``/stream.mjpg?fps=F`` during the window (it
  connects as the window starts and leaves as it ends; a browser elsewhere on the network would
  cost the board nothing, this one shares its cores, so the figure is pessimistic).

A window's FPS is counted from its ``--skip``-th frame on; each cycle's "on" and "viewer" windows
are compared with its "off" window, and the median ratio over the cycles is reported with its
95 % bootstrap interval. This process's CPU time per frame (all its threads: the pipeline, the
interpreter's, the HTTP server's) is compared the same way: on a machine busy with other work it
varies far less than the FPS.

Targets: on, nobody watching = off (within noise); one viewer at 5 FPS: at most 5 % slower.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

SETUPS = ("off", "on", "viewer")
# the project is imported in main(): the viewer process (this file with --viewer) needs none of it


def viewer(port: int, fps: float) -> int:
    """``--viewer``: stream while told ``on`` on stdin, stop at ``off``; at end of input, print
    the frames received."""
    frames = 0
    state = {"conn": None}
    lock = threading.Lock()

    def stream() -> None:
        nonlocal frames
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with lock:
            state["conn"] = sock
        try:
            sock.sendall(f"GET /stream.mjpg?fps={fps} HTTP/1.0\r\n\r\n".encode())
            f = sock.makefile("rb")
            while line := f.readline():
                if line.lower().startswith(b"content-length:"):
                    f.readline()
                    f.read(int(line.split(b":")[1]))
                    frames += 1
        except (OSError, ValueError):
            pass
        finally:
            sock.close()

    thread = None
    for line in sys.stdin:
        if line.strip() == "on":
            thread = threading.Thread(target=stream, daemon=True)
            thread.start()
        elif line.strip() == "off" and thread:
            for _ in range(100):  # the thread may not have connected yet
                with lock:
                    sock = state.pop("conn", None)
                if sock or not thread.is_alive():
                    break
                time.sleep(0.01)
            if sock:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            thread.join(5)
            thread = None
    print(frames, flush=True)
    return 0


def make_sinks(live, plan: list[str], window: int, watcher: subprocess.Popen):
    """The clock (it switches the set-ups at window boundaries, in the pipeline's thread) and the
    gate in front of the live view."""
    from edge.service.sinks import Sink

    class Clock(Sink):
        name = "clock"

        def __init__(self):
            self.times: list[float] = []
            self.cpu: list[float] = []  # this process's CPU time, all threads
            self.mode = "off"

        def frame(self, result) -> None:
            n = len(self.times)
            if n % window == 0:
                mode = plan[n // window] if n // window < len(plan) else "off"
                if (mode == "viewer") != (self.mode == "viewer"):
                    watcher.stdin.write(b"on\n" if mode == "viewer" else b"off\n")
                    watcher.stdin.flush()
                self.mode = mode
            self.times.append(time.perf_counter())
            self.cpu.append(time.process_time())

    clock = Clock()

    class Gate(Sink):
        name = "gate"

        def frame(self, result) -> None:
            if clock.mode != "off":
                live.frame(result)

        def start(self) -> None:
            live.start()

        def stats(self, stats) -> None:
            live.stats(stats)

        def set_status(self, status) -> None:
            live.set_status(status)

        def stop(self) -> None:
            live.stop()

    return clock, Gate()


def median_ratio(cycles: list[dict], setup: str) -> dict:
    """The median over the cycles of ``setup`` / off, and its 95 % bootstrap interval."""
    ratios = [c[setup] / c["off"] for c in cycles]
    rng = random.Random(17)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000)
    )  # fmt: skip
    return {"median": round(statistics.median(ratios), 4),
            "ci95": [round(medians[50], 4), round(medians[1949], 4)]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30, help="off, on, viewer: this many times")
    parser.add_argument("--window", type=int, default=40, help="frames per set-up and cycle")
    parser.add_argument("--skip", type=int, default=8, help="frames not counted in each window")
    parser.add_argument("--fps", type=float, default=5.0, help="the viewer's frame rate")
    parser.add_argument("--model", default="full", choices=("lite", "full", "heavy"))
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--viewer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer:
        return viewer(args.viewer, args.fps)
    logging.basicConfig(level=logging.WARNING)
    from edge.pose import PoseEstimator, board
    from edge.service.config import load
    from edge.service.daemon import Daemon
    from edge.service.sinks import StdoutPublisher
    from edge.service.sinks.live import LiveView

    warm = 60
    plan = ["off"] * (warm // args.window + 1)  # warm-up (kernels compiled, caches filled)
    first = len(plan)
    for c in range(args.cycles):
        plan += SETUPS[c % 3 :] + SETUPS[: c % 3]  # rotate: no set-up always comes first
    cfg = load(None, {"source.uri": "demo", "mqtt.host": "none", "http.enabled": True,
                      "http.port": args.port, "mqtt.stats_interval": 3600.0,
                      "daemon.max_frames": len(plan) * args.window})  # fmt: skip
    est = PoseEstimator(model=args.model, tracking=True)
    live = LiveView(cfg)
    watcher = subprocess.Popen(
        [sys.executable, __file__, "--viewer", str(args.port), "--fps", str(args.fps)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    clock, gate = make_sinks(live, plan, args.window, watcher)
    pose_sink = StdoutPublisher(stream=open(os.devnull, "w"))  # noqa: SIM115
    Daemon(cfg, estimator=est, sinks=[pose_sink, clock, gate]).run()
    viewer_frames = int(watcher.communicate(timeout=30)[0] or 0)

    windows, cpu_windows = [], []
    for w in range(first, len(plan)):
        span = slice(w * args.window + args.skip, (w + 1) * args.window)
        times, cpu = clock.times[span], clock.cpu[span]
        windows.append((plan[w], (len(times) - 1) / (times[-1] - times[0])))
        cpu_windows.append((plan[w], 1000 * (cpu[-1] - cpu[0]) / (len(cpu) - 1)))
    cycles = [dict(windows[i : i + 3]) for i in range(0, len(windows), 3)]
    cpu_cycles = [dict(cpu_windows[i : i + 3]) for i in range(0, len(cpu_windows), 3)]
    ratios = {s: median_ratio(cycles, s) for s in ("on", "viewer")}
    cpu_ratios = {s: median_ratio(cpu_cycles, s) for s in ("on", "viewer")}
    median_fps = {s: round(statistics.median(c[s] for c in cycles), 2) for s in SETUPS}
    median_cpu = {s: round(statistics.median(c[s] for c in cpu_cycles), 2) for s in SETUPS}
    viewer_time = sum(
        clock.times[min((w + 1) * args.window, len(clock.times) - 1)] - clock.times[w * args.window]
        for w in range(first, len(plan))
        if plan[w] == "viewer"
    )
    report = {
        "machine": {"cpu": board.cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "model": args.model, "variant": est.variant, "threads": est.num_threads,
        "cycles": args.cycles, "window": args.window, "skip": args.skip,
        "viewer_fps_asked": args.fps,
        "viewer_fps_got": round(viewer_frames / viewer_time, 2),
        "frames_copied": live.copies, "frames_encoded": live.encoded,
        "median_fps": median_fps, "median_ratio_to_off": ratios,
        "median_cpu_ms_per_frame": median_cpu, "median_cpu_ratio_to_off": cpu_ratios,
        "cycles_fps": [{s: round(c[s], 2) for s in SETUPS} for c in cycles],
        "cycles_cpu_ms_per_frame": [{s: round(c[s], 2) for s in SETUPS} for c in cpu_cycles],
    }  # fmt: skip

    def show(r: dict) -> str:
        return f"{r['median']:.3f} (95 % interval {r['ci95'][0]:.3f}..{r['ci95'][1]:.3f})"

    print(
        f"{report['machine']['cpu']}, {os.cpu_count()} CPUs, model {args.model} ({est.variant}, "
        f"{est.num_threads} threads): {args.cycles} cycles of {args.window}-frame windows\n"
        "median FPS: " + ", ".join(f"{s} {median_fps[s]:.2f}" for s in SETUPS) + "\n"
        f"FPS, median ratio to off: on, nobody watching {show(ratios['on'])}; one viewer at "
        f"{args.fps:g} FPS {show(ratios['viewer'])} (it got {report['viewer_fps_got']} FPS)\n"
        "median CPU time per frame (this process, all threads): "
        + ", ".join(f"{s} {median_cpu[s]:.2f} ms" for s in SETUPS)
        + f"\nCPU time per frame, median ratio to off: on {show(cpu_ratios['on'])}, "
        f"viewer {show(cpu_ratios['viewer'])}"
    )  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
