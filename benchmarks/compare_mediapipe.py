"""blazepose-edge against MediaPipe 0.10.14 on the same decoded frames, alternating, in one run.

Needs ``mediapipe==0.10.14`` next to this project's dependencies (a scratch venv; the package
itself never imports mediapipe)::

    python3.11 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==0.10.14 numba ai-edge-litert psutil paho-mqtt
    PYTHONPATH=. /tmp/mpvenv/bin/python benchmarks/compare_mediapipe.py [--video V [V ...]] \
        [--frames N] [--model lite|full|heavy] [--variants float,int8] [--threads N] [--block N] \
        [--json OUT]

Both run video mode (tracking + smoothing; MediaPipe's legacy Pose at the model's complexity: lite
0, full 1, heavy 2; for lite and heavy copy ``pose_landmark_<model>.tflite`` into the venv's
``mediapipe/modules/pose_landmark/`` first, or MediaPipe tries to download it). Each
frame is given to MediaPipe and to each requested variant of ours, the order rotating frame by
frame so that none always runs on a warmer cache; MediaPipe's time includes the BGR->RGB
conversion it needs, ours starts from BGR. With ``--block N`` each side runs N consecutive frames
before the next side's turn (the order rotating block by block): each then runs in its own steady
state (its interpreter threads still awake, its model in the caches) rather than right after the
other's frame, while the host's load still falls on both alike.
Reports each side's throughput, the ratio, and the landmark difference (mean 2D distance over
the 33 landmarks, as a share of MediaPipe's torso length).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}  # MediaPipe's model_complexity per model


def torso(lm: np.ndarray) -> float:
    return float(np.linalg.norm((lm[11, :2] + lm[12, :2]) / 2 - (lm[23, :2] + lm[24, :2]) / 2))


def compare(
    video: str, ours: dict, frames_wanted: int, warmup: int, model: str = "full", block: int = 1
) -> dict:
    """One video: MediaPipe and each of ``ours`` (variant -> PoseEstimator) on the same frames,
    taking ``block`` frames each in an order rotating block by block; throughput and landmark
    difference."""
    import mediapipe as mp

    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < frames_wanted + warmup:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if len(frames) <= warmup:
        raise SystemExit(f"{video}: only {len(frames)} frames readable")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    for est in ours.values():
        est.reset()
    theirs = mp.solutions.pose.Pose(
        static_image_mode=False, model_complexity=COMPLEXITY[model], smooth_landmarks=True
    )
    names = ["mediapipe", *ours]
    times = {k: [] for k in names}
    errors = {k: [] for k in ours}
    both = {k: 0 for k in ours}
    only_one = {k: 0 for k in ours}
    per_frame = [{} for _ in frames]  # frame -> name -> (seconds, result)

    def run(name, i):
        frame = frames[i]
        t0 = time.perf_counter()
        if name == "mediapipe":
            out = theirs.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        else:
            out = ours[name].process(frame, timestamp_ms=i * 1000.0 / fps)
        return time.perf_counter() - t0, out

    # Each side takes a block of consecutive frames in turn, the order rotating block by block so
    # that none always runs first; block 1 alternates frame by frame.
    for b, start in enumerate(range(0, len(frames), block)):
        shift = b % len(names)
        for name in names[shift:] + names[:shift]:
            for i in range(start, min(start + block, len(frames))):
                per_frame[i][name] = run(name, i)
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        results = per_frame[i]
        if i < warmup:
            continue
        for name in names:
            times[name].append(results[name][0])
        result = results["mediapipe"][1]
        for name in ours:
            poses = results[name][1]
            if result.pose_landmarks and poses:
                ref = np.array([[p.x * w, p.y * h] for p in result.pose_landmarks.landmark])
                errors[name].append(
                    np.linalg.norm(poses[0].landmarks[:, :2] - ref, axis=1).mean() / torso(ref)
                )
                both[name] += 1
            elif bool(result.pose_landmarks) != bool(poses):
                only_one[name] += 1
    theirs.close()

    fps_of = {k: len(t) / sum(t) for k, t in times.items()}
    report = {
        "video": video,
        "model": model,
        "frames": len(times["mediapipe"]),
        "mediapipe": {
            "fps": round(fps_of["mediapipe"], 1),
            "ms_p50": round(1000 * float(np.median(times["mediapipe"])), 2),
            "version": mp.__version__,
        },  # fmt: skip
        "ours": {},
    }
    for name, est in ours.items():
        e = errors[name]
        report["ours"][name] = {
            "variant": est.variant,
            "threads": est.num_threads,
            "fps": round(fps_of[name], 1),
            "ms_p50": round(1000 * float(np.median(times[name])), 2),
            "throughput_ratio": round(fps_of[name] / fps_of["mediapipe"], 2),
            "landmark_error_torso_pct": {
                "mean": round(100 * float(np.mean(e)), 3) if e else None,
                "median": round(100 * float(np.median(e)), 3) if e else None,
                "p95": round(100 * float(np.percentile(e, 95)), 3) if e else None,
            },
            "frames_with_pose_in_both": both[name],
            "frames_with_pose_in_one_only": only_one[name],
        }
    return report


def summary_line(report: dict) -> str:
    """One line per video: MediaPipe's FPS, then per variant the ratio and the landmark error."""
    parts = [
        f"{Path(report['video']).name[:34]:34s} {report.get('model', 'full'):5s} "
        f"MediaPipe {report['mediapipe']['fps']:6.1f} FPS"
    ]
    for name, r in report["ours"].items():
        e = r["landmark_error_torso_pct"]
        err = f"{e['median']:.2f}/{e['p95']:.1f} %" if e["median"] is not None else "-"
        parts.append(f"{name} {r['throughput_ratio']:.2f}x err {err} one-only "
                     f"{r['frames_with_pose_in_one_only']}")  # fmt: skip
    return " | ".join(parts)


def main() -> None:
    from edge import PoseEstimator
    from edge.pose.board import cpu_isa, cpu_model
    from edge.service.media import media_dir

    media = media_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", nargs="+", default=[str(media / "video" / "street.avi")],
                        help="one or more videos, run one after the other")  # fmt: skip
    parser.add_argument("--frames", type=int, default=200, help="per video")
    parser.add_argument("--threads", type=int, default=None, help="ours (default: auto)")
    parser.add_argument("--model", choices=tuple(COMPLEXITY), default="full",
                        help="landmark model, the same on both sides (default full)")  # fmt: skip
    parser.add_argument("--variants", default="auto",
                        help="comma-separated variants of ours, all run in the same pass")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--block", type=int, default=1,
                        help="frames each side runs back to back before the other's turn "
                             "(default 1: alternate frame by frame)")  # fmt: skip
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    ours = {v: PoseEstimator(v, num_threads=args.threads, tracking=True, model=args.model)
            for v in args.variants.split(",")}  # fmt: skip
    reports = [compare(video, ours, args.frames, args.warmup, args.model, args.block)
               for video in args.video]  # fmt: skip
    machine = f"{cpu_model()} ({cpu_isa()}), {os.cpu_count()} cores, {platform.machine()}"
    report = {"machine": machine, "videos": reports} if len(reports) > 1 else {
        "machine": machine, **reports[0]}  # fmt: skip
    print(json.dumps(report, indent=2))
    print(
        f"\n{machine}; error = median/p95 of the mean 2D landmark distance, % of MediaPipe's torso"
    )
    for r in reports:
        print(summary_line(r))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
