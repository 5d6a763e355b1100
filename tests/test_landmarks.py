import math

import numpy as np
import pytest

from edge.pose.landmarks import (
    FallbackLandmarkModel,
    LandmarkModel,
    decode_landmarks,
    decode_pose,
    decode_world,
    sigmoid,
    to_pixels,
)
from edge.pose.roi import Rect


def test_decode_projects_through_rect():
    rect = Rect(0.5, 0.25, 0.2, 0.4, math.pi / 2)  # 128 px square in a 640x320 image
    raw = np.zeros((39, 5), np.float32)
    raw[0, :3] = [128, 128, 0]  # tensor centre -> rect centre
    raw[1, :3] = [256, 128, 64]  # right edge of the tensor, turned 90 degrees -> below the centre
    raw[:, 3:] = [0.0, 2.0]
    out = decode_landmarks(raw.reshape(-1), rect)
    px = to_pixels(out, (640, 320))
    np.testing.assert_allclose(px[0, :2], [320, 80], atol=1e-4)
    np.testing.assert_allclose(px[1, :2], [320, 80 + 64], atol=1e-4)
    assert px[1, 2] == np.float32(64 / 256 * 0.2 * 640)  # z on x's pixel scale
    np.testing.assert_allclose(out[:, 3], 0.5)
    np.testing.assert_allclose(out[:, 4], sigmoid(2.0), rtol=1e-6)


def test_decode_removes_letterbox_padding():
    rect = Rect(0.5, 0.5, 1.0, 1.0, 0.0)
    raw = np.zeros((39, 5), np.float32)
    raw[0, :2] = [128, 32]  # a quarter of the way down the padded tensor
    out = decode_landmarks(raw.reshape(-1), rect, padding=(0.0, 0.125, 0.0, 0.125))
    np.testing.assert_allclose(out[0, :2], [0.5, (0.125 - 0.125) / 0.75], atol=1e-6)


def test_decode_world_rotates_about_z():
    raw = np.zeros((39, 3), np.float32)
    raw[0] = [1.0, 0.0, 0.3]
    out = decode_world(raw.reshape(-1), Rect(0, 0, 1, 1, math.pi / 2))
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.3], atol=1e-6)


def test_heatmap_refinement_is_applied():
    rect = Rect(0.5, 0.5, 1.0, 1.0, 0.0)
    raw = np.zeros((39, 5), np.float32)
    raw[:, :2] = 100.0
    heatmap = np.full((64, 64, 39), -20.0, np.float32)
    heatmap[26, 24, :] = 20.0  # peak at heatmap cell (24, 26) -> tensor pixel (96, 104)
    out = decode_landmarks(raw.reshape(-1), rect, heatmap=heatmap)
    np.testing.assert_allclose(out[:, :2], np.tile([96 / 256, 104 / 256], (39, 1)), atol=1e-6)


def test_decode_pose_same_bits_as_the_two_decoders():
    """The fused post-processing (one kernel call) against decode_landmarks + decode_world."""
    rng = np.random.default_rng(11)
    for refine in (True, False):
        for _ in range(20):
            raw = rng.normal(128, 60, 39 * 5).astype(np.float32)
            raw[3::5] = rng.normal(0, 5, 39)
            raw[4::5] = rng.normal(0, 5, 39)
            world = rng.normal(0, 0.5, 39 * 3).astype(np.float32)
            heatmap = rng.normal(-2, 3, (64, 64, 39)).astype(np.float32) if refine else None
            rect = Rect(*rng.uniform(0.1, 0.9, 4), rng.uniform(-math.pi, math.pi))
            padding = (0.0, float(rng.uniform(0, 0.2)), 0.0, float(rng.uniform(0, 0.2)))
            norm, rotated = decode_pose(raw, world, rect, padding, heatmap)
            expected = decode_landmarks(raw, rect, padding, heatmap)
            np.testing.assert_array_equal(norm.view(np.uint32), expected.view(np.uint32))
            expected_world = decode_world(world, rect)
            np.testing.assert_array_equal(rotated.view(np.uint32), expected_world.view(np.uint32))


def test_decode_pose_rejects_values_that_are_not_finite():
    rect = Rect(0.5, 0.5, 0.5, 0.5, 0.3)
    raw = np.full(39 * 5, 100.0, np.float32)
    world = np.zeros(39 * 3, np.float32)
    assert decode_pose(raw, world, rect, (0.0,) * 4, None) is not None
    for index, array, value in (
        (5, raw, np.nan),  # x
        (7, raw, np.inf),  # z
        (8, raw, np.nan),  # visibility
        (4, world, -np.inf),
    ):
        bad = array.copy()
        bad[index] = value
        args = (bad, world) if array is raw else (raw, bad)
        assert decode_pose(*args, rect, (0.0,) * 4, None) is None, (index, value)
    # an infinite visibility or presence logit is a sure 1 or 0 after the sigmoid: accepted
    raw[8], raw[9] = np.inf, -np.inf
    norm, _ = decode_pose(raw, world, rect, (0.0,) * 4, None)
    assert (norm[1, 3], norm[1, 4]) == (1.0, 0.0)


@pytest.fixture(scope="module")
def demo_crop(models_ready, need_model):
    """A frame of the shipped demo clip with the person's ROI (the float detector's)."""
    import cv2

    from edge.pose.detector import Detector
    from edge.pose.models import DETECTOR, locate
    from edge.pose.tracking import roi_from_detection
    from edge.service.media import DEMO_CLIP

    need_model("lite")
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    ok, frame = capture.read()
    capture.release()
    assert ok
    detections = Detector(locate(DETECTOR), 1).detect(frame)
    assert detections
    return frame, roi_from_detection(detections[0])


def _model(name):
    from edge.pose.models import locate

    return LandmarkModel(locate(f"pose_landmark_{name}"), 1)


@pytest.mark.parametrize(("band", "handed_over"), [((0.0, 1.0), True), ((0.5, 0.5), False)])
def test_fallback_model_hands_over_inside_the_band_only(demo_crop, band, handed_over):
    """Full stands in for int8 and lite for float, so the two are told apart."""
    frame, rect = demo_crop
    full, lite = _model("full"), _model("lite")
    expected = (lite if handed_over else full).estimate(frame, rect)
    both = FallbackLandmarkModel(full, lite, band)
    got = both.estimate(frame, rect)
    assert np.array_equal(got.norm, expected.norm) and got.score == expected.score
    assert (both.invokes, both.fallbacks) == (1, int(handed_over))
    assert both.model is full.model


def test_fallback_model_hands_over_a_flag_that_is_not_finite(demo_crop, monkeypatch):
    frame, rect = demo_crop
    full, lite = _model("full"), _model("lite")
    both = FallbackLandmarkModel(full, lite, (0.5, 0.5))
    real_output = full.model.output
    monkeypatch.setattr(
        full.model,
        "output",
        lambda role: np.array([np.nan]) if role == "flag" else real_output(role),
    )
    assert np.array_equal(both.estimate(frame, rect).norm, lite.estimate(frame, rect).norm)
    assert both.fallbacks == 1
