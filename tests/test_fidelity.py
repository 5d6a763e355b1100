"""Fidelity against MediaPipe 0.10.14 on real photos and videos.

The reference files were made by ``benchmarks/make_mediapipe_reference.py`` (MediaPipe's legacy
``mp.solutions.pose``, model_complexity=1) and are committed; mediapipe is not needed here.
"""

import cv2
import numpy as np
import pytest

TOLERANCE = 0.01  # mean landmark error as a share of the torso length


def torso_length(landmarks: np.ndarray) -> float:
    shoulders = (landmarks[11, :2] + landmarks[12, :2]) / 2
    hips = (landmarks[23, :2] + landmarks[24, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def landmark_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Mean 2D distance over the 33 landmarks, as a share of the reference torso length."""
    return float(np.linalg.norm(ours[:, :2] - ref[:, :2], axis=1).mean()) / torso_length(ref)


def test_reference_covers_every_image(media, reference_images):
    on_disk = sorted(p.name for p in (media / "images").iterdir())
    assert [item["file"] for item in reference_images["images"]] == on_disk


def test_static_images_match_mediapipe(media, reference_images, static_estimator):
    failures, errors = [], {}
    for item in reference_images["images"]:
        frame = cv2.imread(str(media / "images" / item["file"]))
        poses = static_estimator.process(frame)
        if item["pose"] is None:
            if poses:
                failures.append(f"{item['file']}: MediaPipe finds no person, we find one")
            continue
        if not poses:
            failures.append(f"{item['file']}: MediaPipe finds a person, we find none")
            continue
        ref = np.array(item["pose"]["landmarks"], dtype=np.float64)
        err = landmark_error(poses[0].landmarks, ref)
        errors[item["file"]] = err
        if err > TOLERANCE:
            failures.append(f"{item['file']}: mean error {err:.2%} of torso")
        vis = np.abs(poses[0].landmarks[:, 3] - ref[:, 3]).max()
        if vis > 0.05:
            failures.append(f"{item['file']}: visibility differs by {vis:.3f}")
        world = np.abs(poses[0].world_landmarks - np.array(item["pose"]["world_landmarks"])).mean()
        if world > 0.01:
            failures.append(f"{item['file']}: world landmarks differ by {world * 100:.1f} cm")
    assert len(errors) >= 20
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("video", "max_median", "max_p95"),
    [("synthetic_arms_up_tfjs.mp4", 0.005, 0.01), ("street.avi", 0.10, 0.25)],
)
def test_video_mode_follows_mediapipe(
    media, reference_video, models_ready, video, max_median, max_p95
):
    """Video mode (tracking + smoothing) against MediaPipe's own video mode, frame by frame.

    Tracking feeds each frame's landmarks into the next crop, so sub-pixel differences can grow on
    hard footage (street.avi: a small walking figure); bounds are per video, measured.
    """
    from edge import PoseEstimator

    ref = next(v for v in reference_video["videos"] if v["file"] == video)
    est = PoseEstimator(tracking=True)
    cap = cv2.VideoCapture(str(media / "video" / video))
    errors = []
    for frame_ref in ref["frames"]:
        ok, frame = cap.read()
        assert ok
        # MediaPipe's Python API stamps frames 33.333 ms apart, whatever the file's rate.
        poses = est.process(frame, timestamp_ms=(frame_ref["index"] + 1) * 100 / 3)
        assert bool(poses) == (frame_ref["pose"] is not None), frame_ref["index"]
        if poses:
            ref_lm = np.array(frame_ref["pose"]["landmarks"], dtype=np.float64)
            errors.append(landmark_error(poses[0].landmarks, ref_lm))
    assert len(errors) == len(ref["frames"])
    assert np.median(errors) <= max_median
    assert np.percentile(errors, 95) <= max_p95
    assert est.tracker.detector_share < 0.05
