import math

import cv2
import numpy as np
import pytest

from edge.pose.roi import F
from edge.pose.smoothing import (
    AUX_LANDMARKS,
    LANDMARKS,
    MIN_OBJECT_SCALE,
    VISIBILITY_ALPHA,
    WORLD_LANDMARKS,
    LowPassFilter,
    OneEuroFilter,
    OneEuroParams,
    PoseSmoother,
    object_scale,
)

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


# --- the filters' arithmetic against a plain numpy reference ---------------------------------
#
# The reference below is the numpy implementation the Numba kernels replaced, kept verbatim: float32
# state, double intermediates, MediaPipe's operation order. The kernels must give the same bits.


class RefLowPassFilter:
    def __init__(self, alpha=None):
        self.alpha = None if alpha is None else np.float32(alpha)
        self.raw = None
        self.value = None

    def reset(self):
        self.raw = None
        self.value = None

    def __call__(self, x, alpha=None):
        x = np.asarray(x, dtype=np.float32)
        if alpha is not None:
            a = np.asarray(alpha, dtype=np.float32)
            keep = self.alpha if self.alpha is not None else a
            self.alpha = np.where((a >= 0) & (a <= 1), a, keep).astype(np.float32)
        if self.value is None:
            out = x
        else:
            alpha64 = np.asarray(self.alpha, dtype=np.float64)
            out = ((self.alpha * x).astype(np.float64) + (1.0 - alpha64) * self.value).astype(
                np.float32
            )
        self.raw = x
        self.value = out
        return out


class RefOneEuroFilter:
    def __init__(self, params, frequency=30.0):
        self.params = params
        self.initial_frequency = frequency
        self.x = RefLowPassFilter()
        self.dx = RefLowPassFilter()
        self.reset()

    def reset(self):
        self.frequency = self.initial_frequency
        self.last_ns = None
        self.x.reset()
        self.dx.reset()

    def _alpha(self, cutoff):
        te = 1.0 / self.frequency
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
        return 1.0 / (1.0 + tau / te)

    def __call__(self, value, t_ns, value_scale=1.0):
        value = np.asarray(value, dtype=np.float32)
        if self.last_ns is not None and t_ns <= self.last_ns:
            return value
        if self.last_ns is not None and self.last_ns != 0 and t_ns != 0:
            self.frequency = 1.0 / ((t_ns - self.last_ns) * 1e-9)
        self.last_ns = t_ns
        if self.params.disable_value_scaling:
            value_scale = 1.0
        if self.x.raw is None:
            dvalue = np.zeros(value.shape, np.float64)
        else:
            dvalue = (value.astype(np.float64) - self.x.raw) * float(value_scale) * self.frequency
        edvalue = self.dx(dvalue.astype(np.float32), self._alpha(self.params.derivate_cutoff))
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(edvalue).astype(np.float64)
        return self.x(value, self._alpha(cutoff))


class RefPoseSmoother(PoseSmoother):
    """PoseSmoother as a composition of the reference filters (in numpy), each called on its
    slice of the landmarks (PoseSmoother does each group in one kernel call)."""

    def __init__(self):
        super().__init__()
        self.landmarks = RefOneEuroFilter(self.landmarks.params)
        self.aux = RefOneEuroFilter(self.aux.params)
        self.world = RefOneEuroFilter(self.world.params)
        self.visibility = RefLowPassFilter(VISIBILITY_ALPHA)
        self.aux_visibility = RefLowPassFilter(VISIBILITY_ALPHA)

    def __call__(self, norm, world, image_size, t_ns, body=True):
        out = norm.astype(np.float32, copy=True)
        scale = object_scale(norm, image_size)
        if scale < MIN_OBJECT_SCALE:
            return out, world
        value_scale = float(F(F(1.0) / F(scale)))
        w, h = F(image_size[0]), F(image_size[1])
        to_px = np.array([w, h, w], np.float32)
        out[33:, 3] = self.aux_visibility(norm[33:, 3])
        out[33:, :3] = self.aux(norm[33:, :3] * to_px, t_ns, value_scale) / to_px
        if not body:
            return out, world
        out[:33, 3] = self.visibility(norm[:33, 3])
        out[:33, :3] = self.landmarks(norm[:33, :3] * to_px, t_ns, value_scale) / to_px
        return out, self.world(world, t_ns)


def reference_smoother() -> PoseSmoother:
    return RefPoseSmoother()


def assert_same_bits(a, b):
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def random_timestamps(rng, n):
    """Mostly 30 fps with jitter; some gaps, repeats, steps back and a timestamp of 0."""
    steps = rng.choice(
        [33_333_000, 16_000_000, 40_000_000, 250_000_000, 1_000, 0, -5_000_000],
        p=[0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05],
        size=n,
    )
    steps = steps + rng.integers(-2_000_000, 2_000_000, n) * (steps > 1_000)
    t = np.cumsum(steps) + 10 * 33_333_000
    t[rng.integers(0, n)] = 0
    return [int(v) for v in t]


