"""Landmark estimator: BlazePose lite, full or heavy (``pose_landmark_<model>.tflite``) on a
rotated 256x256 ROI. The three models have the same input and outputs (checked at load by shape)
and MediaPipe decodes them alike.

frame + ROI -> crop into the model input (RGB, [0, 1], the Numba kernel) -> model -> 39 landmarks
(x, y, z, visibility, presence), refined from the heatmap and projected back through the ROI to
fractions of the image (``LandmarkResult.landmarks`` gives pixels); world landmarks (metres, hip
origin) turned by the ROI's rotation; the pose flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import kernels
from .roi import (
    F,
    Rect,
    pad_roi,
    rect_to_roi,
    roi_matrices,
)
from .runtime import Model
from .stopwatch import Stopwatch

INPUT_SIZE = 256
NUM_LANDMARKS = 39  # 33 body landmarks + 6 auxiliary (33, 34: alignment centre and scale point)
NUM_BODY = 33
POSE_THRESHOLD = 0.5  # MediaPipe's threshold on the pose-presence flag
HEATMAP_KERNEL = 9
HEATMAP_MIN_CONFIDENCE = 0.5
# The int8 estimator decides alone only where it is sure: where its pose flag falls inside this
# band around MediaPipe's threshold (or is not finite), the same crop is run again by the float
# model and float's output is used (``FallbackLandmarkModel``), so that int8 never decides
# person/no person differently from float. Quantization moves the flag by up to 0.25 on small,
# far or half-hidden figures (0.14 on every held-out frame but one, a photo whose flag float
# itself holds at 0.63), so outside 0.5 +- 0.25 both decide alike. A wider band costs speed on
# hard video: 0.1-0.9 handed 9-30 % of the estimates to float on crowded or half-hidden clips
# (docs/models.md). The int8 model's gate is judged with this band (its record says which).
INT8_FALLBACK_BAND = (0.25, 0.75)


@dataclass
class LandmarkResult:
    """Estimator output for one ROI."""

    score: float  # pose-presence flag, 0..1
    norm: np.ndarray  # (39, 5) x, y, z as fractions of the image (z on x's scale), vis., pres.
    world: np.ndarray  # (39, 3) metres
    rect: Rect
    image_size: tuple[int, int]  # (width, height)
    mask: np.ndarray | None = None  # (H, W) float32 0..1 when segmentation is on

    @property
    def landmarks(self) -> np.ndarray:
        """(39, 5) with x, y, z in image pixels."""
        return to_pixels(self.norm, self.image_size)


def to_pixels(norm: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    w, h = image_size
    out = norm.astype(np.float32, copy=True)
    out[:, 0] *= F(w)
    out[:, 1] *= F(h)
    out[:, 2] *= F(w)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow


def rotation_cos_sin(rect: Rect) -> tuple[float, float]:
    """The float32 cosine and sine of the ROI's rotation, as MediaPipe computes them."""
    angle = float(F(rect.rotation))
    return float(F(math.cos(angle))), float(F(math.sin(angle)))


_NO_HEATMAP = np.zeros((0, 0, 0), np.float32)


def decode_landmarks(
    raw: np.ndarray,
    rect: Rect,
    padding: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0),
    heatmap: np.ndarray | None = None,
    input_size: int = INPUT_SIZE,
) -> np.ndarray:
    """(195,) model output -> (39, 5): x, y, z as fractions of the image, then visibility and
    presence through a sigmoid. As MediaPipe: scale to the tensor, refine from the heatmap, remove
    the letterbox, project through the rect (float32 throughout; ``kernels.decode_landmarks``,
    the same arithmetic as ``roi.remove_letterbox`` and ``roi.project_to_image``)."""
    refine = heatmap is not None
    out = kernels.decode_landmarks(
        np.ascontiguousarray(raw, dtype=np.float32),
        np.ascontiguousarray(heatmap) if refine else _NO_HEATMAP,
        refine, HEATMAP_KERNEL, HEATMAP_MIN_CONFIDENCE, float(input_size),
        (float(padding[0]), float(padding[1]), float(padding[2]), float(padding[3])),
        (float(rect.x_center), float(rect.y_center), float(rect.width), float(rect.height)),
        rotation_cos_sin(rect),
    )  # fmt: skip
    out[:, 3:] = sigmoid(out[:, 3:])
    return out


