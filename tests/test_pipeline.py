import cv2
import numpy as np
import pytest

from edge import FrameError, PoseEstimator
from edge.pose.pipeline import check_frame


def test_padded_rows_are_used_without_a_copy(media, static_estimator):
    """Camera buffers often have padded rows (stride > 3 * width): no copy, same landmarks."""
    frame = cv2.imread(str(media / "images" / "yoga.jpg"))
    h, w = frame.shape[:2]
    padded = np.zeros((h, w + 16, 3), np.uint8)
    padded[:, :w] = frame
    view = padded[:, :w]
    assert not view.flags.c_contiguous
    assert check_frame(view) is view
    a = static_estimator.process(frame)[0].landmarks
    b = static_estimator.process(view)[0].landmarks
    np.testing.assert_array_equal(a, b)


def test_check_frame_accepts_gray_and_bgra():
    gray = np.zeros((10, 12), np.uint8)
    assert check_frame(gray).shape == (10, 12, 3)
    bgra = np.zeros((10, 12, 4), np.uint8)
    out = check_frame(bgra)
    assert out.shape == (10, 12, 3) and out.flags.c_contiguous
    single = np.arange(120, dtype=np.uint8).reshape(10, 12, 1)  # gray with a channel axis
    np.testing.assert_array_equal(check_frame(single), np.repeat(single, 3, axis=2))


@pytest.mark.parametrize(
    "frame",
    [None, np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2), np.uint8),
     np.zeros((0, 10, 3), np.uint8), np.zeros((5,), np.uint8)],
)  # fmt: skip
def test_bad_frames_raise_frame_error(frame):
    with pytest.raises(FrameError):
        check_frame(frame)


def test_pose_output_contract(media, static_estimator):
    frame = cv2.imread(str(media / "images" / "yoga.jpg"))
    poses = static_estimator.process(frame)
    assert len(poses) == 1
    pose = poses[0]
    assert pose.landmarks.shape == (33, 5) and pose.landmarks.dtype == np.float32
    assert pose.world_landmarks.shape == (33, 3) and pose.world_landmarks.dtype == np.float32
    assert 0.5 < pose.score <= 1.0
    assert ((pose.landmarks[:, 3:] >= 0) & (pose.landmarks[:, 3:] <= 1)).all()
    h, w = frame.shape[:2]
    assert (pose.landmarks[:, 0] > -w * 0.1).all() and (pose.landmarks[:, 0] < w * 1.1).all()
    # world landmarks are metres around the hips: a body spans about 1-2 m
    assert 0.3 < np.ptp(pose.world_landmarks[:, :2], axis=0).max() < 2.5
    d = pose.to_dict()
    assert len(d["landmarks"]) == 33 and len(d["landmarks"][0]) == 5
    assert len(d["world_landmarks"]) == 33 and len(d["world_landmarks"][0]) == 3


def test_segmentation_mask_covers_person(media, models_ready):
    est = PoseEstimator(tracking=False, segmentation=True)
    frame = cv2.imread(str(media / "images" / "standing_businessman_pixabay.jpeg"))
    pose = est.process(frame)[0]
    mask = pose.segmentation_mask
    assert mask.shape == frame.shape[:2] and mask.dtype == np.float32
    hip = pose.landmarks[[23, 24], :2].mean(axis=0).astype(int)
    assert mask[hip[1], hip[0]] > 0.5
    assert mask[5, 5] < 0.5  # a corner of the background


def test_opencv_warp_alternative_close_to_default(media, models_ready, static_estimator):
    alt = PoseEstimator(tracking=False, warp="opencv")
    frame = cv2.imread(str(media / "images" / "standing_woman_pixabay_illustration.png"))
    a = static_estimator.process(frame)[0].landmarks
    b = alt.process(frame)[0].landmarks
    assert np.abs(a[:, :2] - b[:, :2]).mean() < 3.0


def test_unknown_variant_and_warp_rejected(models_ready):
    with pytest.raises(ValueError, match="variant"):
        PoseEstimator(variant="nope")
    with pytest.raises(ValueError, match="warp"):
        PoseEstimator(warp="nope")
    for score in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="min_detection_score"):
            PoseEstimator(min_detection_score=score)
    with pytest.raises(ValueError, match="num_threads"):
        PoseEstimator(num_threads=-5)
    with pytest.raises(ValueError, match="no segmentation head"):
        PoseEstimator(variant="int8", segmentation=True)


