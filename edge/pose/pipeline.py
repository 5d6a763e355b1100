"""``PoseEstimator``: the stages wired together.

frame (BGR) -> [tracked ROIs, and/or detector -> ROIs] -> estimator -> (video mode) smoothing
-> ``Pose`` per person (up to ``num_poses``)
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .board import has_fp16_arithmetic
from .detector import MIN_SCORE, Detector
from .landmarks import NUM_BODY, FallbackLandmarkModel, LandmarkModel, LandmarkResult, to_pixels
from .models import (
    DEFAULT_MODEL,
    INT8_MODELS,
    LANDMARK_MODELS,
    estimator_name,
    int8_name,
    locate,
)
from .models import models_dir as default_models_dir
from .roi import Roi, rect_to_roi
from .stopwatch import Stopwatch
from .tracking import (
    CENTRE_LANDMARK,
    REDETECT_INTERVAL,
    SAME_ALIGNMENT,
    SCALE_LANDMARK,
    Track,
    Tracker,
    alignment_distance,
    detector_due,
    duplicates,
    roi_from_detection,
    roi_from_landmarks,
    to_px,
)
from .variants import CHOICES, choose, choose_detector, variants

log = logging.getLogger(__name__)


# Timestamps computed as i * 1000 / fps fall a hair short of whole intervals (6 frames at 30 FPS
# are 199.99999999999997 ms): a scan is due this much before the interval is complete.
IDLE_TOLERANCE_MS = 1e-3


def _check_idle_hz(value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"idle_detect_hz must be a number >= 0 (scans per second; 0: every frame), not "
            f"{value!r}"
        )


class FrameError(ValueError):
    """The frame cannot be processed (wrong type, shape or dtype, or empty)."""


@dataclass
class Pose:
    """One person. Pixels are the input frame's; z is on x's scale, negative towards the camera.

    ``id``: in video mode the person's track id, the same from frame to frame while they are
    tracked (ids count up from 0 and are not reused until ``PoseEstimator.reset``); in static mode
    the rank of the person's detection in that image (0 = best)."""

    score: float
    landmarks: np.ndarray  # (33, 5) float32: x, y, z (px), visibility, presence
    world_landmarks: np.ndarray  # (33, 3) float32, metres, origin between the hips
    roi: Roi
    segmentation_mask: np.ndarray | None = field(default=None, repr=False)
    id: int = 0

    def to_dict(self, decimals: int = 3) -> dict:
        return {
            "id": self.id,
            "score": round(self.score, 4),
            "landmarks": np.round(self.landmarks.astype(np.float64), decimals).tolist(),
            "world_landmarks": np.round(self.world_landmarks.astype(np.float64), 4).tolist(),
        }


class Poses(list):
    """What ``PoseEstimator.process`` returns: a list of ``Pose`` (best first in static mode,
    ordered by id in video mode), with one more attribute:

    ``scanned``: whether the frame was looked at. Always True, except in video mode with
    ``idle_detect_hz`` set: while nobody is tracked, frames between two scans are not looked at
    and come back at once as an empty ``Poses`` with ``scanned`` False (nobody was tracked on
    the frame before, and nobody is known to be in this one)."""

    scanned: bool = True

    def __init__(self, poses=(), scanned: bool = True):
        super().__init__(poses)
        self.scanned = scanned

    def __repr__(self) -> str:
        return f"Poses({list.__repr__(self)}, scanned={self.scanned})"


