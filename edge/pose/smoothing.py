"""Temporal filters for video mode, as MediaPipe's pose_landmark_filtering graph applies them.

- Landmarks: a one-euro filter per coordinate, in pixels, with the speed term divided by the
  person's size (so a small, far-away person is smoothed as much as a near one).
- World landmarks: a one-euro filter in metres, no value scaling.
- Auxiliary landmarks (the next frame's crop is computed from them): a slower one-euro filter,
  always on while tracking, as in MediaPipe.
- Visibility and presence: a first-order low-pass filter.

The arithmetic follows MediaPipe's filters (float32 state, double intermediates), so tracking
computes the same crops frame after frame. Every filter resets when the person is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .roi import F


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0
    disable_value_scaling: bool = False


# MediaPipe's values (pose_landmark_filtering.pbtxt).
LANDMARKS = OneEuroParams(min_cutoff=0.05, beta=80.0)
WORLD_LANDMARKS = OneEuroParams(min_cutoff=0.1, beta=40.0, disable_value_scaling=True)
AUX_LANDMARKS = OneEuroParams(min_cutoff=0.01, beta=10.0)
VISIBILITY_ALPHA = 0.1
DEFAULT_FREQUENCY = 30.0  # Hz, until two timestamps give the real rate
MIN_OBJECT_SCALE = 1e-6


class LowPassFilter:
    """y = alpha * x + (1 - alpha) * y_prev, elementwise, with float32 state (MediaPipe's)."""

    def __init__(self, alpha: float | None = None):
        self.alpha = None if alpha is None else np.full(1, alpha, np.float32)
        self.raw: np.ndarray | None = None  # last input and output, flat float32
        self.value: np.ndarray | None = None

    def reset(self) -> None:
        self.raw = None
        self.value = None  # the alpha stays, as in MediaPipe

    def _start(self, size: int) -> bool:
        """Whether a previous sample exists; allocates the state for a first one."""
        if self.value is not None:
            return True
        self.raw = np.empty(size, np.float32)
        self.value = np.empty(size, np.float32)
        return False

    def __call__(self, x: np.ndarray, alpha: np.ndarray | float | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if alpha is not None:
            # MediaPipe ignores an alpha outside [0, 1] and keeps the previous one
            a = np.asarray(alpha, dtype=np.float32).reshape(-1)
            keep = self.alpha if self.alpha is not None else a
            self.alpha = np.where((a >= 0) & (a <= 1), a, keep).astype(np.float32)
        started = self._start(x.size)
        return kernels.low_pass(x, self.alpha, self.raw, self.value, started)


class OneEuroFilter:
    """A vectorised one-euro filter (Casiez et al. 2012), in MediaPipe's formulation: the
    derivative comes from the previous raw value, and ``value_scale`` scales only the derivative.
    The state is two low-pass filters, ``x`` for the values and ``dx`` for their derivative; one
    step is ``kernels.one_euro``."""

    def __init__(self, params: OneEuroParams, frequency: float = DEFAULT_FREQUENCY):
        self.params = params
        self.initial_frequency = frequency
        self.x = LowPassFilter()
        self.dx = LowPassFilter()
        self.reset()

    def reset(self) -> None:
        self.frequency = self.initial_frequency
        self.last_ns: int | None = None
        self.x.reset()
        self.dx.reset()

    def __call__(self, value: np.ndarray, t_ns: int, value_scale: float = 1.0) -> np.ndarray:
        """Filter ``value`` observed at ``t_ns`` (integer nanoseconds)."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        step = self.step(t_ns, value.size, value_scale)
        if step is None:
            return value  # repeated or out-of-order timestamp: pass through, keep the state
        return kernels.one_euro(value, *step)

    def step(self, t_ns: int, size: int, value_scale: float = 1.0) -> tuple | None:
        """Advance the clock to ``t_ns`` for ``size`` values: the arguments of
        ``kernels.one_euro`` after the value (state arrays, flags, frequency, scale, parameters),
        or None if ``t_ns`` is not after the last timestamp (the value passes through)."""
        if self.last_ns is not None and t_ns <= self.last_ns:
            return None
        if self.last_ns is not None and self.last_ns != 0 and t_ns != 0:
            self.frequency = 1.0 / ((t_ns - self.last_ns) * 1e-9)
        self.last_ns = t_ns
        if self.params.disable_value_scaling:
            value_scale = 1.0
        x, dx = self.x, self.dx
        has_alpha = x.alpha is not None
        if not has_alpha:
            x.alpha = np.empty(size, np.float32)
            dx.alpha = np.empty(size, np.float32)
        started = x._start(size)
        dx._start(size)  # the two always start and reset together
        p = self.params
        return (
            x.raw, x.value, x.alpha, dx.raw, dx.value, dx.alpha, started, has_alpha,
            self.frequency, float(value_scale), p.min_cutoff, p.beta, p.derivate_cutoff,
        )  # fmt: skip


def object_scale(norm: np.ndarray, image_size: tuple[int, int]) -> float:
    """The person's size in pixels as MediaPipe measures it for value scaling: the mean side of
    the (unscaled) alignment rect of the raw auxiliary landmarks 33 and 34 (``roi.alignment_rect``;
    one kernel call, ``kernels.object_scale``)."""
    a, b = norm[33], norm[34]
    return kernels.object_scale(
        float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(image_size[0]),
        float(image_size[1]),
    )  # fmt: skip


class PoseSmoother:
    """Smooths one tracked person's landmarks across frames."""

    def __init__(self):
        self.landmarks = OneEuroFilter(LANDMARKS)
        self.aux = OneEuroFilter(AUX_LANDMARKS)
        self.world = OneEuroFilter(WORLD_LANDMARKS)
        self.visibility = LowPassFilter(VISIBILITY_ALPHA)
        self.aux_visibility = LowPassFilter(VISIBILITY_ALPHA)

    def reset(self) -> None:
        for f in (self.landmarks, self.aux, self.world, self.visibility, self.aux_visibility):
            f.reset()

    def __call__(
        self,
        norm: np.ndarray,
        world: np.ndarray,
        image_size: tuple[int, int],
        t_ns: int,
        body: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(39, 5) normalised landmarks and (39, 3) world landmarks at ``t_ns`` -> filtered copies.

        The auxiliary landmarks (which steer tracking) are always filtered, as in MediaPipe;
        ``body=False`` leaves the body landmarks, their visibilities and world landmarks raw.
        """
        out = norm.astype(np.float32, copy=True)
        scale = object_scale(norm, image_size)
        if scale < MIN_OBJECT_SCALE:
            return out, world
        value_scale = float(F(F(1.0) / F(scale)))
        w, h = float(image_size[0]), float(image_size[1])
        # each group's visibility through its low-pass filter, its x, y, z in pixels through its
        # one-euro filter (one kernel call per group: kernels.smooth_landmarks)
        for lo, hi, visibility, points in (
            (33, out.shape[0], self.aux_visibility, self.aux),
            (0, 33, self.visibility, self.landmarks),
        ):
            if lo == 0 and not body:
                return out, world
            started = visibility._start(hi - lo)
            step = points.step(t_ns, (hi - lo) * 3, value_scale)
            kernels.smooth_landmarks(
                out, lo, hi, w, h, visibility.alpha, visibility.raw, visibility.value, started,
                *(step or _NO_STEP), step is not None,
            )  # fmt: skip
        return out, self.world(world, t_ns)


_EMPTY = np.empty(0, np.float32)
_NO_STEP = (_EMPTY,) * 6 + (False, False, 0.0, 0.0, 0.0, 0.0, 0.0)
