"""Identity on the multi-person clips: does each person keep one id while in view?

Runs video mode with ``num_poses`` (default 5) on the clips in ``<media>/video/`` and counts id
switches. The clips have no identity labels, so a switch is counted where the output shows one:

- *re-acquired*: a track ends and, within ``--gap-ms`` (default 1000), a new id starts where it
  ended (its hip centre within one torso length of the ended track's last one): the same person
  under a new id;
- *jump*: a track's hip centre moves more than one torso length from one frame to the next: the
  id went over to someone (or something) else.

Tracks whose median torso is under 10 px are not people (on walking_one_by_one: a table's
foot, which the single-person pipeline finds too); they are counted apart ("specks") and left
out of the ids and switches.

Also reported: ids used, frames with 0/1/2/3+ poses, the detector's share of frames.

    python benchmarks/multi_person_identity.py [--num-poses 5] [--clips NAME ...] [--json OUT]
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

MIN_TORSO_PX = 10.0
CLIPS = {  # clip -> people in it (None: several, one after another)
    "two_people_hug_1080p_mmaction2.mp4": 2,
    "two_people_handshake_mmhuman3d.mp4": 2,
    "basketball_two_players_lowres_mmaction2.mp4": 2,
    "walking_one_by_one_intel.mp4": None,
}


def hip_and_torso(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    hip = landmarks[[23, 24], :2].mean(axis=0)
    shoulder = landmarks[[11, 12], :2].mean(axis=0)
    return hip, float(np.linalg.norm(shoulder - hip))


def count_switches(tracks: dict[int, list[tuple[float, np.ndarray, float]]], gap_ms: float) -> dict:
    """``tracks``: id -> [(t_ms, hip, torso)] in time order. Returns re-acquisitions and jumps."""
    jumps = 0
    for samples in tracks.values():
        for (_, a, size), (_, b, _) in zip(samples, samples[1:], strict=False):
            jumps += np.linalg.norm(b - a) > size
    reacquired = 0
    ends = [(samples[-1], tid) for tid, samples in tracks.items()]
    used: set[int] = set()
    for tid, samples in sorted(tracks.items()):
        t0, hip0, _ = samples[0]
        for (t_end, hip_end, size), old in ends:
            near = np.linalg.norm(hip0 - hip_end) <= size
            if old != tid and old not in used and 0 < t0 - t_end <= gap_ms and near:
                reacquired += 1
                used.add(old)
                break
    return {"reacquired": int(reacquired), "jumps": int(jumps), "switches": int(reacquired + jumps)}


def run_clip(est, path: Path, gap_ms: float) -> dict:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    est.reset()
    est.reset_counters()
    tracks: dict[int, list] = {}
    per_frame = []
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = index * 1000.0 / fps
        poses = est.process(frame, timestamp_ms=t)
        per_frame.append(len(poses))
        for pose in poses:
            hip, size = hip_and_torso(pose.landmarks)
            tracks.setdefault(pose.id, []).append((t, hip, size))
        index += 1
    counts = np.bincount(np.minimum(per_frame, 3), minlength=4)
    specks = [tid for tid, s in tracks.items() if np.median([x[2] for x in s]) < MIN_TORSO_PX]
    for tid in specks:
        del tracks[tid]
    return {
        "frames": index,
        "ids": len(tracks),
        "specks": len(specks),
        "frames_with_poses": {
            "0": int(counts[0]),
            "1": int(counts[1]),
            "2": int(counts[2]),
            "3+": int(counts[3]),
        },  # fmt: skip
        "detector_share": round(est.detector_share, 3),
        **count_switches(tracks, gap_ms),
    }


def main() -> int:
    from edge import PoseEstimator
    from edge.service.media import media_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-poses", type=int, default=5)
    parser.add_argument("--variant", default="float")
    parser.add_argument("--gap-ms", type=float, default=1000.0)
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    est = PoseEstimator(args.variant, num_poses=args.num_poses)
    print(f"num_poses={args.num_poses}")
    print(f"{'clip':44s} {'frames':>6s} {'people':>6s} {'ids':>4s} {'re-acq':>6s} {'jumps':>5s} "
          f"{'switch':>6s} {'specks':>6s} {'0/1/2/3+ poses':>16s} {'det%':>5s}")  # fmt: skip
    results = {}
    for clip in args.clips:
        r = run_clip(est, media_dir() / "video" / clip, args.gap_ms)
        results[clip] = r
        people = CLIPS.get(clip)
        hist = "/".join(str(v) for v in r["frames_with_poses"].values())
        print(f"{clip:44s} {r['frames']:6d} {people or 'many':>6} {r['ids']:4d} "
              f"{r['reacquired']:6d} {r['jumps']:5d} {r['switches']:6d} {r['specks']:6d} {hist:>16s} "
              f"{100 * r['detector_share']:5.1f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
