"""Temporal filters for video mode, as MediaPipe's pose_landmark_filtering graph applies them.

- Landmarks: a one-euro filter per coordinate, in pixels, with the speed term scaled by the size of
  the person (so a small, far-away person is smoothed as much as a near one).
- World landmarks: a one-euro filter in metres, no value scaling.
- Auxiliary landmarks (the tracking ROI's alignment points): a slower one-euro filter.
- Visibility and presence: a first-order low-pass filter.

Every filter is reset when the person is lost, so a new person never inherits an old trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


class OneEuroFilter:
    """A vectorised one-euro filter (Casiez et al. 2012) over an array of values."""

    def __init__(self, params: OneEuroParams, frequency: float = DEFAULT_FREQUENCY):
        self.params = params
        self.initial_frequency = frequency
        self.reset()

    def reset(self) -> None:
        self.frequency = self.initial_frequency
        self.last_time: float | None = None
        self.last_raw: np.ndarray | None = None
        self.last_value: np.ndarray | None = None
        self.last_derivative: np.ndarray | None = None

    def _alpha(self, cutoff) -> np.ndarray | float:
        te = 1.0 / self.frequency
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, value: np.ndarray, t: float, value_scale: float = 1.0) -> np.ndarray:
        """Filter ``value`` observed at time ``t`` (seconds)."""
        value = np.asarray(value, dtype=np.float64)
        if self.last_time is not None and t <= self.last_time:
            return value  # out-of-order or repeated timestamp: pass through, keep state
        if self.last_time is not None:
            self.frequency = 1.0 / (t - self.last_time)
        self.last_time = t
        if self.params.disable_value_scaling:
            value_scale = 1.0
        if self.last_raw is None:
            derivative = np.zeros_like(value)
        else:
            derivative = (value - self.last_raw) * value_scale * self.frequency
        a_d = self._alpha(self.params.derivate_cutoff)
        if self.last_derivative is not None:
            derivative = a_d * derivative + (1 - a_d) * self.last_derivative
        self.last_derivative = derivative
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(derivative)
        a = self._alpha(cutoff)
        out = value if self.last_value is None else a * value + (1 - a) * self.last_value
        self.last_raw = value
        self.last_value = out
        return out


class LowPassFilter:
    def __init__(self, alpha: float):
        self.alpha = alpha
        self.last: np.ndarray | None = None

    def reset(self) -> None:
        self.last = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        self.last = (
            value if self.last is None else self.alpha * value + (1 - self.alpha) * self.last
        )
        return self.last


def object_scale(landmarks: np.ndarray) -> float:
    """The person's size in pixels, as MediaPipe measures it for value scaling: the side of the
    (unscaled) alignment square, 2 * |scale point - centre| of the raw landmarks 34 and 33."""
    return 2.0 * float(np.hypot(*(landmarks[34, :2] - landmarks[33, :2])))


class PoseSmoother:
    """Smooths one tracked person's landmarks across frames."""

    def __init__(self):
        self.landmarks = OneEuroFilter(LANDMARKS)
        self.aux = OneEuroFilter(AUX_LANDMARKS)
        self.world = OneEuroFilter(WORLD_LANDMARKS)
        self.visibility = LowPassFilter(VISIBILITY_ALPHA)

    def reset(self) -> None:
        for f in (self.landmarks, self.aux, self.world, self.visibility):
            f.reset()

    def __call__(
        self, landmarks: np.ndarray, world: np.ndarray, t: float, body: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(39, 5) image landmarks and (39, 3) world landmarks at time ``t`` -> filtered copies.

        The auxiliary landmarks (which steer tracking) are always filtered, as in MediaPipe;
        ``body=False`` leaves the body landmarks, visibilities and world landmarks raw.
        """
        out = landmarks.astype(np.float32, copy=True)
        scale = object_scale(landmarks)
        if scale < MIN_OBJECT_SCALE:
            return out, world
        out[33:, :3] = self.aux(landmarks[33:, :3], t, 1.0 / scale)
        if not body:
            return out, world
        out[:33, :3] = self.landmarks(landmarks[:33, :3], t, 1.0 / scale)
        out[:, 3:] = self.visibility(landmarks[:, 3:])
        return out, self.world(world, t).astype(np.float32)
