import math

import numpy as np
import pytest

from edge.roi import (
    Roi,
    alignment_roi,
    box_roi,
    image_to_roi_affine,
    letterbox_roi,
    normalize_radians,
    project_points,
    roi_to_image_affine,
    unproject_points,
)

ROIS = [
    Roi(100.0, 80.0, 200.0, 200.0, 0.0),
    Roi(320.5, 240.25, 150.0, 150.0, 0.7),
    Roi(50.0, 400.0, 90.0, 60.0, -2.5),
]


@pytest.mark.parametrize("roi", ROIS)
def test_project_unproject_round_trip(roi):
    uv = np.random.default_rng(0).uniform(-0.5, 1.5, (50, 2)).astype(np.float32)
    np.testing.assert_allclose(unproject_points(roi, project_points(roi, uv)), uv, atol=1e-5)


@pytest.mark.parametrize("roi", ROIS)
def test_affine_maps_agree_with_projection(roi):
    uv = np.random.default_rng(1).uniform(0, 1, (20, 2))
    tensor_px = uv * [256, 256]
    m = roi_to_image_affine(roi, 256, 256)
    via_affine = tensor_px @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(via_affine, project_points(roi, uv), rtol=1e-5, atol=1e-3)
    back = image_to_roi_affine(roi, 256, 256)
    np.testing.assert_allclose(via_affine @ back[:, :2].T + back[:, 2], tensor_px, atol=1e-6)


def test_roi_corners_follow_opencv_box_points():
    """Input pixel (0, 0) shows the ROI's top-left corner after rotation (cv2.boxPoints' pt 1)."""
    cv2 = pytest.importorskip("cv2")
    roi = Roi(200.0, 150.0, 120.0, 120.0, 0.4)
    pts = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), math.degrees(roi.rotation)))
    m = roi_to_image_affine(roi, 256, 256)
    corners = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], float) @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(corners, pts, atol=1e-3)


def test_letterbox_roi_is_centred_square():
    assert letterbox_roi(640, 480) == Roi(320.0, 240.0, 640.0, 640.0, 0.0)
    assert letterbox_roi(300, 500) == Roi(150.0, 250.0, 500.0, 500.0, 0.0)


def test_alignment_roi_upright_person_has_no_rotation():
    roi = alignment_roi(np.array([100.0, 300.0]), np.array([100.0, 200.0]))
    assert roi.rotation == pytest.approx(0.0)
    assert roi.width == roi.height == pytest.approx(2 * 100 * 1.25)
    assert (roi.cx, roi.cy) == (100.0, 300.0)


@pytest.mark.parametrize(
    ("scale_point", "rotation"),
    [((200.0, 300.0), math.pi / 2), ((0.0, 300.0), -math.pi / 2), ((100.0, 400.0), -math.pi)],
)
def test_alignment_roi_rotation_turns_body_upright(scale_point, rotation):
    roi = alignment_roi(np.array([100.0, 300.0]), np.array(scale_point))
    assert roi.rotation == pytest.approx(rotation)
    # the scale point lies straight above the centre in the ROI's own frame
    uv = unproject_points(roi, np.array([scale_point], np.float32))[0]
    assert uv[0] == pytest.approx(0.5, abs=1e-6)
    assert uv[1] < 0.5


def test_normalize_radians_range():
    for a in np.linspace(-10, 10, 101):
        n = normalize_radians(a)
        assert -math.pi <= n < math.pi
        assert math.isclose(math.cos(n), math.cos(a), abs_tol=1e-9)


def test_box_roi_square_on_long_side():
    roi = box_roi(10, 20, 50, 120)
    assert roi == Roi(30.0, 70.0, 125.0, 125.0, 0.0)
