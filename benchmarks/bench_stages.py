"""Per-stage latency of the float pipeline on real video frames, and the warp kernel choice.

    .venv/bin/python benchmarks/bench_stages.py [--video PATH] [--frames N] [--threads N]

Times each stage separately on the same decoded frames (median and p95, ms): detector
preprocess / invoke / decode+NMS, estimator preprocess with the Numba kernel and with
cv2.warpAffine side by side, estimator invoke, decode, smoothing. Numbers depend on the machine:
quote them with the CPU they came from (printed at the top).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from edge.detector import Detector
from edge.landmarks import LandmarkModel
from edge.models import locate
from edge.smoothing import PoseSmoother
from edge.tracking import roi_from_detection, roi_from_landmarks

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000.0


def main() -> None:
    media = Path(os.environ.get("BLAZEPOSE_EDGE_MEDIA") or ROOT.parent / "shared" / "media")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(media / "video" / "street.avi"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    det = Detector(locate("pose_detection"), args.threads)
    numba_lm = LandmarkModel(locate("pose_landmark_full"), args.threads, warp="numba")
    cv_lm = LandmarkModel(locate("pose_landmark_full"), args.threads, warp="opencv")
    smoother = PoseSmoother()
    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"backend: {det.model.backend}, threads {det.model.num_threads}; video {args.video}")
    print(
        f"frames: {len(frames)} ({frames[0].shape[1]}x{frames[0].shape[0]}), warm-up {args.warmup}"
    )

    samples: dict[str, list[float]] = {}
    roi = None
    for i, frame in enumerate(frames):
        t: dict[str, float] = {}
        size = (frame.shape[1], frame.shape[0])
        padding, t["detector preprocess"] = timed(det.preprocess, frame)
        raw, t["detector invoke"] = timed(det.infer)
        dets, t["detector decode+nms"] = timed(det.postprocess, *raw, padding, size)
        if roi is None and dets:
            roi = roi_from_detection(dets[0])
        if roi is None:
            continue
        _, t["estimator preprocess (opencv)"] = timed(cv_lm.preprocess, frame, roi)
        padding, t["estimator preprocess (numba)"] = timed(numba_lm.preprocess, frame, roi)
        _, t["estimator invoke"] = timed(numba_lm.infer)
        res, t["estimator decode"] = timed(numba_lm.postprocess, roi, padding, frame.shape)
        if res is None:
            roi = None
            continue
        (norm, _), t["smoothing"] = timed(smoother, res.norm, res.world, size, (i + 1) * 33_333_000)
        roi = roi_from_landmarks(norm, size)
        if i >= args.warmup:
            for k, v in t.items():
                samples.setdefault(k, []).append(v)

    print(f"\n{'stage':32s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for k, v in samples.items():
        a = np.array(v)
        print(f"{k:32s} {len(a):5d} {np.median(a):8.3f} {np.percentile(a, 95):8.3f}")
    tracked = ["estimator preprocess (numba)", "estimator invoke", "estimator decode", "smoothing"]
    per_frame = sum(np.median(samples[k]) for k in tracked)
    invoke = np.median(samples["estimator invoke"])
    print(
        f"\ntracked frame (no detector): {per_frame:.2f} ms p50 sum -> {1000 / per_frame:.0f} FPS; "
        f"outside invoke {100 * (per_frame - invoke) / per_frame:.1f}%"
    )


if __name__ == "__main__":
    main()
