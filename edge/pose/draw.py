"""Drawing a skeleton on a frame (for ``--annotate``)."""

from __future__ import annotations

import cv2
import numpy as np

# BlazePose's 33-landmark topology (pairs of landmark indices).
CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip
LEFT = {1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}


def draw_poses(frame_bgr: np.ndarray, poses, min_visibility: float = 0.5) -> np.ndarray:
    """A copy of ``frame_bgr`` with each pose's skeleton drawn (left side orange, right blue)."""
    out = frame_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for pose in poses:
        lm = pose.landmarks
        pts = [(int(round(x)), int(round(y))) for x, y in lm[:, :2]]
        for a, b in CONNECTIONS:
            if lm[a, 3] >= min_visibility and lm[b, 3] >= min_visibility:
                cv2.line(out, pts[a], pts[b], (255, 255, 255), thickness, cv2.LINE_AA)
        for i, p in enumerate(pts):
            if lm[i, 3] >= min_visibility:
                colour = (0, 138, 255) if i in LEFT else (255, 128, 0)
                cv2.circle(out, p, thickness + 2, colour, -1, cv2.LINE_AA)
    return out
