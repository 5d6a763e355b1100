"""The int8 estimator in video mode, side by side with float, on every test video.

The accuracy gate (``models/quantize.py``) judges single crops: float's ROI, the two estimators on
the same crop. In video mode each model carries its own ROI from frame to frame (tracking) and its
own smoothing, so a small error could grow, or a track be lost. This runs ``PoseEstimator`` with
``variant="float"`` and ``variant="int8"`` over the same frames of each video (every frame, video
mode, one person, the service's defaults otherwise) and reports per video:

- ``fallback_share``: the share of int8's estimates handed to the float model
  (``landmarks.INT8_FALLBACK_BAND``): what the hand-over costs in practice;
- the landmark difference int8 vs float on frames where both found the person (mean distance over
  the 33 body landmarks / float's torso length): mean, 95th percentile, worst;
- frames where one found a person and the other did not.

    BLAZEPOSE_EDGE_MEDIA=../shared/media python benchmarks/int8_video.py [--json OUT]

Needs the int8 estimator installed (``./install.sh --int8``) and the test media.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import PoseEstimator  # noqa: E402
from edge.service.media import has_media, media_dir  # noqa: E402
from models.quantize import landmark_error  # noqa: E402


def compare(path: Path, est_float: PoseEstimator, est_int8: PoseEstimator) -> dict:
    est_float.reset()
    est_int8.reset()
    est_int8.reset_counters()
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    errors, differ, frames = [], 0, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        t = frames * 1000.0 / fps
        a = est_float.process(frame, timestamp_ms=t)
        b = est_int8.process(frame, timestamp_ms=t)
        frames += 1
        if bool(a) != bool(b):
            differ += 1
        elif a:
            errors.append(landmark_error(b[0].landmarks, a[0].landmarks))
    capture.release()
    errors = np.array(errors) if errors else np.zeros(1)
    return {
        "video": path.name,
        "frames": frames,
        "both_found": int(len(errors)),
        "presence_differs": differ,
        "fallback_share": round(est_int8.fallback_share, 4),
        "mean": float(errors.mean()),
        "p95": float(np.percentile(errors, 95)),
        "worst": float(errors.max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    media = media_dir()
    if not has_media(media):
        raise SystemExit(f"no test media at {media}: set BLAZEPOSE_EDGE_MEDIA")
    est_float = PoseEstimator(variant="float", num_threads=1)
    est_int8 = PoseEstimator(variant="int8", num_threads=1)
    rows = []
    for path in sorted((media / "video").iterdir()):
        row = compare(path, est_float, est_int8)
        rows.append(row)
        print(
            f"{row['video']:48s} {row['frames']:4d} frames, both {row['both_found']:4d}, "
            f"differ {row['presence_differs']:3d}, handed to float {row['fallback_share']:6.1%}, "
            f"vs float mean {row['mean']:.2%} p95 {row['p95']:.2%} worst {row['worst']:.2%}"
        )
    estimates = sum(r["both_found"] for r in rows)
    print(
        f"all: {sum(r['frames'] for r in rows)} frames, presence differs on "
        f"{sum(r['presence_differs'] for r in rows)}, mean vs float "
        f"{sum(r['mean'] * r['both_found'] for r in rows) / max(estimates, 1):.2%}, handed to "
        f"float {sum(r['fallback_share'] * r['frames'] for r in rows) / sum(r['frames'] for r in rows):.1%} "
        "(frame-weighted)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
