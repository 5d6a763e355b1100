"""Regions of interest, computed as MediaPipe computes them.

Two shapes of the same thing:

- ``Rect``: MediaPipe's ``NormalizedRect``: centre and size as fractions of the image, rotation in
  radians (clockwise on screen, since y points down). The pipeline carries ROIs in this form.
- ``Roi``: the same rectangle in image pixels (MediaPipe's ``RotatedRect`` inside its
  image-to-tensor step); ``Pose.roi`` is one.

The landmark model moves visibly for sub-pixel changes of its crop on hard images, so every
function here repeats MediaPipe's arithmetic: single precision where its C++ uses ``float``, the
same operation order, double only where it uses double. ``F`` marks each rounding to float32.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import kernels

F = np.float32
ROI_SCALE = 1.25  # RectTransformation scale for pose ROIs
TARGET_ANGLE = F(math.pi * 90 / 180.0)  # the alignment vector is turned to point up


@dataclass(frozen=True)
class Rect:
    """A rotated rectangle in normalised image coordinates (MediaPipe's NormalizedRect)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in image pixels."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0


def normalize_radians(angle: float) -> float:
    """Wrap to [-pi, pi): computed in double, returned as float32 (MediaPipe's NormalizeRadians)."""
    a = float(F(angle))
    return float(F(a - 2 * math.pi * math.floor((a - (-math.pi)) / (2 * math.pi))))


def rect_to_roi(rect: Rect, width: int, height: int) -> Roi:
    """Normalised rect -> pixels, in float32 (ImageToTensor's GetRoi)."""
    w, h = F(width), F(height)
    return Roi(
        float(F(rect.x_center) * w),
        float(F(rect.y_center) * h),
        float(F(rect.width) * w),
        float(F(rect.height) * h),
        float(F(rect.rotation)),
    )


def whole_image_roi(width: int, height: int) -> Roi:
    return Roi(float(F(0.5) * F(width)), float(F(0.5) * F(height)), float(width), float(height))


def pad_roi(roi: Roi, out_w: int, out_h: int) -> tuple[Roi, tuple[float, float, float, float]]:
    """Grow ``roi`` to the tensor's aspect ratio around its centre (keep-aspect-ratio letterbox).

    Returns the padded ROI and the padding (left, top, right, bottom) as fractions of the tensor.
    """
    tensor_aspect = F(F(out_h) / F(out_w))
    roi_aspect = F(F(roi.height) / F(roi.width))
    h_pad = v_pad = F(0.0)
    if tensor_aspect > roi_aspect:
        new_w, new_h = F(roi.width), F(F(roi.width) * tensor_aspect)
        v_pad = F(F(F(1.0) - F(roi_aspect / tensor_aspect)) / F(2.0))
    else:
        new_w, new_h = F(F(roi.height) / tensor_aspect), F(roi.height)
        h_pad = F(F(F(1.0) - F(tensor_aspect / roi_aspect)) / F(2.0))
    padded = Roi(roi.cx, roi.cy, float(new_w), float(new_h), roi.rotation)
    return padded, (float(h_pad), float(v_pad), float(h_pad), float(v_pad))


@functools.cache
def _corners(out_w: int, out_h: int) -> np.ndarray:
    """The tensor's corners (0, h), (0, 0), (w, 0), (w, h), float32, read-only (made once)."""
    dst = np.array([[0, out_h], [0, 0], [out_w, 0], [out_w, out_h]], dtype=np.float32)
    dst.flags.writeable = False
    return dst


def roi_matrices(roi: Roi, out_w: int, out_h: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward, inverse) 3x3 maps between image pixels and tensor pixels for ``roi``.

    As MediaPipe's OpenCV converter: the ROI's corners (cv2.boxPoints of the float32 RotatedRect)
    go to the tensor's corners (0, h), (0, 0), (w, 0), (w, h) by a perspective transform; the
    warp then samples through its inverse.
    """
    angle = float(F(F(F(roi.rotation) * F(180.0)) / math.pi))
    corners = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), angle))
    forward = cv2.getPerspectiveTransform(
        corners.astype(np.float32, copy=False), _corners(out_w, out_h)
    )
    _, inverse = cv2.invert(forward)
    return forward, inverse


def remove_letterbox(points: np.ndarray, padding: tuple[float, ...]) -> np.ndarray:
    """(N, 2 or 3) points normalised to the padded tensor -> normalised to the unpadded ROI
    (z, if present, scales as x)."""
    left, top, right, bottom = (F(p) for p in padding)
    x_den = F(F(1.0) - F(left + right))
    y_den = F(F(1.0) - F(top + bottom))
    out = np.empty(points.shape, dtype=np.float32)
    out[:, 0] = (points[:, 0].astype(np.float32) - left) / x_den
    out[:, 1] = (points[:, 1].astype(np.float32) - top) / y_den
    if points.shape[1] > 2:
        out[:, 2] = points[:, 2].astype(np.float32) / x_den
    return out


def alignment_rect(start: np.ndarray, end: np.ndarray, width: int, height: int) -> Rect:
    """MediaPipe's AlignmentPointsRects: a square centred on ``start`` (normalised x, y) with side
    2 * |end - start| in pixels, turned so that start -> end points up.

    In MediaPipe's arithmetic (``kernels.alignment_rect``): the points scaled to pixels, the
    difference, its length and twice that in float32; the angle from atan2 in double, rounded to
    float32, subtracted from the target angle in float32 and wrapped by ``normalize_radians``;
    centre and side divided by the image size in float32."""
    return Rect(
        *kernels.alignment_rect(
            float(start[0]), float(start[1]), float(end[0]), float(end[1]),
            float(width), float(height), float(TARGET_ANGLE),
        )
    )  # fmt: skip


def transform_rect(rect: Rect, width: int, height: int, scale: float = ROI_SCALE) -> Rect:
    """MediaPipe's RectTransformation with square_long and no shift: square on the long side in
    pixels, then scaled by ``scale``."""
    w, h = F(width), F(height)
    long_side = max(F(F(rect.width) * w), F(F(rect.height) * h))
    return Rect(
        rect.x_center,
        rect.y_center,
        float(F(F(long_side / w) * F(scale))),
        float(F(F(long_side / h) * F(scale))),
        rect.rotation,
    )


def roi_from_points(start: np.ndarray, end: np.ndarray, width: int, height: int) -> Rect:
    """Alignment mode: the pose ROI from a centre and a scale point (normalised)."""
    return transform_rect(alignment_rect(start, end, width, height), width, height)


def roi_from_box(
    xmin: float, ymin: float, xmax: float, ymax: float, width: int, height: int
) -> Rect:
    """Box mode: an upright ROI around a normalised box, square on its long side, scaled 1.25."""
    rect = Rect(
        float(F(F(xmin) + F(F(F(xmax) - F(xmin)) / F(2.0)))),
        float(F(F(ymin) + F(F(F(ymax) - F(ymin)) / F(2.0)))),
        float(F(F(xmax) - F(xmin))),
        float(F(F(ymax) - F(ymin))),
        0.0,
    )
    return transform_rect(rect, width, height)


def project_to_image(points: np.ndarray, rect: Rect) -> np.ndarray:
    """(N, 2 or 3) points normalised to ``rect`` -> normalised image coordinates (float32).

    MediaPipe's LandmarkProjection: turn (x - 0.5, y - 0.5) by the rect's rotation, scale by its
    size, add its centre; z is scaled by the rect's width.
    """
    angle = F(rect.rotation)
    c, s = F(math.cos(float(angle))), F(math.sin(float(angle)))
    x = points[:, 0].astype(np.float32) - F(0.5)
    y = points[:, 1].astype(np.float32) - F(0.5)
    out = np.empty(points.shape, dtype=np.float32)
    out[:, 0] = (c * x - s * y) * F(rect.width) + F(rect.x_center)
    out[:, 1] = (s * x + c * y) * F(rect.height) + F(rect.y_center)
    if points.shape[1] > 2:
        out[:, 2] = points[:, 2].astype(np.float32) * F(rect.width)
    return out


def unproject_from_image(points: np.ndarray, rect: Rect) -> np.ndarray:
    """Inverse of ``project_to_image`` for x, y (float64, for tests and tools)."""
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    dx = (points[:, 0] - rect.x_center) / rect.width
    dy = (points[:, 1] - rect.y_center) / rect.height
    return np.column_stack([c * dx + s * dy + 0.5, -s * dx + c * dy + 0.5])
