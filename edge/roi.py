"""Regions of interest: rotated rectangles in image pixels, and the maps into and out of them.

A ``Roi`` is MediaPipe's rotated ``NormalizedRect`` kept in pixels: centre, width, height and a
rotation in radians (clockwise on screen, since y points down). A model input of size (w, h) covers
the ROI so that input pixel (u * w, v * h) shows image point ``roi_point(roi, u, v)``; landmarks and
detections come back through the same map, so crop and projection cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ROI_SCALE = 1.25  # MediaPipe's RectTransformation scale for pose ROIs
TARGET_ANGLE = math.pi / 2  # the hip-centre -> scale-point vector is turned to point up


@dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def letterbox_roi(width: int, height: int) -> Roi:
    """The whole image, padded to a square around its centre (keep-aspect-ratio letterbox)."""
    side = float(max(width, height))
    return Roi(width / 2.0, height / 2.0, side, side, 0.0)


def roi_to_image_affine(roi: Roi, out_w: int, out_h: int) -> np.ndarray:
    """(2, 3) map from model-input pixels (x, y) to image pixels: the warp's inverse map."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    ax, ay = roi.width / out_w, roi.height / out_h
    # image = centre + R @ ((x / out_w - 0.5) * width, (y / out_h - 0.5) * height)
    return np.array(
        [
            [c * ax, -s * ay, roi.cx - 0.5 * (c * roi.width - s * roi.height)],
            [s * ax, c * ay, roi.cy - 0.5 * (s * roi.width + c * roi.height)],
        ],
        dtype=np.float64,
    )


def image_to_roi_affine(roi: Roi, out_w: int, out_h: int) -> np.ndarray:
    """(2, 3) map from image pixels to model-input pixels (the forward warp)."""
    m = roi_to_image_affine(roi, out_w, out_h)
    a = m[:, :2]
    inv = np.linalg.inv(a)
    return np.hstack([inv, -inv @ m[:, 2:]])


def project_points(roi: Roi, uv: np.ndarray) -> np.ndarray:
    """Image pixels of points given as (..., 2) fractions (u, v) of the ROI's width and height."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    x = (uv[..., 0] - 0.5) * roi.width
    y = (uv[..., 1] - 0.5) * roi.height
    out = np.empty(uv.shape[:-1] + (2,), dtype=np.float32)
    out[..., 0] = roi.cx + c * x - s * y
    out[..., 1] = roi.cy + s * x + c * y
    return out


def unproject_points(roi: Roi, xy: np.ndarray) -> np.ndarray:
    """Inverse of ``project_points``: image pixels to (u, v) fractions of the ROI."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    dx = xy[..., 0] - roi.cx
    dy = xy[..., 1] - roi.cy
    out = np.empty(xy.shape[:-1] + (2,), dtype=np.float32)
    out[..., 0] = (c * dx + s * dy) / roi.width + 0.5
    out[..., 1] = (-s * dx + c * dy) / roi.height + 0.5
    return out


def alignment_roi(centre: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """MediaPipe's alignment ROI: a square around ``centre`` turned so that the vector to
    ``scale_point`` points up, with side 2 * |scale_point - centre| * ``scale`` (pixels)."""
    dx = float(scale_point[0] - centre[0])
    dy = float(scale_point[1] - centre[1])
    side = 2.0 * math.hypot(dx, dy) * scale
    rotation = normalize_radians(TARGET_ANGLE - math.atan2(-dy, dx))
    return Roi(float(centre[0]), float(centre[1]), side, side, rotation)


def box_roi(xmin: float, ymin: float, xmax: float, ymax: float, scale: float = ROI_SCALE) -> Roi:
    """Box mode: an upright square on the box's long side, enlarged by ``scale`` (pixels)."""
    side = max(xmax - xmin, ymax - ymin) * scale
    return Roi((xmin + xmax) / 2.0, (ymin + ymax) / 2.0, side, side, 0.0)
