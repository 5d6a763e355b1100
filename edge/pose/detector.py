"""Person detector: BlazePose's SSD (``pose_detection.tflite``), decoded as MediaPipe does.

frame -> letterbox to 224x224 (RGB, [-1, 1]) -> model -> decode 2254 anchors (Numba) -> weighted NMS
-> boxes and the 4 alignment keypoints in image pixels (keypoint 0: hip centre, 1: a point whose
distance to it gives the body's scale; 2, 3: the same for the upper body).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import kernels
from .roi import F, pad_roi, remove_letterbox, roi_matrices, whole_image_roi
from .runtime import Model
from .stopwatch import Stopwatch

INPUT_SIZE = 224
NUM_ANCHORS = 2254
NUM_COORDS = 12
NUM_KEYPOINTS = 4
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3

# MediaPipe's SsdAnchorsCalculator options for pose_detection.
ANCHOR_OPTIONS = {
    "num_layers": 5,
    "min_scale": 0.1484375,
    "max_scale": 0.75,
    "input_size": INPUT_SIZE,
    "anchor_offset": 0.5,
    "strides": (8, 16, 32, 32, 32),
    "aspect_ratios": (1.0,),
    "interpolated_scale_aspect_ratio": 1.0,
}


def ssd_anchors(
    strides=ANCHOR_OPTIONS["strides"],
    input_size: int = INPUT_SIZE,
    aspect_ratios=ANCHOR_OPTIONS["aspect_ratios"],
    interpolated_scale_aspect_ratio: float = ANCHOR_OPTIONS["interpolated_scale_aspect_ratio"],
    anchor_offset: float = ANCHOR_OPTIONS["anchor_offset"],
) -> np.ndarray:
    """Anchor centres (N, 4) as (x, y, w, h) in 0..1, with fixed size 1 (``fixed_anchor_size``).

    Consecutive layers with the same stride share one feature map; each layer contributes one
    anchor per aspect ratio plus one for the interpolated scale, at every cell of that map.
    """
    anchors = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(aspect_ratios) + (1 if interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        size = math.ceil(input_size / strides[layer])
        for y in range(size):
            for x in range(size):
                cx = F(F(F(x) + F(anchor_offset)) * F(1.0)) / F(size)
                cy = F(F(F(y) + F(anchor_offset)) * F(1.0)) / F(size)
                anchors.extend([(cx, cy, 1.0, 1.0)] * per_cell)
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union (float32) of one (xmin, ymin, xmax, ymax) box with each of ``boxes``."""
    box = box.astype(np.float32)
    boxes = boxes.astype(np.float32)
    ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.where((ix > 0) & (iy > 0), ix * iy, F(0.0))
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, F(1.0)), F(0.0))


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-max suppression (float32, its accumulation order).

    Take the best remaining detection and every remaining one overlapping it by more than
    ``iou_threshold`` (itself included); emit their score-weighted mean box and keypoints with the
    best one's score; repeat on the rest. Returns (boxes, scores) sorted by score.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order].astype(np.float32), scores[order].astype(np.float32)
    out_boxes, out_scores = [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        overlap = iou(boxes[top], boxes[remaining]) > F(iou_threshold)
        overlap[0] = True  # the best one always goes: a degenerate (NaN) box must not loop
        group = remaining[overlap]
        total = F(0.0)
        acc = np.zeros(boxes.shape[1], np.float32)
        for k in group:  # sequential float32 sums, in score order
            total = F(total + scores[k])
            acc = acc + boxes[k] * scores[k]
        if not total > 0.0:  # scores that underflowed to 0: take the best box as it is
            acc, total = boxes[top].copy(), F(1.0)
        out_boxes.append(acc / total)
        out_scores.append(scores[top])
        remaining = remaining[~overlap]
    if not out_boxes:
        return np.zeros((0, boxes.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32)


@dataclass(frozen=True)
class Detection:
    """A detected person. ``box`` is the face box; keypoint 0 is the hip centre, 1 a point whose
    distance from it gives the body's size and direction (2, 3: the same for the upper body)."""

    score: float
    box_norm: np.ndarray  # (4,) xmin, ymin, xmax, ymax as fractions of the image
    keypoints_norm: np.ndarray  # (4, 2) x, y as fractions of the image
    image_size: tuple[int, int]  # (width, height)

    @property
    def box(self) -> np.ndarray:
        """(4,) xmin, ymin, xmax, ymax in pixels."""
        w, h = self.image_size
        return self.box_norm * np.array([w, h, w, h], np.float32)

    @property
    def keypoints(self) -> np.ndarray:
        """(4, 2) x, y in pixels."""
        return self.keypoints_norm * np.array(self.image_size, np.float32)


class Detector:
    OUTPUTS = {"boxes": (1, NUM_ANCHORS, NUM_COORDS), "scores": (1, NUM_ANCHORS, 1)}

    def __init__(
        self,
        model_path: Path,
        num_threads: int | None = None,
        backend: str | None = None,
        min_score: float = MIN_SCORE,
    ):
        self.model = Model(model_path, self.OUTPUTS, num_threads=num_threads, backend=backend)
        self.anchors = ssd_anchors()
        self.min_score = min_score

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[float, float, float, float]:
        """Letterbox ``frame_bgr`` into the model input; return the padding (l, t, r, b)."""
        height, width = frame_bgr.shape[:2]
        roi, padding = pad_roi(whole_image_roi(width, height), INPUT_SIZE, INPUT_SIZE)
        _, inverse = roi_matrices(roi, INPUT_SIZE, INPUT_SIZE)
        kernels.warp_to_tensor(
            frame_bgr, inverse, self.model.input_view(), 2.0 / 255.0, -1.0, True,
            kernels.BORDER_ZERO,
        )  # fmt: skip
        return padding

    def infer(self) -> tuple[np.ndarray, np.ndarray]:
        self.model.invoke()
        return self.model.output("boxes"), self.model.output("scores")[:, 0]

    def postprocess(
        self,
        raw_boxes: np.ndarray,
        raw_scores: np.ndarray,
        padding: tuple[float, ...],
        image_size: tuple[int, int],
    ) -> list[Detection]:
        boxes, scores = kernels.decode_detections(
            raw_boxes, raw_scores, self.anchors, float(INPUT_SIZE), SCORE_CLIP, self.min_score
        )
        boxes, scores = weighted_nms(boxes, scores)
        detections = []
        for box, score in zip(boxes, scores, strict=True):
            corners = remove_letterbox(box[:4].reshape(2, 2), padding).reshape(4)
            keypoints = remove_letterbox(box[4:].reshape(NUM_KEYPOINTS, 2), padding)
            detections.append(Detection(float(score), corners, keypoints, image_size))
        return detections

    def detect(self, frame_bgr: np.ndarray, sw: Stopwatch | None = None) -> list[Detection]:
        """Detections sorted by score, best first. ``sw`` times the three steps."""
        sw = sw or Stopwatch()
        with sw("detector_pre"):
            padding = self.preprocess(frame_bgr)
        with sw("detector_invoke"):
            raw = self.infer()
        with sw("detector_post"):
            height, width = frame_bgr.shape[:2]
            return self.postprocess(*raw, padding, (width, height))
