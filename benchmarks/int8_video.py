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

Beside it, the same figures for float run on the frames with every pixel moved by -1, 0 or +1
grey level (``float+-1``, a fixed seed): float's own noise floor in video mode. On hard clips (small,
half-hidden or overlapping figures, flags near the threshold) a tiny change of input can make a
track end a frame earlier or re-detect onto another person, and from then on the two runs compare
different ROIs: the floor says how much of int8's difference is that, not quantization.

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


def _row(errors: list[float], differ: int, frames: int) -> dict:
    e = np.array(errors) if errors else np.zeros(1)
    return {
        "both_found": len(errors),
        "presence_differs": differ,
        "mean": float(e.mean()),
        "p95": float(np.percentile(e, 95)),
        "worst": float(e.max()),
    }


def compare(path: Path, estimators: dict[str, PoseEstimator], seed: int = 0) -> dict:
    """``estimators``: "float", "int8" and "float+-1" (fed noisy frames), each vs "float"."""
    for est in estimators.values():
        est.reset()
        est.reset_counters()
    rng = np.random.default_rng(seed)
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    errors = {name: [] for name in estimators if name != "float"}
    differ = dict.fromkeys(errors, 0)
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        t = frames * 1000.0 / fps
        ref = estimators["float"].process(frame, timestamp_ms=t)
        noise = rng.integers(-1, 2, size=frame.shape, dtype=np.int16)
        noisy = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        for name in errors:
            got = estimators[name].process(noisy if name == "float+-1" else frame, timestamp_ms=t)
            if bool(got) != bool(ref):
                differ[name] += 1
            elif got:
                errors[name].append(landmark_error(got[0].landmarks, ref[0].landmarks))
        frames += 1
    capture.release()
    return {
        "video": path.name,
        "frames": frames,
        "fallback_share": round(estimators["int8"].fallback_share, 4),
        **{name: _row(errors[name], differ[name], frames) for name in errors},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    media = media_dir()
    if not has_media(media):
        raise SystemExit(f"no test media at {media}: set BLAZEPOSE_EDGE_MEDIA")
    estimators = {
        "float": PoseEstimator(variant="float", num_threads=1),
        "int8": PoseEstimator(variant="int8", num_threads=1),
        "float+-1": PoseEstimator(variant="float", num_threads=1),
    }
    rows = []
    for path in sorted((media / "video").iterdir()):
        row = compare(path, estimators)
        rows.append(row)
        print(f"{row['video']} ({row['frames']} frames; int8 handed {row['fallback_share']:.1%} "
              "of its estimates to float)")  # fmt: skip
        for name in ("int8", "float+-1"):
            r = row[name]
            print(
                f"  {name:9s} vs float: both found {r['both_found']:4d}, found differently "
                f"{r['presence_differs']:3d}, mean {r['mean']:.2%}, p95 {r['p95']:.2%}, worst "
                f"{r['worst']:.2%}"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