def test_timestamps_must_be_finite(media, static_estimator):
    frame = cv2.imread(str(media / "images" / "yoga.jpg"))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timestamp_ms must be a finite"):
            static_estimator.process(frame, timestamp_ms=bad)


def test_a_step_back_in_time_restarts_smoothing_instead_of_stopping_it(media, models_ready, caplog):
    """Before, every frame until time caught up again came out unsmoothed (raw)."""
    cap = cv2.VideoCapture(str(media / "video" / "street.avi"))
    frames = [cap.read()[1] for _ in range(20)]
    smooth, raw = PoseEstimator("float"), PoseEstimator("float", smoothing=False)
    times = [i * 40.0 for i in range(10)] + [i * 40.0 for i in range(10)]  # seek back to 0
    diffs = []
    for frame, t in zip(frames, times, strict=True):
        a, b = smooth.process(frame, t), raw.process(frame, t)
        diffs.append(float(np.abs(a[0].landmarks[:, :2] - b[0].landmarks[:, :2]).max()))
    assert "timestamp went back" in caplog.text
    assert diffs[10] == 0.0  # a fresh filter passes its first value through
    assert min(diffs[12:]) > 0.0  # and smooths again from the next frame


def test_tracking_runs_detector_rarely(media, models_ready):
    est = PoseEstimator(tracking=True)
    cap = cv2.VideoCapture(str(media / "video" / "street.avi"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    centres, n = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        poses = est.process(frame, timestamp_ms=n * 1000 / fps)
        assert poses, f"lost the person at frame {n}"
        centres.append(poses[0].landmarks[[23, 24], :2].mean(axis=0))
        n += 1
    assert n == 205
    assert est.tracker.detector_runs <= 3  # once at the start, rarely after
    steps = np.linalg.norm(np.diff(np.array(centres), axis=0), axis=1)
    assert steps.max() < 40  # the same person, followed smoothly (px per frame at 1280x720)


def test_static_mode_detects_every_call(media, static_estimator):
    frame = cv2.imread(str(media / "images" / "yoga.jpg"))
    before = static_estimator.tracker.detector_runs
    static_estimator.process(frame)
    static_estimator.process(frame)
    assert static_estimator.tracker.detector_runs == before + 2


def test_close_and_context_manager(models_ready):
    frame = np.zeros((64, 64, 3), np.uint8)
    with PoseEstimator(tracking=False) as est:
        assert est.process(frame) == []
        backend, threads = est.backend, est.num_threads
    with pytest.raises(RuntimeError, match="closed"):
        est.process(frame)
    assert (est.backend, est.num_threads) == (backend, threads)  # still readable
    est.close()  # twice is fine


@pytest.mark.parametrize("model", ["lite", "heavy"])
def test_lite_and_heavy_segment_and_track(media, need_model, model):
    """Everything around the landmark model is the same for each: segmentation when asked (the
    unpruned graph), tracking in video mode."""
    need_model(model)
    est = PoseEstimator(model=model, tracking=False, segmentation=True)
    assert est.model == model and est.estimator.model.path.name == f"pose_landmark_{model}.tflite"
    frame = cv2.imread(str(media / "images" / "standing_businessman_pixabay.jpeg"))
    pose = est.process(frame)[0]
    hip = pose.landmarks[[23, 24], :2].mean(axis=0).astype(int)
    assert pose.segmentation_mask[hip[1], hip[0]] > 0.5 and pose.segmentation_mask[5, 5] < 0.5
    video = PoseEstimator(model=model, tracking=True)
    assert video.estimator.model.pruned  # no segmentation: the mask head is cut out
    cap = cv2.VideoCapture(str(media / "video" / "synthetic_arms_up_tfjs.mp4"))
    for n in range(30):
        ok, frame = cap.read()
        assert ok and video.process(frame, timestamp_ms=n * 100 / 3)
    assert video.detector_runs == 1
