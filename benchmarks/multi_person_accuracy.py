"""Several people per photo: BlazePose (static mode) against human labels, num_poses 1 vs 5.

Reads the labelled photos in ``<media>/annotated/`` (``$BLAZEPOSE_EDGE_MEDIA`` or
``../shared/media``): MPII (16 joints), PoseTrack18, OCHuman and Human-Art (COCO's 17),
CrowdPose and ExLPose (CrowdPose's 14). Each dataset's keypoints are mapped onto the BlazePose
landmarks they name (COCO: nose 0, eyes 2/5, ears 7/8, shoulders 11/12, elbows 13/14, wrists
15/16, hips 23/24, knees 25/26, ankles 27/28; head top, neck, pelvis and the like have no
BlazePose landmark and are left out).

For each labelled person (not ``iscrowd``, a torso labelled: a shoulder and the opposite hip),
the reference length is the torso diameter (the longer of left shoulder-right hip and right
shoulder-left hip). Predicted poses are matched one to one to labelled people, greedily by the
mean normalised distance over the labelled keypoints. A labelled person is *found* when matched
with at least half of their keypoints within 0.2 of their torso. PCK@0.2 counts every labelled
keypoint of every labelled person (a person nobody was matched to counts as all wrong).

    python benchmarks/multi_person_accuracy.py [--num-poses 1 5] [--min-detection-score S]
        [--json OUT]
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

# dataset keypoint index -> BlazePose landmark
COCO17 = {0: 0, 1: 2, 2: 5, 3: 7, 4: 8, 5: 11, 6: 12, 7: 13, 8: 14, 9: 15, 10: 16, 11: 23,
          12: 24, 13: 25, 14: 26, 15: 27, 16: 28}  # fmt: skip
POSETRACK = {k: v for k, v in COCO17.items() if k not in (1, 2)}  # 1, 2: head bottom, head top
CROWDPOSE14 = {
    0: 11,
    1: 12,
    2: 13,
    3: 14,
    4: 15,
    5: 16,
    6: 23,
    7: 24,
    8: 25,
    9: 26,
    10: 27,
    11: 28,
}  # fmt: skip  (12 head, 13 neck: none)
MPII16 = {
    0: 28,
    1: 26,
    2: 24,
    3: 23,
    4: 25,
    5: 27,
    10: 16,
    11: 14,
    12: 12,
    13: 11,
    14: 13,
    15: 15,
}  # fmt: skip  (pelvis, thorax, neck, head top: none)
DATASETS = {
    "mpii": ("test_mpii.json", MPII16),
    "posetrack18": ("test_posetrack18_val.json", POSETRACK),
    "ochuman_occlusion": ("test_ochuman.json", COCO17),
    "humanart_acrobatics": ("test_humanart_acrobatics_subset.json", COCO17),
    "crowdpose": ("test_crowdpose.json", CROWDPOSE14),
    "exlpose_lowlight": ("test_exlpose.json", CROWDPOSE14),
}
THRESHOLD = 0.2


def load(folder: Path, labels: str, mapping: dict) -> dict[str, list[dict[int, np.ndarray]]]:
    """image file -> labelled people, each {BlazePose landmark: (x, y) pixels}."""
    data = json.loads((folder / labels).read_text())
    people: dict[str, list[dict[int, np.ndarray]]] = {}
    if isinstance(data, list):  # MPII: one entry per person
        for entry in data:
            kp = {mapping[i]: np.array(xy, float) for i, (xy, vis) in
                  enumerate(zip(entry["joints"], entry["joints_vis"], strict=True))
                  if vis and i in mapping}  # fmt: skip
            people.setdefault(entry["image"], []).append(kp)
        return people
    files = {im["id"]: im["file_name"] for im in data["images"]}
    for f in files.values():
        people.setdefault(f, [])
    for ann in data["annotations"]:
        if ann.get("iscrowd"):
            continue
        k = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        kp = {mapping[i]: k[i, :2] for i in range(len(k)) if k[i, 2] > 0 and i in mapping}
        people[files[ann["image_id"]]].append(kp)
    return people


def torso(person: dict[int, np.ndarray]) -> float | None:
    pairs = [(11, 24), (12, 23)]
    lengths = [
        np.linalg.norm(person[a] - person[b]) for a, b in pairs if a in person and b in person
    ]
    return max(lengths) if lengths else None


def normalised_errors(person: dict[int, np.ndarray], pose: np.ndarray, size: float) -> np.ndarray:
    idx = sorted(person)
    truth = np.array([person[i] for i in idx])
    return np.linalg.norm(pose[idx, :2] - truth, axis=1) / size


def score_image(people: list[dict], poses: list[np.ndarray]) -> tuple[int, int, int, int, int]:
    """(people, found, keypoints, correct keypoints, people left out for lack of a torso)."""
    scored = [(p, torso(p)) for p in people if len(p) >= 4]
    left_out = len(people) - sum(1 for _, t in scored if t)
    scored = [(p, t) for p, t in scored if t]
    pairs = sorted(
        (float(normalised_errors(p, pose, t).mean()), i, j)
        for i, (p, t) in enumerate(scored)
        for j, pose in enumerate(poses)
    )
    taken_people, taken_poses, match = set(), set(), {}
    for _, i, j in pairs:
        if i not in taken_people and j not in taken_poses:
            taken_people.add(i)
            taken_poses.add(j)
            match[i] = j
    found = keypoints = correct = 0
    for i, (p, t) in enumerate(scored):
        keypoints += len(p)
        if i in match:
            ok = int((normalised_errors(p, poses[match[i]], t) < THRESHOLD).sum())
            correct += ok
            found += ok >= len(p) / 2
    return len(scored), found, keypoints, correct, left_out


def main() -> int:
    from edge import PoseEstimator
    from edge.service.media import media_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-poses", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--variant", default="float")
    parser.add_argument("--min-detection-score", type=float, default=0.5)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    root = media_dir() / "annotated"
    estimators = {
        n: PoseEstimator(
            args.variant, tracking=False, num_poses=n, min_detection_score=args.min_detection_score
        )
        for n in args.num_poses
    }
    results: dict = {}
    header = f"{'dataset':22s} {'imgs':>4s} {'people':>6s}"
    for n in args.num_poses:
        header += f"  {'found N=' + str(n):>11s} {'PCK N=' + str(n):>9s}"
    print(header)
    for name, (labels, mapping) in DATASETS.items():
        folder = root / name
        images = load(folder, labels, mapping)
        row = {"images": len(images)}
        for n, est in estimators.items():
            totals = np.zeros(5, int)
            for file, people in images.items():
                frame = cv2.imread(str(folder / file))
                if frame is None:
                    raise SystemExit(f"cannot read {folder / file}")
                poses = [p.landmarks for p in est.process(frame)]
                totals += score_image(people, poses)
            people_n, found, kps, correct, left_out = (int(v) for v in totals)
            row["people"], row["left_out"] = people_n, left_out
            row[f"n{n}"] = {
                "found": found,
                "found_share": round(found / people_n, 3) if people_n else None,
                "keypoints": kps,
                "pck": round(correct / kps, 3) if kps else None,
            }
        results[name] = row
        line = f"{name:22s} {row['images']:4d} {row['people']:6d}"
        for n in args.num_poses:
            r = row[f"n{n}"]
            line += f"  {r['found']:4d} ({r['found_share']:4.0%}) {r['pck']:9.1%}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