def decode_world(raw: np.ndarray, rect: Rect) -> np.ndarray:
    """(117,) world landmarks turned by the ROI's rotation about the z axis (metres)."""
    return kernels.rotate_world(np.ascontiguousarray(raw, dtype=np.float32), rotation_cos_sin(rect))


def decode_pose(
    raw: np.ndarray,
    world_raw: np.ndarray,
    rect: Rect,
    padding: tuple[float, ...],
    heatmap: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``decode_landmarks`` and ``decode_world`` at once (``kernels.decode_pose``: the same
    arithmetic, one call), or None if any value is unusable (not finite)."""
    refine = heatmap is not None
    norm, world, ok = kernels.decode_pose(
        raw, heatmap if refine else _NO_HEATMAP, refine, HEATMAP_KERNEL, HEATMAP_MIN_CONFIDENCE,
        float(INPUT_SIZE),
        (float(padding[0]), float(padding[1]), float(padding[2]), float(padding[3])),
        (float(rect.x_center), float(rect.y_center), float(rect.width), float(rect.height)),
        rotation_cos_sin(rect), world_raw,
    )  # fmt: skip
    if not ok:
        return None
    norm[:, 3:] = sigmoid(norm[:, 3:])
    return norm, world


class LandmarkModel:
    OUTPUTS = {
        "landmarks": (1, NUM_LANDMARKS * 5),
        "flag": (1, 1),
        "segmentation": (1, INPUT_SIZE, INPUT_SIZE, 1),
        "heatmap": (1, 64, 64, NUM_LANDMARKS),
        "world": (1, NUM_LANDMARKS * 3),
    }

    def __init__(
        self,
        model_path: Path,
        num_threads: int | None = None,
        backend: str | None = None,
        warp: str = "numba",
        refine: bool = True,
        segmentation: bool = False,
    ):
        if warp not in ("numba", "opencv"):
            raise ValueError(f"warp must be 'numba' or 'opencv', not {warp!r}")
        # without segmentation, the mask head is cut out of the graph (same landmarks, less work)
        prune = None if segmentation else ("landmarks", "flag", "heatmap", "world")
        self.model = Model(
            model_path, self.OUTPUTS, num_threads=num_threads, backend=backend, prune_to=prune
        )
        self.warp = warp
        self.refine = refine

    def preprocess(self, frame_bgr: np.ndarray, rect: Rect) -> tuple[float, ...]:
        """Crop ``rect`` into the model input; return the letterbox padding."""
        height, width = frame_bgr.shape[:2]
        roi, padding = pad_roi(rect_to_roi(rect, width, height), INPUT_SIZE, INPUT_SIZE)
        forward, inverse = roi_matrices(roi, INPUT_SIZE, INPUT_SIZE)
        view = self.model.input_view()
        if self.warp == "numba":
            kernels.warp_to_tensor(
                frame_bgr, inverse, view, 1.0 / 255.0, 0.0, True, kernels.BORDER_REPLICATE
            )
        else:
            crop = cv2.warpPerspective(
                frame_bgr, forward, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
            cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=crop)
            np.multiply(crop, np.float32(1.0 / 255.0), out=view, casting="unsafe")
        return padding

    def infer(self) -> None:
        self.model.invoke()

    def postprocess(
        self,
        rect: Rect,
        padding: tuple[float, ...],
        frame_shape: tuple[int, ...],
        segmentation: bool = False,
    ) -> LandmarkResult | None:
        score = float(self.model.output("flag")[0])
        if not math.isfinite(score) or score <= POSE_THRESHOLD:
            return None
        heatmap = self.model.output_view("heatmap") if self.refine else None
        decoded = decode_pose(
            self.model.output("landmarks"), self.model.output("world"), rect, padding, heatmap
        )
        del heatmap  # the interpreter's own buffer: no reference may outlive this frame
        if decoded is None:
            return None
        norm, world = decoded
        height, width = frame_shape[:2]
        mask = None
        if segmentation and "segmentation" in self.model.outputs:
            mask = self.mask_to_image(self.model.output("segmentation")[..., 0], rect, frame_shape)
        return LandmarkResult(score, norm, world, rect, (width, height), mask)

    @staticmethod
    def mask_to_image(raw_mask: np.ndarray, rect: Rect, frame_shape: tuple[int, ...]) -> np.ndarray:
        """The segmentation mask (sigmoid) warped back onto the frame; 0 outside the ROI."""
        height, width = frame_shape[:2]
        roi, _ = pad_roi(rect_to_roi(rect, width, height), INPUT_SIZE, INPUT_SIZE)
        forward, _ = roi_matrices(roi, INPUT_SIZE, INPUT_SIZE)
        probs = sigmoid(raw_mask.astype(np.float32))
        return cv2.warpPerspective(
            probs, forward, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )  # fmt: skip

    def estimate(
        self,
        frame_bgr: np.ndarray,
        rect: Rect,
        segmentation: bool = False,
        sw: Stopwatch | None = None,
    ) -> LandmarkResult | None:
        """Landmarks in ``rect``, or None if the model sees no pose. ``sw`` times the steps."""
        sw = sw or Stopwatch()
        with sw("estimator_pre"):
            padding = self.preprocess(frame_bgr, rect)
        with sw("estimator_invoke"):
            self.infer()
        with sw("estimator_post"):
            return self.postprocess(rect, padding, frame_bgr.shape, segmentation)


class FallbackLandmarkModel:
    """A quantized estimator that hands the frames it is unsure of to the float one.

    Runs ``primary`` (the int8 model); when its pose flag is inside ``band`` (or not finite) the
    same crop is copied into ``fallback`` (the float model it was derived from) and run there,
    and that frame's result is float's. ``invokes`` and ``fallbacks`` count the frames and those
    handed over. Same interface as ``LandmarkModel``; ``model`` is the primary's interpreter (its
    path, backend and threads are what the pipeline reports)."""

    def __init__(
        self,
        primary: LandmarkModel,
        fallback: LandmarkModel,
        band: tuple[float, float] = INT8_FALLBACK_BAND,
    ):
        if primary.model.input.shape != fallback.model.input.shape:
            raise ValueError(
                f"the fallback model's input {fallback.model.input.shape} differs from the "
                f"primary's {primary.model.input.shape}"
            )
        self.primary, self.fallback, self.band = primary, fallback, band
        self.model = primary.model
        self.refine = primary.refine
        self._active = primary
        self.invokes = 0
        self.fallbacks = 0

    def preprocess(self, frame_bgr: np.ndarray, rect: Rect) -> tuple[float, ...]:
        return self.primary.preprocess(frame_bgr, rect)

    def infer(self) -> None:
        self.primary.infer()
        self.invokes += 1
        flag = float(self.primary.model.output("flag")[0])
        low, high = self.band
        if math.isfinite(flag) and not low < flag < high:
            self._active = self.primary
            return
        self.fallback.model.input_view()[:] = self.primary.model.input_view()
        self.fallback.infer()
        self.fallbacks += 1
        self._active = self.fallback

    def postprocess(
        self,
        rect: Rect,
        padding: tuple[float, ...],
        frame_shape: tuple[int, ...],
        segmentation: bool = False,
    ) -> LandmarkResult | None:
        return self._active.postprocess(rect, padding, frame_shape, segmentation)

    estimate = LandmarkModel.estimate  # the same steps: preprocess, infer, postprocess