@pytest.mark.parametrize("params", [LANDMARKS, AUX_LANDMARKS, WORLD_LANDMARKS])
def test_one_euro_kernel_matches_numpy_reference_on_random_sequence(params):
    rng = np.random.default_rng(7)
    new, ref = OneEuroFilter(params), RefOneEuroFilter(params)
    stamps = random_timestamps(rng, 3000)
    value = rng.uniform(0, 1000, (33, 3))
    for i, t_ns in enumerate(stamps):
        value = value + rng.normal(0, rng.choice([0.1, 3.0, 80.0]), value.shape)  # random walk
        if rng.random() < 0.02:
            value = rng.uniform(-1e4, 1e4, value.shape)  # jump
        x = value.astype(np.float32)
        scale = float(rng.choice([1.0, 1 / 37.5, 1 / 400.0, 1e-3]))
        if rng.random() < 0.01:
            new.reset()
            ref.reset()
        assert_same_bits(new(x, t_ns, scale), ref(x, t_ns, scale))
        assert new.frequency == ref.frequency, i


def test_low_pass_kernel_matches_numpy_reference():
    rng = np.random.default_rng(8)
    new, ref = LowPassFilter(VISIBILITY_ALPHA), RefLowPassFilter(VISIBILITY_ALPHA)
    for _ in range(2000):
        x = rng.uniform(-10, 10, 33).astype(np.float32)
        alpha = None
        if rng.random() < 0.1:  # per-element alphas, some outside [0, 1] (ignored)
            alpha = rng.uniform(-0.5, 1.5, 33).astype(np.float32)
        if rng.random() < 0.01:
            new.reset()
            ref.reset()
        assert_same_bits(new(x, alpha), ref(x, alpha))


class RecordingSmoother:
    """Stands in for a track's smoother and records what the pipeline feeds it."""

    def __init__(self, inner, calls):
        self.inner = inner
        self.calls = calls  # (norm, world, image_size, t_ns), or None for a reset or a new track

    def reset(self):
        self.calls.append(None)
        self.inner.reset()

    def __call__(self, norm, world, image_size, t_ns, body=True):
        self.calls.append((norm.copy(), world.copy(), image_size, t_ns))
        return self.inner(norm, world, image_size, t_ns, body)


def smoother_inputs_from_video(path, frames):
    """The raw estimator outputs that video mode smooths, frame by frame, with the resets."""
    from edge import PoseEstimator

    est = PoseEstimator(tracking=True)
    calls = []

    def new_smoother():  # a new track starts with fresh filters: as a reset
        calls.append(None)
        return RecordingSmoother(PoseSmoother(), calls)

    est.tracker.smoother_factory = new_smoother
    cap = cv2.VideoCapture(str(path))
    for i in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        est.process(frame, timestamp_ms=(i + 1) * 100 / 3)
    return calls


@pytest.mark.parametrize("video", ["street.avi", "synthetic_arms_up_tfjs.mp4"])
def test_pose_smoother_matches_numpy_reference_on_real_landmarks(media, models_ready, video):
    inputs = smoother_inputs_from_video(media / "video" / video, 150)
    assert sum(item is not None for item in inputs) >= 100
    new, ref = PoseSmoother(), reference_smoother()
    for body in (True, False):
        new.reset()
        ref.reset()
        for item in inputs:
            if item is None:
                new.reset()
                ref.reset()
                continue
            norm, world, size, t_ns = item
            (n1, w1), (n2, w2) = (
                new(norm, world, size, t_ns, body),
                ref(norm, world, size, t_ns, body),
            )
            assert_same_bits(n1, n2)
            assert_same_bits(w1, w2)


def test_object_scale_kernel_same_bits_as_the_rect_arithmetic():
    """``object_scale`` (one kernel call) against the same float32 arithmetic on
    ``roi.alignment_rect``, which it replaced."""
    from edge.pose.roi import alignment_rect

    rng = np.random.default_rng(12)
    for _ in range(3000):
        norm = rng.uniform(-0.5, 1.5, (39, 5)).astype(np.float32)
        if rng.random() < 0.1:
            norm[34, :2] = norm[33, :2]  # a zero-size person
        w, h = (int(v) for v in rng.choice([64, 480, 640, 720, 1080, 1280, 1920], 2))
        rect = alignment_rect(norm[33, :2], norm[34, :2], w, h)
        expected = float(F(F(F(F(rect.width) * F(w)) + F(F(rect.height) * F(h))) / F(2.0)))
        got = object_scale(norm, (w, h))
        assert type(got) is float
        assert np.float64(got).view(np.uint64) == np.float64(expected).view(np.uint64)


def test_pose_smoother_matches_reference_on_random_sequence():
    """Repeated and backward timestamps (the one-euro filters pass through, the visibility
    filters do not), jumps, body on and off, tiny people, resets: the fused steps against the
    reference composition, bit for bit."""
    rng = np.random.default_rng(13)
    new, ref = PoseSmoother(), RefPoseSmoother()
    norm = rng.uniform(0.2, 0.8, (39, 5)).astype(np.float32)
    world = rng.normal(0, 0.5, (39, 3)).astype(np.float32)
    for t_ns in random_timestamps(rng, 1500):
        norm = (norm + rng.normal(0, 0.01, norm.shape)).astype(np.float32)
        world = (world + rng.normal(0, 0.01, world.shape)).astype(np.float32)
        if rng.random() < 0.02:
            norm[34, :2] = norm[33, :2]  # zero size: passed through unfiltered
        if rng.random() < 0.01:
            new.reset()
            ref.reset()
        size = (640, 480) if rng.random() < 0.9 else (1280, 720)
        body = bool(rng.random() < 0.8)
        (n1, w1), (n2, w2) = new(norm, world, size, t_ns, body), ref(norm, world, size, t_ns, body)
        assert_same_bits(n1, n2)
        assert_same_bits(w1, w2)
