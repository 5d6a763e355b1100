import math

import numpy as np

from edge.smoothing import LANDMARKS, LowPassFilter, OneEuroFilter, OneEuroParams, PoseSmoother

FRAME_NS = 33_333_000


def test_one_euro_first_sample_passes_through_then_smooths():
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    np.testing.assert_allclose(f(np.array([10.0]), FRAME_NS), [10.0])
    out = f(np.array([20.0]), 2 * FRAME_NS)
    # alpha = 1 / (1 + tau / te), tau = 1 / (2 pi cutoff), te = 1 / frequency
    alpha = 1 / (1 + (1 / (2 * math.pi)) / (FRAME_NS * 1e-9))
    np.testing.assert_allclose(out, [10 + alpha * 10], rtol=1e-6)


def test_one_euro_follows_fast_motion_more_closely_with_beta():
    slow = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=0.0))
    fast = OneEuroFilter(LANDMARKS)
    for i in range(1, 11):
        a = slow(np.array([i * 10.0]), i * FRAME_NS, 1 / 100)
        b = fast(np.array([i * 10.0]), i * FRAME_NS, 1 / 100)
    assert abs(b[0] - 100) < abs(a[0] - 100)


def test_one_euro_ignores_repeated_timestamp():
    f = OneEuroFilter(LANDMARKS)
    f(np.array([1.0]), FRAME_NS)
    np.testing.assert_allclose(f(np.array([5.0]), FRAME_NS), [5.0])  # passed through
    assert f.x.raw[0] == 1.0  # state kept


def test_low_pass():
    f = LowPassFilter(0.1)
    assert f(np.array([1.0]))[0] == 1.0
    assert f(np.array([0.0]))[0] == np.float32(0.9)


def test_low_pass_ignores_alpha_outside_unit_range():
    f = LowPassFilter(0.5)
    f(np.array([0.0]))
    assert f(np.array([1.0]), alpha=7.0)[0] == np.float32(0.5)


def test_pose_smoother_reset_forgets_history():
    s = PoseSmoother()
    norm = np.zeros((39, 5), np.float32)
    norm[:, :2] = 0.5
    norm[33, :2] = [0.5, 0.5]
    norm[34, :2] = [0.5, 0.4]
    size = (640, 480)
    world = np.zeros((39, 3), np.float32)
    s(norm, world, size, FRAME_NS)
    moved = norm.copy()
    moved[:, :2] += 0.05
    out, _ = s(moved, world, size, 2 * FRAME_NS)
    assert not np.allclose(out[:, :2], moved[:, :2])
    s.reset()
    out, _ = s(moved, world, size, 3 * FRAME_NS)
    np.testing.assert_allclose(out[:, :2], moved[:, :2])


def test_pose_smoother_always_filters_auxiliary_landmarks():
    s = PoseSmoother()
    norm = np.zeros((39, 5), np.float32)
    norm[33, :2] = [0.5, 0.5]
    norm[34, :2] = [0.5, 0.4]
    world = np.zeros((39, 3), np.float32)
    s(norm, world, (640, 480), FRAME_NS, body=False)
    moved = norm + np.float32(0.05)
    out, _ = s(moved, world, (640, 480), 2 * FRAME_NS, body=False)
    np.testing.assert_array_equal(out[:33, :2], moved[:33, :2])  # body left raw
    assert not np.allclose(out[33:35, :2], moved[33:35, :2])  # aux filtered
