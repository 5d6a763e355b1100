"""blazepose-edge against MediaPipe 0.10.14 on the same decoded frames, alternating, in one run.

Needs ``mediapipe==0.10.14`` next to this project's dependencies (a scratch venv; the package
itself never imports mediapipe)::

    python3.11 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==0.10.14 numba ai-edge-litert psutil paho-mqtt
    PYTHONPATH=. /tmp/mpvenv/bin/python benchmarks/compare_mediapipe.py [--video V] [--frames N]

Both run video mode (tracking + smoothing; MediaPipe's legacy Pose with model_complexity=1). Each
frame is given to both, the order alternating frame by frame so that neither always runs on a
warmer cache; MediaPipe's time includes the BGR->RGB conversion it needs, ours starts from BGR.
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


def torso(lm: np.ndarray) -> float:
    return float(np.linalg.norm((lm[11, :2] + lm[12, :2]) / 2 - (lm[23, :2] + lm[24, :2]) / 2))


def main() -> None:
    import mediapipe as mp

    from edge import PoseEstimator

    media = Path(os.environ.get("BLAZEPOSE_EDGE_MEDIA") or ROOT.parent / "shared" / "media")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(media / "video" / "street.avi"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="ours (default: auto)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < args.frames + args.warmup:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0

    ours = PoseEstimator(tracking=True, num_threads=args.threads)
    theirs = mp.solutions.pose.Pose(
        static_image_mode=False, model_complexity=1, smooth_landmarks=True
    )
    t_ours, t_theirs, errors, both, only_one = [], [], [], 0, 0
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]

        def run_ours(frame=frame, i=i):
            t0 = time.perf_counter()
            poses = ours.process(frame, timestamp_ms=i * 1000.0 / fps)
            return time.perf_counter() - t0, poses

        def run_theirs(frame=frame):
            t0 = time.perf_counter()
            result = theirs.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            return time.perf_counter() - t0, result

        if i % 2:
            (a, poses), (b, result) = run_ours(), run_theirs()
        else:
            (b, result), (a, poses) = run_theirs(), run_ours()
        if i < args.warmup:
            continue
        t_ours.append(a)
        t_theirs.append(b)
        if result.pose_landmarks and poses:
            ref = np.array([[p.x * w, p.y * h] for p in result.pose_landmarks.landmark])
            errors.append(
                np.linalg.norm(poses[0].landmarks[:, :2] - ref, axis=1).mean() / torso(ref)
            )
            both += 1
        elif bool(result.pose_landmarks) != bool(poses):
            only_one += 1

    ours_fps = len(t_ours) / sum(t_ours)
    theirs_fps = len(t_theirs) / sum(t_theirs)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "video": args.video,
        "frames": len(t_ours),
        "ours": {
            "fps": round(ours_fps, 1),
            "ms_p50": round(1000 * float(np.median(t_ours)), 2),
            "threads": ours.num_threads,
        },  # fmt: skip
        "mediapipe": {
            "fps": round(theirs_fps, 1),
            "ms_p50": round(1000 * float(np.median(t_theirs)), 2),
            "version": mp.__version__,
        },  # fmt: skip
        "throughput_ratio": round(ours_fps / theirs_fps, 2),
        "landmark_error_torso_pct": {
            "median": round(100 * float(np.median(errors)), 3) if errors else None,
            "p95": round(100 * float(np.percentile(errors, 95)), 3) if errors else None,
        },
        "frames_with_pose_in_both": both,
        "frames_with_pose_in_one_only": only_one,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
