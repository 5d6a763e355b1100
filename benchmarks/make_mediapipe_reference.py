"""Generate MediaPipe BlazePose reference outputs ("oracle") for fidelity tests.

This script is NOT part of the package and does not run in CI. It needs the official
``mediapipe`` wheel, which lives in a scratch venv outside the project::

    python3.11 -m venv /work/scratch/mpvenv
    /work/scratch/mpvenv/bin/pip install mediapipe==0.10.14 opencv-python-headless

Run it from the project root::

    /work/scratch/mpvenv/bin/python benchmarks/make_mediapipe_reference.py \\
        --media ../shared/media --out tests/data/mediapipe_reference.json

``--model lite|full|heavy`` picks MediaPipe's ``model_complexity`` (0, 1, 2; default full). The
wheel ships only ``pose_landmark_full.tflite``; for lite and heavy, MediaPipe would download the
model at run time. Copy ``pose_landmark_lite.tflite`` / ``pose_landmark_heavy.tflite`` (from
``blazepose-edge models fetch --model lite --model heavy``, same SHA-256) into the scratch venv's
``mediapipe/modules/pose_landmark/`` first; the script refuses to run without them. For lite and
heavy the outputs default to ``tests/data/mediapipe_reference_<model>.json`` and
``tests/data/mediapipe_reference_video_<model>.json``::

    /work/scratch/mpvenv/bin/python benchmarks/make_mediapipe_reference.py --model lite

It writes two JSON files:

* ``--out``: static-image mode (``static_image_mode=True``) on every jpg/jpeg/png in
  ``MEDIA/images``, sorted by name.
* ``--out-video`` (default ``tests/data/mediapipe_reference_video.json``): video mode
  (``static_image_mode=False, smooth_landmarks=True``) on every frame of the videos in
  ``VIDEOS`` below, one fresh tracker per video.

Per image / frame the record is either ``"pose": null`` or a pose with

* ``landmarks``: 33 x ``[x_px, y_px, z_px, visibility, presence]`` where
  ``x_px = x * width``, ``y_px = y * height``, ``z_px = z * width`` (MediaPipe's z uses the
  same scale as x). ``presence`` is ``null`` when MediaPipe leaves the field unset (the legacy
  ``mp.solutions.pose`` graph in 0.10.14 does not fill it).
* ``world_landmarks``: 33 x ``[x, y, z]`` in metres, hip-centred.

Pixels are rounded to 3 decimals; visibility, presence and world coordinates to 4.
The script also prints a per-image summary and MediaPipe's timings on this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import cv2
import mediapipe as mp

COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}  # MediaPipe's model_complexity per model
IMAGE_EXTS = {".jpg", ".jpeg", ".png"}
VIDEOS = ("street.avi", "synthetic_arms_up_tfjs.mp4")

STATIC_OPTIONS = {
    "static_image_mode": True,
    "model_complexity": 1,
    "enable_segmentation": False,
    "min_detection_confidence": 0.5,
}
VIDEO_OPTIONS = {
    "static_image_mode": False,
    "model_complexity": 1,
    "smooth_landmarks": True,
    "enable_segmentation": False,
    "min_detection_confidence": 0.5,
    "min_tracking_confidence": 0.5,
}

PX_DIGITS = 3
SCORE_DIGITS = 4


def _opt(landmark, field: str) -> float | None:
    """Return a landmark's optional proto field, or None when it is unset."""
    if landmark.HasField(field):
        return round(getattr(landmark, field), SCORE_DIGITS)
    return None


def pose_record(results, width: int, height: int) -> dict | None:
    """Convert a ``Pose.process`` result to the JSON pose record (None when no pose)."""
    if results.pose_landmarks is None:
        return None
    landmarks = [
        [
            round(lm.x * width, PX_DIGITS),
            round(lm.y * height, PX_DIGITS),
            round(lm.z * width, PX_DIGITS),
            _opt(lm, "visibility"),
            _opt(lm, "presence"),
        ]
        for lm in results.pose_landmarks.landmark
    ]
    world = None
    if results.pose_world_landmarks is not None:
        world = [
            [round(lm.x, SCORE_DIGITS), round(lm.y, SCORE_DIGITS), round(lm.z, SCORE_DIGITS)]
            for lm in results.pose_world_landmarks.landmark
        ]
    return {"landmarks": landmarks, "world_landmarks": world}


def torso_length(pose: dict | None) -> float | None:
    """Distance in pixels between the shoulder midpoint (11, 12) and hip midpoint (23, 24)."""
    if pose is None:
        return None
    lms = pose["landmarks"]
    sx = (lms[11][0] + lms[12][0]) / 2
    sy = (lms[11][1] + lms[12][1]) / 2
    hx = (lms[23][0] + lms[24][0]) / 2
    hy = (lms[23][1] + lms[24][1]) / 2
    return math.hypot(sx - hx, sy - hy)


def run_images(image_dir: Path, options: dict) -> tuple[list[dict], list[float]]:
    """Run static-image mode on every image; return records and per-call times (seconds)."""
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    records, times = [], []
    with mp.solutions.pose.Pose(**options) as pose:
        for path in paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise RuntimeError(f"cannot read {path}")
            height, width = bgr.shape[:2]
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            results = pose.process(rgb)
            times.append(time.perf_counter() - t0)
            records.append(
                {
                    "file": path.name,
                    "width": width,
                    "height": height,
                    "pose": pose_record(results, width, height),
                }
            )
    return records, times


