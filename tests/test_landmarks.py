import math

import numpy as np

from edge.pose.landmarks import decode_landmarks, decode_world, sigmoid, to_pixels
from edge.pose.roi import Rect


def test_decode_projects_through_rect():
    rect = Rect(0.5, 0.25, 0.2, 0.4, math.pi / 2)  # 128 px square in a 640x320 image
    raw = np.zeros((39, 5), np.float32)
    raw[0, :3] = [128, 128, 0]  # tensor centre -> rect centre
    raw[1, :3] = [256, 128, 64]  # right edge of the tensor, turned 90 degrees -> below the centre
    raw[:, 3:] = [0.0, 2.0]
    out = decode_landmarks(raw.reshape(-1), rect)
    px = to_pixels(out, (640, 320))
    np.testing.assert_allclose(px[0, :2], [320, 80], atol=1e-4)
    np.testing.assert_allclose(px[1, :2], [320, 80 + 64], atol=1e-4)
    assert px[1, 2] == np.float32(64 / 256 * 0.2 * 640)  # z on x's pixel scale
    np.testing.assert_allclose(out[:, 3], 0.5)
    np.testing.assert_allclose(out[:, 4], sigmoid(2.0), rtol=1e-6)


def test_decode_removes_letterbox_padding():
    rect = Rect(0.5, 0.5, 1.0, 1.0, 0.0)
    raw = np.zeros((39, 5), np.float32)
    raw[0, :2] = [128, 32]  # a quarter of the way down the padded tensor
    out = decode_landmarks(raw.reshape(-1), rect, padding=(0.0, 0.125, 0.0, 0.125))
    np.testing.assert_allclose(out[0, :2], [0.5, (0.125 - 0.125) / 0.75], atol=1e-6)


def test_decode_world_rotates_about_z():
    raw = np.zeros((39, 3), np.float32)
    raw[0] = [1.0, 0.0, 0.3]
    out = decode_world(raw.reshape(-1), Rect(0, 0, 1, 1, math.pi / 2))
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.3], atol=1e-6)


def test_heatmap_refinement_is_applied():
    rect = Rect(0.5, 0.5, 1.0, 1.0, 0.0)
    raw = np.zeros((39, 5), np.float32)
    raw[:, :2] = 100.0
    heatmap = np.full((64, 64, 39), -20.0, np.float32)
    heatmap[26, 24, :] = 20.0  # peak at heatmap cell (24, 26) -> tensor pixel (96, 104)
    out = decode_landmarks(raw.reshape(-1), rect, heatmap=heatmap)
    np.testing.assert_allclose(out[:, :2], np.tile([96 / 256, 104 / 256], (39, 1)), atol=1e-6)
