"""Landmark estimator: BlazePose full (``pose_landmark_full.tflite``) on a rotated 256x256 ROI.

frame + ROI -> affine warp into the model input (RGB, [0, 1], Numba) -> model -> 39 landmarks
(x, y, z, visibility, presence), refined from the heatmap and projected back to image pixels through
the ROI; world landmarks (metres, hip origin) turned by the ROI's rotation; the pose flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import kernels
from .roi import Roi, image_to_roi_affine, project_points, roi_to_image_affine
from .runtime import Model

INPUT_SIZE = 256
NUM_LANDMARKS = 39  # 33 body landmarks + 6 auxiliary (33, 34: alignment centre and scale point)
NUM_BODY = 33
POSE_THRESHOLD = 0.5  # MediaPipe's threshold on the pose-presence flag
HEATMAP_KERNEL = 9
HEATMAP_MIN_CONFIDENCE = 0.5


@dataclass
class LandmarkResult:
    """Raw estimator output for one ROI, already in image pixels."""

    score: float  # pose-presence flag, 0..1
    landmarks: np.ndarray  # (39, 5) x, y (px), z (px, x's scale), visibility, presence
    world: np.ndarray  # (39, 3) metres
    roi: Roi
    mask: np.ndarray | None = None  # (H, W) float32 0..1 when segmentation is on


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow


def decode_landmarks(
    raw: np.ndarray, roi: Roi, heatmap: np.ndarray | None = None, input_size: int = INPUT_SIZE
) -> np.ndarray:
    """(39, 5) model output -> (39, 5) image pixels, z on x's scale, sigmoid visibility/presence."""
    lm = raw.reshape(NUM_LANDMARKS, 5).astype(np.float32)
    norm = lm[:, :2] / input_size
    if heatmap is not None:
        norm = np.ascontiguousarray(norm)
        kernels.refine_from_heatmap(norm, heatmap, HEATMAP_KERNEL, HEATMAP_MIN_CONFIDENCE)
    out = np.empty_like(lm)
    out[:, :2] = project_points(roi, norm)
    out[:, 2] = lm[:, 2] / input_size * roi.width
    out[:, 3:] = sigmoid(lm[:, 3:])
    return out


def decode_world(raw: np.ndarray, roi: Roi) -> np.ndarray:
    """(39, 3) world landmarks turned by the ROI's rotation about the z axis (metres)."""
    world = raw.reshape(NUM_LANDMARKS, 3).astype(np.float32)
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    out = world.copy()
    out[:, 0] = c * world[:, 0] - s * world[:, 1]
    out[:, 1] = s * world[:, 0] + c * world[:, 1]
    return out


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
    ):
        if warp not in ("numba", "opencv"):
            raise ValueError(f"warp must be 'numba' or 'opencv', not {warp!r}")
        self.model = Model(model_path, self.OUTPUTS, num_threads=num_threads, backend=backend)
        self.warp = warp
        self.refine = refine

    def preprocess(self, frame_bgr: np.ndarray, roi: Roi) -> None:
        view = self.model.input_view()
        if self.warp == "numba":
            inv = roi_to_image_affine(roi, INPUT_SIZE, INPUT_SIZE)
            kernels.warp_affine_to_tensor(
                frame_bgr, inv, view, 1.0 / 255.0, 0.0, True, kernels.BORDER_REPLICATE
            )
        else:
            fwd = image_to_roi_affine(roi, INPUT_SIZE, INPUT_SIZE)
            crop = cv2.warpAffine(
                frame_bgr, fwd, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
            cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=crop)
            np.multiply(crop, np.float32(1.0 / 255.0), out=view, casting="unsafe")

    def infer(self) -> None:
        self.model.invoke()

    def postprocess(
        self, roi: Roi, frame_shape: tuple[int, ...], segmentation: bool = False
    ) -> LandmarkResult | None:
        score = float(self.model.output("flag")[0])
        if not math.isfinite(score) or score < POSE_THRESHOLD:
            return None
        raw = self.model.output("landmarks")
        heatmap = self.model.output("heatmap") if self.refine else None
        landmarks = decode_landmarks(raw, roi, heatmap)
        world = decode_world(self.model.output("world"), roi)
        if not (np.isfinite(landmarks).all() and np.isfinite(world).all()):
            return None
        mask = None
        if segmentation:
            mask = self.mask_to_image(self.model.output("segmentation")[..., 0], roi, frame_shape)
        return LandmarkResult(score, landmarks, world, roi, mask)

    @staticmethod
    def mask_to_image(raw_mask: np.ndarray, roi: Roi, frame_shape: tuple[int, ...]) -> np.ndarray:
        height, width = frame_shape[:2]
        fwd = image_to_roi_affine(roi, INPUT_SIZE, INPUT_SIZE)
        probs = sigmoid(raw_mask.astype(np.float32))
        return cv2.warpAffine(
            probs, fwd, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )  # fmt: skip

    def estimate(
        self, frame_bgr: np.ndarray, roi: Roi, segmentation: bool = False
    ) -> LandmarkResult | None:
        self.preprocess(frame_bgr, roi)
        self.infer()
        return self.postprocess(roi, frame_bgr.shape, segmentation)