def run_video(path: Path, options: dict) -> tuple[dict, list[float]]:
    """Run video mode on every frame of one video; return its record and per-call times."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RuntimeError(f"cannot open {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames, times = [], []
    width = height = 0
    with mp.solutions.pose.Pose(**options) as pose:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            height, width = bgr.shape[:2]
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            results = pose.process(rgb)
            times.append(time.perf_counter() - t0)
            frames.append(pose_record(results, width, height))
    cap.release()
    record = {
        "file": path.name,
        "width": width,
        "height": height,
        "fps": fps,
        "num_frames": len(frames),
        "frames": [{"index": i, "pose": p} for i, p in enumerate(frames)],
    }
    return record, times


def write_json(path: Path, header: dict, key: str, items: list) -> None:
    """Write ``header`` plus ``key: items`` with one compact item (or frame) per line."""

    def compact(obj) -> str:
        return json.dumps(obj, separators=(",", ":"))

    lines = ["{"]
    for name, value in header.items():
        lines.append(f"  {json.dumps(name)}: {json.dumps(value)},")
    lines.append(f"  {json.dumps(key)}: [")
    item_lines = []
    for item in items:
        if "frames" in item:
            head = {k: v for k, v in item.items() if k != "frames"}
            frames = ",\n      ".join(compact(f) for f in item["frames"])
            item_lines.append(f'    {compact(head)[:-1]},"frames":[\n      {frames}\n    ]}}')
        else:
            item_lines.append(f"    {compact(item)}")
    lines.append(",\n".join(item_lines))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # sanity check: the hand-assembled layout is valid JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def model_file(model: str) -> Path:
    """The landmark model MediaPipe will load for ``model``; exits if it is not in the venv (it
    would try to download it)."""
    folder = Path(mp.__file__).resolve().parent / "modules" / "pose_landmark"
    path = folder / f"pose_landmark_{model}.tflite"
    if not path.is_file():
        raise SystemExit(
            f"{path} is missing: copy pose_landmark_{model}.tflite there first (blazepose-edge "
            f"models fetch --model {model} puts it in the models folder)"
        )
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument(
        "--model", choices=tuple(COMPLEXITY), default="full",
        help="landmark model: lite, full or heavy (model_complexity 0, 1, 2; default full)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="image reference (default: by model)")
    parser.add_argument("--out-video", type=Path, help="video reference (default: by model)")
    args = parser.parse_args(argv)
    suffix = "" if args.model == "full" else f"_{args.model}"
    args.out = args.out or Path(f"tests/data/mediapipe_reference{suffix}.json")
    args.out_video = args.out_video or Path(f"tests/data/mediapipe_reference_video{suffix}.json")
    static_options = {**STATIC_OPTIONS, "model_complexity": COMPLEXITY[args.model]}
    video_options = {**VIDEO_OPTIONS, "model_complexity": COMPLEXITY[args.model]}
    landmark_model = model_file(args.model)

    command = "python " + shlex.join(["benchmarks/make_mediapipe_reference.py", *sys.argv[1:]])
    common = {
        "generator": "benchmarks/make_mediapipe_reference.py",
        "command": command,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mediapipe_version": mp.__version__,
        "opencv_version": cv2.__version__,
        "python_version": platform.python_version(),
        "model": args.model,
        "model_sha256": sha256_of(landmark_model),
        "landmark_fields": ["x_px", "y_px", "z_px", "visibility", "presence"],
        "world_landmark_fields": ["x_m", "y_m", "z_m"],
        "notes": (
            "x_px=x*width, y_px=y*height, z_px=z*width; presence is null when MediaPipe "
            "leaves it unset; pixels rounded to 3 decimals, scores and world to 4"
        ),
    }

    images, image_times = run_images(args.media / "images", static_options)
    write_json(args.out, {**common, "mode": "image", "options": static_options}, "images", images)

    videos, video_times = [], {}
    for name in VIDEOS:
        record, times = run_video(args.media / "video" / name, video_options)
        videos.append(record)
        video_times[name] = times
    write_json(
        args.out_video, {**common, "mode": "video", "options": video_options}, "videos", videos
    )

    print(f"{'image':<52} {'WxH':>10} {'found':>5} {'torso_px':>9}")
    for rec in images:
        torso = torso_length(rec["pose"])
        found = "yes" if rec["pose"] else "no"
        torso_s = f"{torso:.1f}" if torso is not None else "-"
        size = f"{rec['width']}x{rec['height']}"
        print(f"{rec['file']:<52} {size:>10} {found:>5} {torso_s:>9}")
    for rec in videos:
        hits = sum(f["pose"] is not None for f in rec["frames"])
        print(f"video {rec['file']}: pose in {hits}/{rec['num_frames']} frames")

    print(f"\nmachine: nproc={os.cpu_count()} cpu={cpu_model()}")
    if len(image_times) > 1:
        rest = image_times[1:]
        print(
            f"static mode: first call {image_times[0] * 1e3:.1f} ms, then mean "
            f"{sum(rest) / len(rest) * 1e3:.1f} ms/image over {len(rest)} images"
        )
    for name, times in video_times.items():
        print(
            f"video mode {name}: {len(times) / sum(times):.1f} frames/s "
            f"(process() only, {len(times)} frames, mean {sum(times) / len(times) * 1e3:.1f} ms)"
        )
    for path in (args.out, args.out_video):
        print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
