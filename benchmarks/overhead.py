"""Time outside the model invocations, per frame, with one interpreter thread on one core.

    nice -n 10 .venv/bin/python benchmarks/overhead.py [--tree DIR ...] [--rounds 3] [--decode] \
        [--variants float,int8]

Video mode, full model, float (``--variants``: each variant in turn, alternating like the trees;
int8's hand-overs to float count as invoke time), ``num_threads=1``, the whole process pinned to one core
(``--core``, default 1: the affinity is set before the interpreter exists, so its threads inherit
it). Each round runs in a fresh process, one per ``--tree`` (a checkout whose ``edge`` package is
imported, e.g. ``/work/main`` for the code before a change and ``.`` for the code after it), the
trees alternating round by round so that both see the same host.

Per frame: ``wall`` is the wall-clock time of ``PoseEstimator.process``; ``invoke`` the
estimator's (and, on detector frames, the detector's) invoke time from the estimator's own
``timings``; ``outside = wall - invoke``, which includes the Python between the stages
(``between``: ``wall`` minus the sum of all stages). ``cpu`` is the main thread's CPU time for
the same call, and the ``cpu`` columns split it the same way (the invoke's thread CPU time taken
by wrapping the interpreters' ``invoke``): on a shared host other processes' time lands in the
wall-clock figures, mostly in the invoke, the longest stage, but not in the thread's CPU time.
Figures are medians over the frames of a round (``passes`` passes over the clip, ``reset()``
between them); ``share`` is the median of ``outside / wall`` per frame.

Frames are decoded before the timed loop (``--frames`` of the clip, default all 205 of
street.avi, 1280x720). With ``--decode`` they come instead from the capture thread, as in
``blazepose-edge bench``: the capture thread shares the core, so its decoding preempts the
pipeline inside whatever stage is running and that stage's wall time grows; the table then also
gives the capture thread's CPU per frame and ``bench``'s own figure, 1 - sum(invoke) / sum(wall).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOKES = ("estimator_invoke", "detector_invoke")


def child(args: argparse.Namespace) -> dict:
    os.sched_setaffinity(0, {args.core})
    import cv2
    import numpy as np

    import edge
    from edge.pose import PoseEstimator

    cv2.setNumThreads(1)
    video = str(args.video)
    est = PoseEstimator(variant=args.variant, num_threads=1, tracking=True, model="full")
    records: list[tuple[float, float, float, dict]] = []
    invoke_cpu = [0.0]  # the main thread's CPU time inside the interpreters' invoke()
    fallback = getattr(est.estimator, "fallback", None)  # int8's hand-over to float
    for model in (est.estimator.model, est.detector.model, *([fallback.model] if fallback else [])):

        def timed(invoke=model.invoke):
            c0 = time.thread_time()
            invoke()
            invoke_cpu[0] += time.thread_time() - c0

        model.invoke = timed  # an instance attribute: what infer() and detect() call
    capture_cpu: list[float] = []
    if args.decode:
        from edge.service.bench import _TimedVideo
        from edge.service.sources import FrameGrabber

        class Timed(_TimedVideo):
            def read(self):
                c0 = time.thread_time()
                frame = super().read()
                capture_cpu.append((time.thread_time() - c0) * 1000)
                return frame

        source = Timed(video)
        source.open()
        grabber = FrameGrabber(source)
        grabber.start()
        total = args.warmup + args.frames * args.passes
        try:
            for i in range(total):
                frame = grabber.get(timeout=10.0)
                if i == args.warmup:
                    capture_cpu.clear()
                invoke_cpu[0] = 0.0
                t0, c0 = time.perf_counter(), time.thread_time()
                est.process(frame.image, timestamp_ms=frame.pts_ms)
                wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
                frame.done()
                if i >= args.warmup:
                    records.append((wall * 1000, cpu * 1000, invoke_cpu[0] * 1000, est.timings))
        finally:
            grabber.stop()
    else:
        cap = cv2.VideoCapture(video)
        frames = []
        while len(frames) < args.frames:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
        cap.release()
        period = 1000.0 / 50.0
        for _ in range(1 if args.warmup else 0):  # warm-up pass: JIT caches, interpreter, pages
            for i, image in enumerate(frames[: args.warmup]):
                est.process(image, timestamp_ms=i * period)
        for _ in range(args.passes):
            est.reset()
            for i, image in enumerate(frames):
                invoke_cpu[0] = 0.0
                t0, c0 = time.perf_counter(), time.thread_time()
                est.process(image, timestamp_ms=i * period)
                wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
                records.append((wall * 1000, cpu * 1000, invoke_cpu[0] * 1000, est.timings))
    stages = sorted({s for *_, t in records for s in t})
    wall = np.array([r[0] for r in records])
    cpu = np.array([r[1] for r in records])
    cpu_invoke = np.array([r[2] for r in records])
    per = {s: np.array([r[3].get(s, 0.0) for r in records]) for s in stages}
    invoke = sum(per[s] for s in INVOKES if s in per)
    outside = wall - invoke
    between = wall - sum(per.values())
    out = {
        "tree": str(Path(edge.__file__).resolve().parent.parent),
        "frames": len(records),
        "wall": float(np.median(wall)),
        "cpu": float(np.median(cpu)),
        "invoke": float(np.median(invoke)),
        "outside": float(np.median(outside)),
        "between": float(np.median(between)),
        "share": float(np.median(outside / wall)),
        "cpu_outside": float(np.median(cpu - cpu_invoke)),
        "cpu_share": float(np.median((cpu - cpu_invoke) / cpu)),
        "bench_share": float(1 - invoke.sum() / wall.sum()),
        "stages": {
            s: float(np.median(v)) for s, v in per.items() if s not in INVOKES and np.median(v) > 0
        },
    }
    if capture_cpu:
        out["capture_cpu"] = float(np.median(capture_cpu))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", type=Path, help="checkout to import (repeatable)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--core", type=int, default=1)
    p.add_argument("--frames", type=int, default=205)
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--decode", action="store_true", help="decode in a capture thread, as bench")
    p.add_argument("--video", type=Path, default=None)
    p.add_argument("--variants", default="float", help="comma-separated: float, int8, fp16")
    p.add_argument("--variant", default="float", help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.video is None:
        from edge.service.media import media_dir

        args.video = media_dir() / "video" / "street.avi"
    if args.child:
        print(json.dumps(child(args)))
        return
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    load = os.getloadavg()
    print(f"host: {os.cpu_count()} cpus, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"core {args.core}; {'capture thread decoding' if args.decode else 'pre-decoded'} "
          f"{args.video.name}")  # fmt: skip
    head = f"{'round':>5} {'tree':<20} {'wall':>6} {'invoke':>6} {'outside':>7} {'share':>6} "
    head += f"{'bench':>6} {'between':>7} | {'cpu':>6} {'outside':>7} {'share':>6} | stages (ms)"
    print(head)
    for r in range(args.rounds):
        for tree, variant in [(t, v) for t in trees for v in args.variants.split(",")]:
            argv = [sys.executable, __file__, "--child", "--core", str(args.core)]
            argv += ["--variant", variant]
            argv += ["--frames", str(args.frames), "--passes", str(args.passes)]
            argv += ["--warmup", str(args.warmup), "--video", str(args.video)]
            argv += ["--decode"] if args.decode else []
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"round {r} in {tree} failed:\n{done.stderr}")
            res = json.loads(done.stdout.strip().splitlines()[-1])
            if Path(res["tree"]) != tree:
                sys.exit(f"{tree}: imported edge from {res['tree']}")
            stages = " ".join(f"{k}={v:.3f}" for k, v in res["stages"].items())
            if "capture_cpu" in res:
                stages += f" capture_cpu={res['capture_cpu']:.3f}"
            print(f"{r:>5} {(str(tree)[-14:] + ' ' + variant)[-20:]:<20} {res['wall']:6.3f} {res['invoke']:6.3f} "
                  f"{res['outside']:7.3f} {100 * res['share']:5.1f}% "
                  f"{100 * res['bench_share']:5.1f}% {res['between']:7.3f} | {res['cpu']:6.3f} "
                  f"{res['cpu_outside']:7.3f} {100 * res['cpu_share']:5.1f}% | {stages}",
                  flush=True)  # fmt: skip
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
