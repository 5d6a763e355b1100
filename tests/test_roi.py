import math

import cv2
import numpy as np
import pytest

from edge.pose.roi import (
    Rect,
    Roi,
    alignment_rect,
    normalize_radians,
    pad_roi,
    project_to_image,
    rect_to_roi,
    remove_letterbox,
    roi_from_box,
    roi_from_points,
    roi_matrices,
    transform_rect,
    unproject_from_image,
    whole_image_roi,
)

RECTS = [
    Rect(0.3, 0.4, 0.5, 0.6667, 0.0),
    Rect(0.5, 0.5, 0.25, 0.3333, 0.7),
    Rect(0.1, 0.8, 0.2, 0.15, -2.5),
]


@pytest.mark.parametrize("rect", RECTS)
def test_project_unproject_round_trip(rect):
    uv = np.random.default_rng(0).uniform(-0.5, 1.5, (50, 2)).astype(np.float32)
    back = unproject_from_image(project_to_image(uv, rect).astype(np.float64), rect)
    np.testing.assert_allclose(back, uv, atol=1e-5)


@pytest.mark.parametrize("rect", RECTS)
def test_crop_matrix_agrees_with_landmark_projection(rect):
    """A tensor pixel maps to the same image point through the warp matrix and the projection
    (for square pixel ROIs, which pose ROIs always are)."""
    w, h = 640, 480
    roi = rect_to_roi(rect, w, h)
    square = Roi(roi.cx, roi.cy, roi.width, roi.width, roi.rotation)
    forward, inverse = roi_matrices(square, 256, 256)
    uv = np.random.default_rng(1).uniform(0, 1, (20, 2))
    tensor_px = np.column_stack([uv * 256, np.ones(len(uv))])
    image_px = tensor_px @ inverse.T
    image_px = image_px[:, :2] / image_px[:, 2:]
    sq_rect = Rect(rect.x_center, rect.y_center, roi.width / w, roi.width / h, rect.rotation)
    expected = project_to_image(uv.astype(np.float32), sq_rect) * [w, h]
    np.testing.assert_allclose(image_px, expected, atol=2e-3)
    back = np.column_stack([image_px, np.ones(len(uv))]) @ forward.T
    np.testing.assert_allclose(back[:, :2] / back[:, 2:], uv * 256, atol=1e-3)


def test_crop_corners_follow_opencv_box_points():
    """Tensor pixel (0, 0) shows the ROI's top-left corner after rotation (cv2.boxPoints' pt 1)."""
    roi = Roi(200.0, 150.0, 120.0, 120.0, 0.4)
    pts = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), math.degrees(roi.rotation)))
    _, inverse = roi_matrices(roi, 256, 256)
    corners = np.array([[0, 256, 1], [0, 0, 1], [256, 0, 1], [256, 256, 1]], float) @ inverse.T
    np.testing.assert_allclose(corners[:, :2] / corners[:, 2:], pts, atol=1e-3)


def test_letterbox_pads_the_short_side():
    roi, padding = pad_roi(whole_image_roi(640, 480), 224, 224)
    assert roi == Roi(320.0, 240.0, 640.0, 640.0, 0.0)
    assert padding == pytest.approx((0.0, 0.125, 0.0, 0.125))
    roi, padding = pad_roi(whole_image_roi(300, 500), 224, 224)
    assert roi == Roi(150.0, 250.0, 500.0, 500.0, 0.0)
    assert padding == pytest.approx((0.2, 0.0, 0.2, 0.0))


def test_remove_letterbox_inverts_padding():
    pts = np.array([[0.5, 0.125], [0.25, 0.875]], np.float32)
    out = remove_letterbox(pts, (0.0, 0.125, 0.0, 0.125))
    np.testing.assert_allclose(out, [[0.5, 0.0], [0.25, 1.0]], atol=1e-7)


def test_alignment_upright_person_has_no_rotation():
    w, h = 400, 600
    rect = roi_from_points(np.array([0.25, 0.5]), np.array([0.25, 1 / 3]), w, h)
    assert rect.rotation == pytest.approx(0.0, abs=1e-7)
    side = 2 * 100 * 1.25  # |scale - centre| = 100 px
    assert rect.width * w == pytest.approx(side, rel=1e-6)
    assert rect.height * h == pytest.approx(side, rel=1e-6)
    assert (rect.x_center, rect.y_center) == pytest.approx((0.25, 0.5))


@pytest.mark.parametrize(
    ("scale_point", "rotation"),
    [((200.0, 300.0), math.pi / 2), ((0.0, 300.0), -math.pi / 2), ((100.0, 400.0), -math.pi)],
)
def test_alignment_rotation_turns_body_upright(scale_point, rotation):
    w, h = 400, 600
    start = np.array([100.0 / w, 300.0 / h])
    end = np.array([scale_point[0] / w, scale_point[1] / h])
    rect = alignment_rect(start, end, w, h)
    assert rect.rotation == pytest.approx(rotation, abs=1e-6)
    # in the ROI's own frame the scale point lies straight above the centre
    pixel_rect = Rect(
        rect.x_center * w, rect.y_center * h, rect.width * w, rect.height * h, rect.rotation
    )
    uv = unproject_from_image(np.array([scale_point]), pixel_rect)[0]
    assert uv[0] == pytest.approx(0.5, abs=1e-5)
    assert uv[1] < 0.5


def test_transform_rect_squares_on_long_side_then_scales():
    rect = transform_rect(Rect(0.5, 0.5, 0.1, 0.4, 0.3), 1000, 500)
    assert rect.width * 1000 == pytest.approx(200 * 1.25)
    assert rect.height * 500 == pytest.approx(200 * 1.25)
    assert rect.rotation == pytest.approx(0.3)


def test_normalize_radians_range():
    for a in np.linspace(-10, 10, 101):
        n = normalize_radians(a)
        assert -math.pi - 1e-6 <= n < math.pi + 1e-6
        assert math.isclose(math.cos(n), math.cos(a), abs_tol=1e-6)


def test_box_mode_square_on_long_side():
    rect = roi_from_box(0.1, 0.2, 0.3, 0.6, 100, 100)
    assert (rect.x_center, rect.y_center) == pytest.approx((0.2, 0.4))
    assert rect.width == pytest.approx(0.4 * 1.25) and rect.height == pytest.approx(0.4 * 1.25)
    assert rect.rotation == 0.0


def test_roi_matrices_alternating_tensor_sizes_match_a_fresh_transform():
    """The tensor corners are made once per size: alternating sizes (detector 224, estimator
    256) give the transform computed from scratch, bit for bit."""
    roi = Roi(400.5, 300.25, 210.0, 330.0, 0.7)
    for size in (256, 224, 256, 224, 192):
        forward, inverse = roi_matrices(roi, size, size)
        dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
        angle = float(
            np.float32(np.float32(np.float32(roi.rotation) * np.float32(180.0)) / math.pi)
        )
        corners = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), angle))
        expected = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
        assert forward.tobytes() == expected.tobytes()
        assert inverse.tobytes() == cv2.invert(expected)[1].tobytes()
