"""Detector-tracker policy for video mode.

The detector runs only when there is no ROI to track. After each frame in which the estimator found
the person, the next frame's ROI comes from this frame's two alignment landmarks (33: body centre,
34: scale point), exactly as from a detection's keypoints 0 and 1. When the estimator's pose flag
drops below its threshold the track is lost and the detector runs again.
"""

from __future__ import annotations

import numpy as np

from .detector import Detection
from .roi import Rect, roi_from_points

CENTRE_LANDMARK = 33
SCALE_LANDMARK = 34


def roi_from_detection(detection: Detection) -> Rect:
    kp = detection.keypoints_norm
    return roi_from_points(kp[0], kp[1], *detection.image_size)


def roi_from_landmarks(norm: np.ndarray, image_size: tuple[int, int]) -> Rect:
    """ROI for the next frame from (39, >=2) landmarks normalised to the image."""
    return roi_from_points(norm[CENTRE_LANDMARK, :2], norm[SCALE_LANDMARK, :2], *image_size)


class Tracker:
    """Holds the ROI carried from one frame to the next, and counts how often detection ran."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.roi: Rect | None = None
        self.frames = 0
        self.detector_runs = 0

    def tracked_roi(self) -> Rect | None:
        """The ROI to try on this frame, or None when the detector must run."""
        self.frames += 1
        return self.roi if self.enabled else None

    def detected(self) -> None:
        self.detector_runs += 1

    def update(self, norm: np.ndarray | None, image_size: tuple[int, int] = (0, 0)) -> None:
        """Carry the track on from this frame's normalised landmarks, or drop it (None)."""
        tracking = self.enabled and norm is not None
        self.roi = roi_from_landmarks(norm, image_size) if tracking else None

    def reset(self) -> None:
        self.roi = None

    @property
    def detector_share(self) -> float:
        return self.detector_runs / self.frames if self.frames else 0.0
