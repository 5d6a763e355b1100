"""What an empty room costs, and how soon a person walking in is found, with ``idle_detect_hz``.

1. CPU seconds per second of video on ``hard_no_person_parking_lot_intel.mp4`` (768x432, 12.5
   FPS, cars only), read and paced at its own frame rate as a camera delivers it: decoding
   (OpenCV's FFmpeg, in the same thread) and ``PoseEstimator.process`` on every frame, this
   process's CPU time (user + system, all threads) over the run's media time. Settings, run one
   after the other and repeated ``--passes`` times (alternating, so a drift in the shared
   machine's speed hits all alike):

   - ``hz=0``: every frame scanned (today's behaviour, MediaPipe's);
   - ``hz=H``: ``idle_detect_hz=H`` (the service's default unless ``--hz``);
   - ``hz=H grab``: the same, but a frame the estimator will not look at
     (``wants_frame``) is only grabbed from the decoder, not converted to BGR (what a source
     could spare; ``process`` is still called, with the previous frame);
   - ``decode``: decoding alone, paced the same: the floor none of the above can go under.

2. The delay before a person walking in is found, unpaced, the frames at
   ``walking_one_by_one_intel.mp4``'s 10 FPS:

   - ``spliced``: parking-lot frames (nobody), then, at once, the walking clip (one person at a
     time walks in) from a frame that starts a run of at least one scan interval of frames on
     which someone can be found (static mode: the detector and the estimator on that frame
     alone, what a scan does), for every such frame in the clip and every phase of the scans
     against it (the person arrives 0 .. interval - 1 frames after a scan): the delay from
     their first frame to the first frame they are found on. The target: below one interval.
   - ``in_clip_from_hz0``: in the clip itself, from each frame on which ``hz=0`` finds someone
     after two intervals with nobody, every phase likewise. Some of those are people found on
     a few frames only as they come in (partly in view), which scans at a rate may catch
     later, or miss.

    python benchmarks/idle_cost.py [--hz 2] [--passes 2] [--seconds 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import PoseEstimator  # noqa: E402
from edge.service import config  # noqa: E402
from edge.service.media import media_dir  # noqa: E402

EMPTY = "hard_no_person_parking_lot_intel.mp4"
WALKING = "walking_one_by_one_intel.mp4"


def paced_run(
    path: Path, est: PoseEstimator | None, seconds: float, grab: bool, fps: float | None = None
) -> dict:
    """Read ``path`` at its own frame rate for at most ``seconds`` of media time (from the start),
    each frame given to ``est`` (None: decoding only); this process's CPU seconds per second of
    video, and the frames and detector runs."""
    cap = cv2.VideoCapture(str(path))
    fps = fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
    if est is not None:
        est.reset()
        est.reset_counters()
    frames = 0
    last = None
    start = time.monotonic()
    c0 = time.process_time()
    while frames < round(seconds * fps):
        t_ms = frames * 1000.0 / fps
        delay = start + frames / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if grab and est is not None and last is not None and not est.wants_frame(t_ms):
            if not cap.grab():  # decoded, not converted: process will not look at it
                break
            frame = last
        else:
            ok, frame = cap.read()
            if not ok:
                break
            last = frame
        if est is not None:
            est.process(frame, t_ms)
        frames += 1
    cpu = time.process_time() - c0
    cap.release()
    media_s = frames / fps
    out = {"frames": frames, "media_s": round(media_s, 2), "cpu_s": round(cpu, 3),
           "cpu_per_s": cpu / media_s}  # fmt: skip
    if est is not None:
        out["scanned"] = est.frames_scanned
        out["detector_runs"] = est.detector_runs
    return out


def cost(media: Path, rates, passes: int, seconds: float, variant: str, threads, fps=None):
    path = media / "video" / EMPTY
    settings = {"hz=0": (PoseEstimator(variant, threads, idle_detect_hz=0.0), False)}
    for hz in rates:
        settings[f"hz={hz:g}"] = (PoseEstimator(variant, threads, idle_detect_hz=hz), False)
        settings[f"hz={hz:g} grab"] = (PoseEstimator(variant, threads, idle_detect_hz=hz), True)
    settings["decode"] = (None, False)
    for est, _ in settings.values():  # warm up: the first invokes, Numba's JIT
        if est is not None:
            paced_run(path, est, 1.0, False)
    runs = {name: [] for name in settings}
    for p in range(passes):
        names = list(settings)
        names = names[p % len(names) :] + names[: p % len(names)]  # rotate the order
        for name in names:
            est, grab = settings[name]
            runs[name].append(paced_run(path, est, seconds, grab, fps))
            r = runs[name][-1]
            print(f"  pass {p + 1} {name:>10}: {1000 * r['cpu_per_s']:6.1f} ms CPU per s of video "
                  f"({r['frames']} frames, {r.get('scanned', 0)} scanned, "
                  f"{r.get('detector_runs', 0)} detector runs)", flush=True)  # fmt: skip
    out = {}
    for name, rs in runs.items():
        values = [r["cpu_per_s"] for r in rs]
        out[name] = {
            "cpu_ms_per_s": round(1000 * float(np.median(values)), 1),
            "range": [round(1000 * min(values), 1), round(1000 * max(values), 1)],
            "frames": rs[0]["frames"],
            "scanned": rs[0].get("scanned"),
            "detector_runs": rs[0].get("detector_runs"),
        }
    base = out["hz=0"]["cpu_ms_per_s"]
    for name in out:
        out[name]["share_of_hz0"] = round(out[name]["cpu_ms_per_s"] / base, 3)
    return out


def read_clip(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames, fps


def summary(out: list[int], missed: int, entries: list[int], fps: float) -> dict:
    ms = [d * 1000.0 / fps for d in out]
    return {
        "entries": entries,
        "measured": len(out),
        "missed": missed,
        "delay_frames": {str(d): out.count(d) for d in sorted(set(out))},
        "delay_ms_mean": round(float(np.mean(ms)), 1) if ms else None,
        "delay_ms_max": round(max(ms), 1) if ms else None,
    }


def first_found(est: PoseEstimator, frames, fps: float, entry: int) -> int | None:
    """Run ``frames`` afresh; the first frame from ``entry`` on with someone found."""
    est.reset()
    for i, frame in enumerate(frames):
        if est.process(frame, i * 1000.0 / fps) and i >= entry:
            return i
    return None


def spliced(est, empty, walk, fps: float, entries: list[int], n: int) -> dict:
    """A person appearing at once: ``n + k`` empty frames, then the walking clip from an entry
    (scans on 0, n, 2n, ...: the person arrives k frames after the last one, k = 0..n-1)."""
    out, missed = [], 0
    for e in entries:
        for k in range(n):
            seq = empty[: n + k] + walk[e : e + 4 * n]
            found = first_found(est, seq, fps, n + k)
            if found is None:
                missed += 1
            else:
                out.append(found - (n + k))
    return summary(out, missed, entries, fps)


def in_clip(est, walk, fps: float, entries: list[int], n: int) -> dict:
    """In the clip itself, for each entry and phase k (the run starts afresh n + k frames before
    the entry, on frames where nobody is found)."""
    out, missed = [], 0
    for e in entries:
        for k in range(n):
            start = e - n - k
            found = first_found(est, walk[start : e + 4 * n], fps, n + k)
            if found is None:
                missed += 1
            else:
                out.append(found - (n + k))
    return summary(out, missed, entries, fps)


def delay(media: Path, rates: list[float], variant: str, threads) -> dict:
    walk, fps = read_clip(media / "video" / WALKING)
    empty, _ = read_clip(media / "video" / EMPTY)
    every = PoseEstimator(variant, threads)  # hz=0, video mode
    found = [bool(every.process(f, i * 1000.0 / fps)) for i, f in enumerate(walk)]
    static = PoseEstimator(variant, threads, tracking=False)
    findable = [bool(static.process(f)) for f in walk]
    out = {}
    for hz in rates:
        n = math.ceil(fps / hz - 1e-9)  # frames in one scan interval
        est = PoseEstimator(variant, threads, idle_detect_hz=hz)
        runs = [
            i for i in range(1, len(walk) - n)
            if not findable[i - 1] and all(findable[i : i + n])
        ]  # fmt: skip
        quiet = [i for i in range(2 * n, len(walk)) if not any(found[i - 2 * n : i])]
        out[f"hz={hz:g}"] = {
            "fps": fps,
            "interval_ms": round(1000.0 / hz, 1),
            "interval_frames": n,
            "spliced": spliced(est, empty, walk, fps, runs, n),
            "in_clip_from_hz0": in_clip(est, walk, fps, [i for i in quiet if found[i]], n),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hz", type=float, nargs="+", default=[config.default("pipeline.idle_detect_hz")],
        help="idle_detect_hz values to compare with 0 (default: the service's default)",
    )  # fmt: skip
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="media seconds per run")
    parser.add_argument("--fps", type=float, help="pace (and stamp) the frames at this rate "
                        "instead of the clip's own (a camera at another rate)")  # fmt: skip
    parser.add_argument("--variant", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-delay", action="store_true")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    if min(args.hz) <= 0:
        parser.error("--hz must be > 0")
    media = media_dir()
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "python": sys.version.split()[0]},
        "hz": args.hz,
        "fps": args.fps,
        "load_before": list(os.getloadavg()),
    }  # fmt: skip
    if not args.skip_cost:
        rate = f"{args.fps:g} FPS" if args.fps else "its frame rate"
        print(f"CPU per second of video, {EMPTY} paced at {rate}:", flush=True)
        report["cost"] = cost(
            media, args.hz, args.passes, args.seconds, args.variant, args.threads, args.fps
        )
        for name, r in report["cost"].items():
            print(f"{name:>12}: {r['cpu_ms_per_s']:6.1f} ms/s (range {r['range'][0]}-"
                  f"{r['range'][1]}), {r['share_of_hz0']:.1%} of hz=0")  # fmt: skip
    if not args.skip_delay:
        print(f"delay before a person walking in is found, {WALKING}:", flush=True)
        report["delay"] = delay(media, args.hz, args.variant, args.threads)
        for name, r in report["delay"].items():
            print(f"  {name} (interval {r['interval_ms']} ms = {r['interval_frames']} frames at "
                  f"{r['fps']:g} FPS):")  # fmt: skip
            for base in ("spliced", "in_clip_from_hz0"):
                d = r[base]
                print(f"    {base}: {d['measured']} entries measured over every phase "
                      f"({len(d['entries'])} in the clip), {d['missed']} never found; delay in "
                      f"frames {d['delay_frames']}; mean {d['delay_ms_mean']} ms, max "
                      f"{d['delay_ms_max']} ms")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