def _check_shape(frame: np.ndarray) -> None:
    """Raise ``FrameError`` unless ``frame`` is a frame ``check_frame`` accepts (cheap: no
    pixel is read or copied)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, not {frame.dtype}")
    shape = frame.shape
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4)):
        if shape[0] < 2 or shape[1] < 2:
            raise FrameError(f"frame is empty or too small: {(*shape[:2], 3)}")
        return
    raise FrameError(f"frame must be (H, W, 3) BGR, got shape {shape}")


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as an (H, W, 3) uint8 BGR array with packed pixels (padded rows, as in
    camera buffers, are kept without a copy), or raise ``FrameError``."""
    _check_shape(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.strides[1:] != (3, 1):  # rows may be padded (camera buffers), pixels may not
        frame = np.ascontiguousarray(frame)
    return frame


class PoseEstimator:
    """BlazePose on one video stream or a set of images.

    ``tracking=True`` is video mode: the detector runs only when the person is lost, and landmarks
    are smoothed over time. ``tracking=False`` is static-image mode: each call is independent.

    ``model``: the landmark model, ``"lite"``, ``"full"`` (the default) or ``"heavy"``:
    MediaPipe's ``model_complexity`` 0, 1 and 2, from fastest to most accurate. Each must have
    been fetched (``blazepose-edge models fetch --model heavy``).

    ``num_poses``: at most this many people per frame (default 1). In static mode the best
    ``num_poses`` detections are estimated and the poses come best first. In video mode each
    person has a track of their own (an id, a ROI carried from their own previous landmarks,
    their own smoothing filters) and poses come ordered by id; while fewer than ``num_poses``
    people are tracked the detector runs every ``redetect_interval`` frames (on every frame while
    nobody is, and at once when a track ends) to find newcomers. With more people in view than
    ``num_poses``, those already tracked are kept and the others are ignored until a track ends.

    ``idle_detect_hz``: in video mode, while nobody is tracked, look for people at most this
    many times per second of the frames' timestamps instead of on every frame (0, the default:
    every frame, as MediaPipe). The frames in between come back at once, without being looked
    at, as an empty ``Poses`` whose ``scanned`` is False. A person walking in is found within
    ``1 / idle_detect_hz`` seconds of the first frame they can be found on (if they still can be
    on the next scan's frame). Once someone is tracked every frame is processed; when the last
    track ends, every frame is scanned for one more interval (a person lost for a moment is
    usually still there), then once an interval. Static mode scans every image.

    ``variant``: ``"float"``, ``"int8"`` (the int8 estimator ``./install.sh --int8`` installs, for
    lite and full, accepted only if it passed its accuracy gate; the frames whose pose flag is within
    ``landmarks.INT8_FALLBACK_BAND`` are run by the float model instead: ``fallback_share``),
    ``"fp16"`` (the landmark model marked for fp16 inference, derived from it on first use: fp16 on
    cores with fp16 arithmetic, fp32 elsewhere; ``edge/pose/fp16.py``) or ``"auto"`` (the fastest
    verified variant of ``model`` on this board, measured once and cached; see
    ``edge/pose/variants.py``). ``self.variant`` is the one in use and ``self.variant_reason`` says
    why. The detector is float, or for ``int8`` and ``auto`` the int8 detector where it passed its
    gate on held-out sources (``auto``: where it is measured faster): ``self.detector_variant`` and
    ``self.detector_reason``.
    """

    def __init__(
        self,
        variant: str = "auto",
        num_threads: int | None = None,
        tracking: bool = True,
        *,
        model: str = DEFAULT_MODEL,
        smoothing: bool | None = None,
        segmentation: bool = False,
        min_detection_score: float = MIN_SCORE,
        warp: str = "numba",
        backend: str | None = None,
        models_dir: str | Path | None = None,
        num_poses: int = 1,
        redetect_interval: int = REDETECT_INTERVAL,
        idle_detect_hz: float = 0.0,
    ):
        if model not in LANDMARK_MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(LANDMARK_MODELS)}")
        if isinstance(num_poses, bool) or not isinstance(num_poses, int) or num_poses < 1:
            raise ValueError(f"num_poses must be an integer >= 1, not {num_poses!r}")
        if (
            isinstance(redetect_interval, bool)
            or not isinstance(redetect_interval, int)
            or redetect_interval < 1
        ):
            raise ValueError(
                f"redetect_interval must be an integer >= 1 (frames), not {redetect_interval!r}"
            )
        _check_idle_hz(idle_detect_hz)
        if variant not in CHOICES:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(CHOICES)}")
        if variant == "int8" and int8_name(model) is None:
            raise ValueError(
                f"there is no int8 estimator for model {model!r} (only for "
                f"{' and '.join(INT8_MODELS)}); use variant "
                "'float' or 'auto'"
            )
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

        loaded: dict[Path, LandmarkModel] = {}

        def load_plain(path: Path) -> LandmarkModel:
            if path not in loaded:  # auto's float candidate doubles as int8's fallback
                loaded[path] = LandmarkModel(
                    path, num_threads, backend, warp=warp, segmentation=segmentation
                )
            return loaded[path]

        def load(path: Path) -> LandmarkModel | FallbackLandmarkModel:
            if path.stem != int8_name(model):
                return load_plain(path)
            # the int8 estimator hands the frames it is unsure of to the float model
            float_path = locate(estimator_name(model), directory)
            return FallbackLandmarkModel(load_plain(path), load_plain(float_path))

        table = variants(model)
        if variant == "auto":
            choice = choose(directory, num_threads, backend, segmentation, load, model)
            self.variant, self.variant_reason = choice.variant, choice.reason
            self.estimator = choice.model
        else:
            self.variant, self.variant_reason = variant, "requested"
            if variant == "fp16" and not has_fp16_arithmetic():
                self.variant_reason += " (no fp16 arithmetic on this CPU: XNNPACK runs it in fp32)"
            self.estimator = load(locate(table[variant][1], directory))
        self.model = model

        def load_detector(path: Path) -> Detector:
            return Detector(path, num_threads, backend, min_score=min_detection_score)

        detector = choose_detector(directory, variant, num_threads, backend, load_detector)
        self.detector = detector.model
        self.detector_variant, self.detector_reason = detector.variant, detector.reason
        self.tracking = tracking
        self._smoothing = tracking if smoothing is None else bool(smoothing)
        self.segmentation = segmentation
        self.num_poses = num_poses
        self.redetect_interval = redetect_interval
        self.tracker = Tracker(enabled=tracking)
        self._last_t: float | None = None  # the last timestamp_ms, to notice a step back
        self._idle_hz = float(idle_detect_hz)
        self._last_scan_t: float | None = None  # when the detector last ran with nobody tracked
        self._last_seen_t: float | None = None  # the last frame on which someone was tracked
        self._scanned = 0  # frames looked at (``frames_scanned``)
        self._timings: dict[str, float] = {}
        self._model_files = {
            "detector": self.detector.model.path,
            "estimator": self.estimator.model.path,
        }
        self._backend = self.estimator.model.backend
        self._num_threads = self.estimator.model.num_threads
        self._closed = False

    # --- what callers may read and set (the service uses only these) ------------------------

    @property
    def num_threads(self) -> int:
        """Interpreter threads in use."""
        return self._num_threads

    @property
    def backend(self) -> str:
        """The interpreter package in use: ``ai_edge_litert`` or ``tflite_runtime``."""
        return self._backend

    @property
    def model_files(self) -> dict[str, Path]:
        """The verified model files in use: ``{"detector": path, "estimator": path}``."""
        return dict(self._model_files)

    @property
    def min_detection_score(self) -> float:
        return self.detector.min_score

    @min_detection_score.setter
    def min_detection_score(self, value: float) -> None:
        if not 0.0 < value < 1.0:
            raise ValueError(f"min_detection_score must be in (0, 1), not {value}")
        self.detector.min_score = float(value)

    @property
    def smoothing(self) -> bool:
        """Whether video mode smooths landmarks over time (may change between frames)."""
        return self._smoothing

    @smoothing.setter
    def smoothing(self, value: bool) -> None:
        self._smoothing = bool(value)

    @property
    def idle_detect_hz(self) -> float:
        """Scans per second while nobody is tracked (video mode; 0: every frame). Settable
        between frames."""
        return self._idle_hz

    @idle_detect_hz.setter
    def idle_detect_hz(self, value: float) -> None:
        _check_idle_hz(value)
        self._idle_hz = float(value)

    def wants_frame(self, timestamp_ms: float) -> bool:
        """Whether ``process`` would look at a frame with this timestamp if it came next: False
        only for a frame that ``idle_detect_hz`` skips (then ``process`` returns an empty
        ``Poses`` with ``scanned`` False whatever the pixels are). A caller may use it to spare
        the work of making such a frame (converting, copying), but must still call ``process``
        with every frame, made or not, for the next answers to hold."""
        return not self._skips(float(timestamp_ms))

    def _skips(self, t: float) -> bool:
        """Whether a frame at ``t`` (ms) is not looked at: video mode, ``idle_detect_hz`` on,
        nobody tracked, less than one interval since the last scan, and more than one since the
        last frame someone was tracked on (a timestamp that goes back scans)."""
        if not self.tracking or self._idle_hz <= 0 or self.tracker.tracks:
            return False
        interval = 1000.0 / self._idle_hz - IDLE_TOLERANCE_MS
        seen, scan = self._last_seen_t, self._last_scan_t
        if seen is not None and seen <= t < seen + interval:
            return False  # just lost: scan every frame for one interval
        return scan is not None and scan <= t < scan + interval

    @property
    def timings(self) -> dict[str, float]:
        """Milliseconds per stage of the last ``process`` call (a copy)."""
        return dict(self._timings)

    @property
    def frames_processed(self) -> int:
        """Frames given to ``process`` since the estimator was made or ``reset_counters``."""
        return self.tracker.frames

    @property
    def frames_scanned(self) -> int:
        """How many of those frames were looked at (all of them unless ``idle_detect_hz`` skipped
        some)."""
        return self._scanned

    @property
    def detector_runs(self) -> int:
        """How many of those frames ran the detector."""
        return self.tracker.detector_runs

    @property
    def detector_share(self) -> float:
        """``detector_runs / frames_processed`` (0 before the first frame)."""
        return self.tracker.detector_share

    @property
    def fallback_share(self) -> float:
        """For the int8 variant: the share of its landmark estimates (one per person per frame)
        that it handed to the float model because its pose flag was inside
        ``landmarks.INT8_FALLBACK_BAND``; 0 for the other variants and before the first."""
        return getattr(self.estimator, "fallbacks", 0) / max(
            getattr(self.estimator, "invokes", 0), 1
        )

    def reset_counters(self) -> None:
        """Start ``frames_processed``, ``frames_scanned``, ``detector_runs`` and
        ``fallback_share`` again from 0 (after a warm-up)."""
        self.tracker.frames = self.tracker.detector_runs = self._scanned = 0
        if isinstance(self.estimator, FallbackLandmarkModel):
            self.estimator.invokes = self.estimator.fallbacks = 0

    def close(self) -> None:
        """Release the interpreters. ``process`` raises afterwards; closing twice is fine."""
        self._closed = True
        self.estimator = self.detector = None  # the interpreters go with their last reference

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def reset(self) -> None:
        """Forget the tracked people (start of a new video); ids start again from 0."""
        self.tracker.reset()
        self._last_t = self._last_scan_t = self._last_seen_t = None

    def process(self, frame_bgr: np.ndarray, timestamp_ms: float | None = None) -> Poses:
        """Poses in ``frame_bgr`` (H, W, 3 uint8 BGR). ``timestamp_ms`` drives smoothing in video
        mode, and the scans of ``idle_detect_hz``; without it the monotonic clock is used."""
        if self._closed:
            raise RuntimeError("PoseEstimator is closed")
        _check_shape(frame_bgr)
        t = time.monotonic() * 1000.0 if timestamp_ms is None else float(timestamp_ms)
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, not {t}")
        if self._skips(t):  # nobody tracked, no scan due: not looked at
            self._last_t = t
            self.tracker.skipped()
            self._timings = {}
            return Poses(scanned=False)
        frame = check_frame(frame_bgr)
        if self.tracking and self._last_t is not None and t < self._last_t:
            # a seek back, or another clip without reset(): the filters would pass raw values
            # until time caught up again, so start them afresh (the track itself may go on)
            log.warning(
                "timestamp went back from %.1f to %.1f ms: smoothing starts again (call reset() "
                "between videos)", self._last_t, t,
            )  # fmt: skip
            self.tracker.restart_smoothing()
        self._last_t = t
        sw = Stopwatch()
        idle = not self.tracker.tracks
        runs = self.tracker.detector_runs
        found = self._estimate(frame, sw)
        self._scanned += 1
        if self.tracking:
            if idle and self.tracker.detector_runs > runs:
                self._last_scan_t = t
            if found:
                self._last_seen_t = t
        poses = Poses()
        with sw("smoothing"):
            t_ns = round(t * 1000.0) * 1000  # MediaPipe stamps packets in microseconds
            for rank, (track, result) in enumerate(found):
                norm, world = result.norm, result.world
                if self.tracking:
                    norm, world = track.smoother(
                        norm, world, result.image_size, t_ns, self._smoothing
                    )
                    track.roi = roi_from_landmarks(norm, result.image_size)
                    track.seen = to_px(
                        result.norm[[CENTRE_LANDMARK, SCALE_LANDMARK]], result.image_size
                    )
                poses.append(
                    Pose(
                        score=result.score,
                        landmarks=to_pixels(norm[:NUM_BODY], result.image_size),
                        world_landmarks=world[:NUM_BODY].copy(),
                        roi=rect_to_roi(result.rect, *result.image_size),
                        segmentation_mask=result.mask,
                        id=track.id if self.tracking else rank,
                    )
                )
            self.tracker.keep([track for track, _ in found])
        self._timings = sw.ms
        return poses

    def _estimate(
        self, frame: np.ndarray, sw: Stopwatch
    ) -> list[tuple[Track | None, LandmarkResult]]:
        """This frame's people: (track, landmarks) for each tracked person still found, in id
        order, then for each newly detected one (a new track; None in static mode)."""
        found: list[tuple[Track | None, LandmarkResult]] = []
        ended = False
        for track in self.tracker.tracked():
            result = self.estimator.estimate(frame, track.roi, self.segmentation, sw)
            if result is None:
                ended = True  # the person left (or is hidden): the track ends
                self.tracker.end(track)
            else:
                found.append((track, result))
        if len(found) > 1:  # two tracks on one person: keep the older id
            dup = duplicates([to_px(r.norm[:NUM_BODY], r.image_size) for _, r in found])
            ended |= any(dup)
            found = [item for item, d in zip(found, dup, strict=True) if not d]
        n = self.num_poses
        due = detector_due(
            len(found), n, ended, self.tracker.since_detection, self.redetect_interval
        )
        if not self.tracking or due:
            # Detect on this same frame rather than skip it.
            detections = self.detector.detect(frame, sw)
            self.tracker.detected()
            if found:  # a detection on a tracked person is that person: not estimated again
                size = found[0][1].image_size
                tracked = [to_px(r.norm[[CENTRE_LANDMARK, SCALE_LANDMARK]], size) for _, r in found]
                detections = [
                    d for d in detections
                    if all(
                        alignment_distance(to_px(d.keypoints_norm[:2], size), ref) >= SAME_ALIGNMENT
                        for ref in tracked
                    )
                ]  # fmt: skip
            for detection in detections[: n - len(found)]:
                rect = roi_from_detection(detection)
                result = self.estimator.estimate(frame, rect, self.segmentation, sw)
                if result is None:
                    continue
                if found:  # its landmarks may still be someone's found already
                    people = [to_px(r.norm[:NUM_BODY], r.image_size) for _, r in found]
                    if duplicates([*people, to_px(result.norm[:NUM_BODY], result.image_size)])[-1]:
                        continue
                if self.tracking:
                    seen = to_px(result.norm[[CENTRE_LANDMARK, SCALE_LANDMARK]], result.image_size)
                    found.append((self.tracker.start(seen), result))
                else:
                    found.append((None, result))
        if self.tracking:  # a person found again has their (older) id back
            found.sort(key=lambda item: item[0].id)
        return found
