import numpy as np

from edge.smoothing import LANDMARKS, LowPassFilter, OneEuroFilter, OneEuroParams, PoseSmoother


def test_one_euro_first_sample_passes_through_then_smooths():
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    np.testing.assert_allclose(f(np.array([10.0]), 0.0), [10.0])
    out = f(np.array([20.0]), 1 / 30)
    # alpha = 1 / (1 + tau / te) with tau = 1 / (2 pi), te = 1/30
    alpha = 1 / (1 + (1 / (2 * np.pi)) * 30)
    np.testing.assert_allclose(out, [10 + alpha * 10], rtol=1e-9)


def test_one_euro_follows_fast_motion_more_closely_with_beta():
    slow = OneEuroFilter(OneEuroParams(min_cutoff=0.05, beta=0.0))
    fast = OneEuroFilter(LANDMARKS)
    for i in range(10):
        a = slow(np.array([i * 10.0]), i / 30, 1 / 100)
        b = fast(np.array([i * 10.0]), i / 30, 1 / 100)
    assert abs(b[0] - 90) < abs(a[0] - 90)


def test_one_euro_ignores_repeated_timestamp():
    f = OneEuroFilter(LANDMARKS)
    f(np.array([1.0]), 1.0)
    np.testing.assert_allclose(f(np.array([5.0]), 1.0), [5.0])  # passed through, state kept
    assert f.last_raw[0] == 1.0


def test_low_pass():
    f = LowPassFilter(0.1)
    assert f(np.array([1.0]))[0] == 1.0
    assert f(np.array([0.0]))[0] == np.float64(0.9)


def test_pose_smoother_reset_forgets_history():
    s = PoseSmoother()
    lm = np.zeros((39, 5), np.float32)
    lm[33, :2] = [100, 100]
    lm[34, :2] = [100, 50]
    s(lm, np.zeros((39, 3), np.float32), 0.0)
    moved = lm.copy()
    moved[:, :2] += 40
    out, _ = s(moved, np.zeros((39, 3), np.float32), 1 / 30)
    assert not np.allclose(out[:, :2], moved[:, :2])
    s.reset()
    out, _ = s(moved, np.zeros((39, 3), np.float32), 2 / 30)
    np.testing.assert_allclose(out[:, :2], moved[:, :2])
