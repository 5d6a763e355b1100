"""``PoseEstimator``: the stages wired together.

frame (BGR) -> [tracked ROI, or detector -> ROI] -> estimator -> (video mode) smoothing -> ``Pose``
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .detector import MIN_SCORE, Detector
from .landmarks import NUM_BODY, LandmarkModel, LandmarkResult, to_pixels
from .models import locate
from .models import models_dir as default_models_dir
from .roi import Roi, rect_to_roi
from .smoothing import PoseSmoother
from .stopwatch import Stopwatch
from .tracking import Tracker, roi_from_detection
from .variants import CHOICES, VARIANTS, choose

log = logging.getLogger(__name__)


class FrameError(ValueError):
    """The frame cannot be processed (wrong type, shape or dtype, or empty)."""


@dataclass
class Pose:
    """One person. Pixels are the input frame's; z is on x's scale, negative towards the camera."""

    score: float
    landmarks: np.ndarray  # (33, 5) float32: x, y, z (px), visibility, presence
    world_landmarks: np.ndarray  # (33, 3) float32, metres, origin between the hips
    roi: Roi
    segmentation_mask: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self, decimals: int = 3) -> dict:
        return {
            "score": round(self.score, 4),
            "landmarks": np.round(self.landmarks.astype(np.float64), decimals).tolist(),
            "world_landmarks": np.round(self.world_landmarks.astype(np.float64), 4).tolist(),
        }


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as an (H, W, 3) uint8 BGR array with packed pixels (padded rows, as in
    camera buffers, are kept without a copy), or raise ``FrameError``."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, not {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f"frame must be (H, W, 3) BGR, got shape {frame.shape}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise FrameError(f"frame is empty or too small: {frame.shape}")
    if frame.strides[1:] != (3, 1):  # rows may be padded (camera buffers), pixels may not
        frame = np.ascontiguousarray(frame)
    return frame


class PoseEstimator:
    """BlazePose on one video stream or a set of images.

    ``tracking=True`` is video mode: the detector runs only when the person is lost, and landmarks
    are smoothed over time. ``tracking=False`` is static-image mode: each call is independent.

    ``variant``: ``"float"``, ``"int8"`` (the int8 estimator built by ``models/quantize.py``,
    accepted only if it passed its accuracy gate) or ``"auto"`` (the fastest verified variant on
    this board, measured once and cached; see ``edge/variants.py``). ``self.variant`` is the one
    in use and ``self.variant_reason`` says why.
    """

    def __init__(
        self,
        variant: str = "auto",
        num_threads: int | None = None,
        tracking: bool = True,
        *,
        smoothing: bool | None = None,
        segmentation: bool = False,
        min_detection_score: float = MIN_SCORE,
        warp: str = "numba",
        backend: str | None = None,
        models_dir: str | Path | None = None,
    ):
        if variant not in CHOICES:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(CHOICES)}")
        if not 0.0 < min_detection_score < 1.0:
            raise ValueError(f"min_detection_score must be in (0, 1), not {min_detection_score}")
        if variant == "int8" and segmentation:
            raise ValueError(
                "the int8 estimator has no segmentation head; use variant 'float' or 'auto' "
                "(auto picks float when segmentation is on)"
            )
        if num_threads is not None and num_threads < 0:
            raise ValueError(f"num_threads must be >= 1 (or 0/None: automatic), not {num_threads}")
        directory = Path(models_dir) if models_dir else default_models_dir()

        def load(path: Path) -> LandmarkModel:
            return LandmarkModel(path, num_threads, backend, warp=warp, segmentation=segmentation)

        if variant == "auto":
            choice = choose(directory, num_threads, backend, segmentation, load)
            self.variant, self.variant_reason = choice.variant, choice.reason
            self.estimator = choice.model
        else:
            self.variant, self.variant_reason = variant, "requested"
            self.estimator = load(locate(VARIANTS[variant][1], directory))
        self.detector = Detector(
            locate(VARIANTS[self.variant][0], directory), num_threads, backend,
            min_score=min_detection_score,
        )  # fmt: skip
        self.tracking = tracking
        self.smoothing = tracking if smoothing is None else smoothing
        self.segmentation = segmentation
        self.tracker = Tracker(enabled=tracking)
        self.smoother = PoseSmoother()
        self._last_t: float | None = None  # the last timestamp_ms, to notice a step back
        self.timings: dict[str, float] = {}

    @property
    def num_threads(self) -> int:
        return self.estimator.model.num_threads

    def reset(self) -> None:
        """Forget the tracked person (start of a new video)."""
        self.tracker.reset()
        self.smoother.reset()
        self._last_t: float | None = None

    def process(self, frame_bgr: np.ndarray, timestamp_ms: float | None = None) -> list[Pose]:
        """Poses in ``frame_bgr`` (H, W, 3 uint8 BGR). ``timestamp_ms`` drives smoothing in video
        mode; without it the monotonic clock is used."""
        frame = check_frame(frame_bgr)
        t = time.monotonic() * 1000.0 if timestamp_ms is None else float(timestamp_ms)
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, not {t}")
        if self.tracking and self._last_t is not None and t < self._last_t:
            # a seek back, or another clip without reset(): the filters would pass raw values
            # until time caught up again, so start them afresh (the track itself may go on)
            log.warning(
                "timestamp went back from %.1f to %.1f ms: smoothing starts again (call reset() "
                "between videos)", self._last_t, t,
            )  # fmt: skip
            self.smoother.reset()
        self._last_t = t
        sw = Stopwatch()

        result: LandmarkResult | None = None
        roi = self.tracker.tracked_roi()
        if roi is not None:
            result = self.estimator.estimate(frame, roi, self.segmentation, sw)
        if result is None:
            # Lost (or never had) the person: detect on this same frame rather than skip it.
            self.smoother.reset()
            detections = self.detector.detect(frame, sw)
            self.tracker.detected()
            if detections:
                rect = roi_from_detection(detections[0])
                result = self.estimator.estimate(frame, rect, self.segmentation, sw)

        poses: list[Pose] = []
        if result is None:
            self.tracker.update(None)
        else:
            with sw("smoothing"):
                norm, world = result.norm, result.world
                if self.tracking:
                    t_ns = round(t * 1000.0) * 1000  # MediaPipe stamps packets in microseconds
                    norm, world = self.smoother(
                        norm, world, result.image_size, t_ns, self.smoothing
                    )
                self.tracker.update(norm, result.image_size)
            poses.append(
                Pose(
                    score=result.score,
                    landmarks=to_pixels(norm[:NUM_BODY], result.image_size),
                    world_landmarks=world[:NUM_BODY].copy(),
                    roi=rect_to_roi(result.rect, *result.image_size),
                    segmentation_mask=result.mask,
                )
            )
        self.timings = sw.ms
        return poses
