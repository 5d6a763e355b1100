"""Detector-tracker policy for video mode.

The detector runs only when there is no ROI to track. After each frame in which the estimator found
the person, the next frame's ROI comes from this frame's two alignment landmarks (33: body centre,
34: scale point), exactly as from a detection's keypoints 0 and 1. When the estimator's pose flag
drops below its threshold the track is lost and the detector runs again.
"""

from __future__ import annotations

import numpy as np

from .detector import Detection
from .roi import Roi, alignment_roi

CENTRE_LANDMARK = 33
SCALE_LANDMARK = 34


def roi_from_detection(detection: Detection) -> Roi:
    return alignment_roi(detection.keypoints[0], detection.keypoints[1])


def roi_from_landmarks(landmarks: np.ndarray) -> Roi:
    """ROI for the next frame from (39, >=2) landmarks in image pixels."""
    return alignment_roi(landmarks[CENTRE_LANDMARK, :2], landmarks[SCALE_LANDMARK, :2])


class Tracker:
    """Holds the ROI carried from one frame to the next, and counts how often detection ran."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.roi: Roi | None = None
        self.frames = 0
        self.detector_runs = 0

    def tracked_roi(self) -> Roi | None:
        """The ROI to try on this frame, or None when the detector must run."""
        self.frames += 1
        return self.roi if self.enabled else None

    def detected(self) -> None:
        self.detector_runs += 1

    def update(self, landmarks: np.ndarray | None) -> None:
        """Carry the track on from this frame's landmarks, or drop it (None)."""
        self.roi = (
            roi_from_landmarks(landmarks) if (self.enabled and landmarks is not None) else None
        )

    def reset(self) -> None:
        self.roi = None

    @property
    def detector_share(self) -> float:
        return self.detector_runs / self.frames if self.frames else 0.0
