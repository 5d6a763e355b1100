import cv2
import numpy as np
import pytest

from edge.pose.detector import Detector, iou, ssd_anchors, weighted_nms
from edge.pose.models import locate


def test_anchor_layout():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 4)
    np.testing.assert_allclose(
        anchors[:2, :2], [[0.5 / 28, 0.5 / 28]] * 2
    )  # 2 per cell at stride 8
    np.testing.assert_allclose(anchors[2, :2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1568, :2], [0.5 / 14, 0.5 / 14])  # stride 16 starts
    np.testing.assert_allclose(anchors[1960:1966, :2], [[0.5 / 7, 0.5 / 7]] * 6)  # 3 layers x 2
    np.testing.assert_allclose(anchors[-1, :2], [6.5 / 7, 6.5 / 7])
    assert (anchors[:, 2:] == 1).all()


def test_iou():
    box = np.array([0, 0, 2, 2], float)
    others = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]], float)
    np.testing.assert_allclose(iou(box, others), [1.0, 1 / 7, 0.0])


def test_weighted_nms_merges_overlaps_and_keeps_top_score():
    boxes = np.array(
        [
            [0.0, 0.0, 1.0, 1.0, 0.5, 0.5],
            [0.1, 0.0, 1.1, 1.0, 0.7, 0.5],
            [3.0, 3.0, 4.0, 4.0, 3.5, 3.5],
        ],
        np.float32,
    )
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    out, out_scores = weighted_nms(boxes, scores)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])
    expected = (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[1], boxes[2])


def test_weighted_nms_empty():
    out, scores = weighted_nms(np.zeros((0, 12), np.float32), np.zeros(0, np.float32))
    assert out.shape == (0, 12) and scores.shape == (0,)


def test_weighted_nms_ends_on_zero_scores_and_nan_boxes():
    """Scores that underflow to 0 once made 0/0 boxes that overlapped nothing, themselves
    included, and the loop never ended."""
    boxes = np.tile(np.array([0.1, 0.1, 0.4, 0.4] + [0.2] * 8, np.float32), (3, 1))
    boxes[2, :4] = np.nan
    out, scores = weighted_nms(boxes, np.zeros(3, np.float32))
    assert len(out) <= 3 and np.isfinite(out[0]).all()
    np.testing.assert_array_equal(scores, 0.0)


def test_detects_person_and_keypoints_in_image(media, models_ready):
    detector = Detector(locate("pose_detection"))
    frame = cv2.imread(str(media / "images" / "standing_businessman_pixabay.jpeg"))
    dets = detector.detect(frame)
    assert len(dets) >= 1
    best = dets[0]
    assert best.score > 0.9
    x0, y0, x1, y1 = best.box
    h, w = frame.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # BlazePose's box is the face; keypoint 0 (hip centre) lies below it, and keypoint 1 (the
    # scale point) above the hips for a standing person.
    assert y1 < best.keypoints[0, 1] < h
    assert x0 < best.keypoints[0, 0] + w * 0.1 and best.keypoints[0, 0] - w * 0.1 < x1
    assert best.keypoints[1, 1] < best.keypoints[0, 1]


def test_no_detection_without_person(media, models_ready):
    detector = Detector(locate("pose_detection"))
    frame = cv2.imread(str(media / "images" / "hard_no_person_kitten_tfpose.jpg"))
    assert detector.detect(frame) == []


@pytest.mark.parametrize("shape", [(480, 640, 3), (640, 360, 3), (224, 224, 3)])
def test_blank_frames_give_no_detection(shape, models_ready):
    detector = Detector(locate("pose_detection"))
    assert detector.detect(np.zeros(shape, np.uint8)) == []
