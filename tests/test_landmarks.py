import math

import numpy as np

from edge.landmarks import decode_landmarks, decode_world, sigmoid
from edge.roi import Roi


def test_decode_projects_through_roi():
    roi = Roi(300.0, 200.0, 128.0, 128.0, math.pi / 2)
    raw = np.zeros((39, 5), np.float32)
    raw[0, :3] = [128, 128, 0]  # tensor centre -> ROI centre
    raw[1, :3] = [256, 128, 64]  # right edge of the tensor, turned 90 degrees -> below the centre
    raw[:, 3:] = [0.0, 2.0]
    out = decode_landmarks(raw.reshape(-1), roi)
    np.testing.assert_allclose(out[0, :2], [300, 200], atol=1e-4)
    np.testing.assert_allclose(out[1, :2], [300, 264], atol=1e-4)
    assert out[1, 2] == np.float32(64 / 256 * 128)  # z on x's pixel scale
    np.testing.assert_allclose(out[:, 3], 0.5)
    np.testing.assert_allclose(out[:, 4], sigmoid(2.0), rtol=1e-6)


def test_decode_world_rotates_about_z():
    raw = np.zeros((39, 3), np.float32)
    raw[0] = [1.0, 0.0, 0.3]
    out = decode_world(raw.reshape(-1), Roi(0, 0, 1, 1, math.pi / 2))
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.3], atol=1e-6)


def test_heatmap_refinement_is_applied():
    roi = Roi(128.0, 128.0, 256.0, 256.0, 0.0)
    raw = np.zeros((39, 5), np.float32)
    raw[:, :2] = 100.0
    heatmap = np.full((64, 64, 39), -20.0, np.float32)
    heatmap[26, 24, :] = 20.0  # peak at heatmap cell (24, 26) -> tensor pixel (96, 104)
    out = decode_landmarks(raw.reshape(-1), roi, heatmap)
    np.testing.assert_allclose(out[:, :2], np.tile([96.0, 104.0], (39, 1)), atol=1e-3)
