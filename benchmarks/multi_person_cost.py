"""What several people cost: video-mode FPS with 1, 2 and 3 people in view, num_poses 1 vs N.

The frames are decoded beforehand (decoding is not measured). Scenes: the clips
``synthetic_arms_up_tfjs.mp4`` (1 person) and ``two_people_handshake_mmhuman3d.mp4`` and
``two_people_hug_1080p_mmaction2.mp4`` (2 people, the hug with one hidden half the time), and
photos with 1, 2 and 3 people found by the detector, each shown as a 90-frame video at 30 FPS
(every person tracked on every frame). For each scene the estimators run on the same frames,
alternating frame by frame (the order rotating), so that drifts in the machine's speed hit all of
them alike. Reported: wall-clock FPS, and CPU time per frame (this process's user + system time,
all threads; steadier than wall time on a machine shared with other work).

    python benchmarks/multi_person_cost.py [--num-poses 1 5] [--passes 3] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def read(path: Path, count: int | None = None) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while count is None or len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames, fps


PHOTOS = {  # people in view -> photo
    1: "standing_businessman_pixabay.jpeg",
    2: "soccer_two_players_openpifpaf.jpeg",
    3: "COCO_val2014_000000000241.jpg",
}


def scenes(media: Path) -> dict[str, tuple[list[np.ndarray], float]]:
    out = {
        "1 person, clip arms_up": read(media / "video" / "synthetic_arms_up_tfjs.mp4"),
        "2 people, clip handshake": read(media / "video" / "two_people_handshake_mmhuman3d.mp4"),
        "1-2 people, clip hug": read(media / "video" / "two_people_hug_1080p_mmaction2.mp4"),
    }
    for people, name in PHOTOS.items():
        photo = cv2.imread(str(media / "images" / name))
        out[f"{people} {'person' if people == 1 else 'people'}, photo x90"] = ([photo] * 90, 30.0)
    return out


def measure(estimators: dict, frames: list[np.ndarray], fps: float, passes: int) -> dict:
    """Seconds per estimator over ``passes`` runs of ``frames`` (reset between passes), the
    order of the estimators rotating frame by frame; poses per frame, detector share."""
    names = list(estimators)
    spent = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    poses = {k: [] for k in names}
    runs = dict.fromkeys(names, 0)
    for _ in range(passes):
        for est in estimators.values():
            est.reset()
            est.reset_counters()
        for i, frame in enumerate(frames):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                t0, c0 = time.perf_counter(), time.process_time()
                found = estimators[name].process(frame, timestamp_ms=i * 1000.0 / fps)
                spent[name] += time.perf_counter() - t0
                cpu[name] += time.process_time() - c0
                poses[name].append(len(found))
        for name, est in estimators.items():
            runs[name] += est.detector_runs
    total = passes * len(frames)
    return {
        name: {
            "fps": round(total / spent[name], 2),
            "ms_per_frame": round(1000 * spent[name] / total, 2),
            "cpu_ms_per_frame": round(1000 * cpu[name] / total, 2),
            "poses_per_frame": round(float(np.mean(poses[name])), 2),
            "detector_share": round(runs[name] / total, 3),
        }
        for name in names
    }


def main() -> int:
    from edge import PoseEstimator
    from edge.pose.board import cpu_model
    from edge.service.media import media_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-poses", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--variant", default="float")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--only", metavar="TEXT", help="only the scenes whose name has TEXT")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    estimators = {
        f"num_poses={n}": PoseEstimator(args.variant, num_threads=args.threads, num_poses=n)
        for n in args.num_poses
    }
    first = next(iter(estimators.values()))
    machine = {"cpu": cpu_model(), "machine": platform.machine(), "threads": first.num_threads,
               "variant": first.variant}  # fmt: skip
    print(f"{machine}")
    results = {"machine": machine, "scenes": {}}
    for scene, (frames, fps) in scenes(media_dir()).items():
        if args.only and args.only not in scene:
            continue
        for est in estimators.values():  # warm-up
            est.reset()
            for i, frame in enumerate(frames[:5]):
                est.process(frame, timestamp_ms=i * 1000.0 / fps)
        r = measure(estimators, frames, fps, args.passes)
        results["scenes"][scene] = r
        base = r[next(iter(r))]
        for name, v in r.items():
            wall = v["ms_per_frame"] / base["ms_per_frame"] - 1
            cpu = v["cpu_ms_per_frame"] / base["cpu_ms_per_frame"] - 1
            print(f"{scene:26s} {name:12s} {v['fps']:6.2f} FPS {v['ms_per_frame']:6.2f} ms "
                  f"({wall:+6.1%}) CPU {v['cpu_ms_per_frame']:6.2f} ms ({cpu:+6.1%}) "
                  f"poses/frame {v['poses_per_frame']:.2f} detector on {v['detector_share']:.1%}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
