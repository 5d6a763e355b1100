"""Numeric kernels, jitted with Numba.

Every function here is pure: arrays in, arrays (or in-place writes into a given output array) out.
No model, no interpreter, no state. The rest of the package calls these from the stage modules
(``detector``, ``roi``, ``landmarks``); tests compare each one with a plain numpy/OpenCV version.

Compiled code is cached on disk (``cache=True``); set ``NUMBA_CACHE_DIR`` where the package
directory is read-only (the systemd unit does).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

BORDER_ZERO = 0
BORDER_REPLICATE = 1


@njit(cache=True, nogil=True)
def warp_affine_to_tensor(
    src: np.ndarray,
    inv_affine: np.ndarray,
    out: np.ndarray,
    scale: float,
    offset: float,
    swap_rb: bool,
    border: int,
) -> None:
    """Sample ``src`` (H, W, 3) uint8 into ``out`` (h, w, 3) float32 with bilinear interpolation.

    ``inv_affine`` (2, 3) maps an output pixel (x, y) to source coordinates (pixel centres on
    integers). The arithmetic is the classic fixed-point path of OpenCV's ``warpPerspective``
    (INTER_LINEAR) for 8-bit images, which MediaPipe's image-to-tensor step uses: each source
    coordinate is rounded to 1/32 pixel, the four weights are integers summing to 2**15, and each
    sample is rounded to 8 bits. Matching it bit for bit keeps the model inputs identical to
    MediaPipe's (the models are sensitive to sub-pixel crop differences). Each 8-bit sample v is
    written as ``v * scale + offset``: the normalised input goes straight into the interpreter's
    tensor, with no intermediate image. ``swap_rb`` turns BGR into RGB while sampling; ``border``
    is BORDER_ZERO (neighbours outside the image count as 0) or BORDER_REPLICATE (clamped).
    """
    sh = src.shape[0]
    sw = src.shape[1]
    oh = out.shape[0]
    ow = out.shape[1]
    a00 = inv_affine[0, 0] * 32.0
    a01 = inv_affine[0, 1] * 32.0
    a02 = inv_affine[0, 2] * 32.0
    a10 = inv_affine[1, 0] * 32.0
    a11 = inv_affine[1, 1] * 32.0
    a12 = inv_affine[1, 2] * 32.0
    r_src = 2 if swap_rb else 0  # source channel written to output channel 0
    b_src = 2 - r_src
    replicate = border == BORDER_REPLICATE
    for y in range(oh):
        row = out[y]
        for x in range(ow):
            xq = int(np.rint(a00 * x + a01 * y + a02))  # 1/32-pixel source coordinates
            yq = int(np.rint(a10 * x + a11 * y + a12))
            x0 = xq >> 5
            y0 = yq >> 5
            fx = xq & 31
            fy = yq & 31
            w00 = (32 - fx) * (32 - fy) * 32
            w01 = fx * (32 - fy) * 32
            w10 = (32 - fx) * fy * 32
            w11 = fx * fy * 32
            if 0 <= x0 < sw - 1 and 0 <= y0 < sh - 1:  # all four neighbours inside: fast path
                x1 = x0 + 1
                y1 = y0 + 1
                v0 = (w00 * np.int32(src[y0, x0, r_src]) + w01 * np.int32(src[y0, x1, r_src])
                      + w10 * np.int32(src[y1, x0, r_src]) + w11 * np.int32(src[y1, x1, r_src]))  # fmt: skip
                v1 = (w00 * np.int32(src[y0, x0, 1]) + w01 * np.int32(src[y0, x1, 1])
                      + w10 * np.int32(src[y1, x0, 1]) + w11 * np.int32(src[y1, x1, 1]))  # fmt: skip
                v2 = (w00 * np.int32(src[y0, x0, b_src]) + w01 * np.int32(src[y0, x1, b_src])
                      + w10 * np.int32(src[y1, x0, b_src]) + w11 * np.int32(src[y1, x1, b_src]))  # fmt: skip
                row[x, 0] = ((v0 + 16384) >> 15) * scale + offset
                row[x, 1] = ((v1 + 16384) >> 15) * scale + offset
                row[x, 2] = ((v2 + 16384) >> 15) * scale + offset
                continue
            if replicate:
                xa = min(max(x0, 0), sw - 1)
                xb = min(max(x0 + 1, 0), sw - 1)
                ya = min(max(y0, 0), sh - 1)
                yb = min(max(y0 + 1, 0), sh - 1)
                for c, sc in ((0, r_src), (1, 1), (2, b_src)):
                    acc = (
                        w00 * np.int32(src[ya, xa, sc])
                        + w01 * np.int32(src[ya, xb, sc])
                        + w10 * np.int32(src[yb, xa, sc])
                        + w11 * np.int32(src[yb, xb, sc])
                    )
                    row[x, c] = ((acc + 16384) >> 15) * scale + offset
            else:
                in_x0 = 0 <= x0 < sw
                in_x1 = 0 <= x0 + 1 < sw
                in_y0 = 0 <= y0 < sh
                in_y1 = 0 <= y0 + 1 < sh
                for c, sc in ((0, r_src), (1, 1), (2, b_src)):
                    acc = np.int32(0)
                    if in_y0:
                        if in_x0:
                            acc += w00 * np.int32(src[y0, x0, sc])
                        if in_x1:
                            acc += w01 * np.int32(src[y0, x0 + 1, sc])
                    if in_y1:
                        if in_x0:
                            acc += w10 * np.int32(src[y0 + 1, x0, sc])
                        if in_x1:
                            acc += w11 * np.int32(src[y0 + 1, x0 + 1, sc])
                    row[x, c] = ((acc + 16384) >> 15) * scale + offset


@njit(cache=True, nogil=True)
def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: float,
    score_clip: float,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode SSD outputs into normalised boxes and keypoints, keeping scores >= ``min_score``.

    ``raw_boxes`` (N, 4 + 2K) holds (x_centre, y_centre, w, h, kx0, ky0, ...) offsets in input
    pixels relative to each anchor; ``anchors`` (N, 4) holds (x_centre, y_centre, w, h) in 0..1.
    Scores are clipped to +-``score_clip`` then passed through a sigmoid.

    Returns ``boxes`` (M, 4 + 2K) as (xmin, ymin, xmax, ymax, kx0, ky0, ...) in the input's
    normalised coordinates, and ``scores`` (M,).
    """
    n = raw_boxes.shape[0]
    ncoords = raw_boxes.shape[1]
    nkp = (ncoords - 4) // 2
    keep = np.empty(n, dtype=np.int64)
    scores_all = np.empty(n, dtype=np.float32)
    m = 0
    for i in range(n):
        s = raw_scores[i]
        if s < -score_clip:
            s = -score_clip
        elif s > score_clip:
            s = score_clip
        s = 1.0 / (1.0 + math.exp(-s))
        if s >= min_score:
            keep[m] = i
            scores_all[m] = s
            m += 1
    boxes = np.empty((m, ncoords), dtype=np.float32)
    scores = np.empty(m, dtype=np.float32)
    for j in range(m):
        i = keep[j]
        ax = anchors[i, 0]
        ay = anchors[i, 1]
        aw = anchors[i, 2]
        ah = anchors[i, 3]
        xc = raw_boxes[i, 0] / input_size * aw + ax
        yc = raw_boxes[i, 1] / input_size * ah + ay
        w = raw_boxes[i, 2] / input_size * aw
        h = raw_boxes[i, 3] / input_size * ah
        boxes[j, 0] = xc - w / 2.0
        boxes[j, 1] = yc - h / 2.0
        boxes[j, 2] = xc + w / 2.0
        boxes[j, 3] = yc + h / 2.0
        for k in range(nkp):
            boxes[j, 4 + 2 * k] = raw_boxes[i, 4 + 2 * k] / input_size * aw + ax
            boxes[j, 5 + 2 * k] = raw_boxes[i, 5 + 2 * k] / input_size * ah + ay
        scores[j] = scores_all[j]
    return boxes, scores


@njit(cache=True, nogil=True)
def refine_from_heatmap(
    landmarks: np.ndarray, heatmap: np.ndarray, kernel_size: int, min_confidence: float
) -> None:
    """Refine landmark x, y (normalised to the ROI, in place) from the model's heatmap.

    For each landmark, take the ``kernel_size`` window of the (Hh, Wh, L) heatmap around it, pass
    the raw values through a sigmoid, and move the landmark to the confidence-weighted mean
    position when the window's peak reaches ``min_confidence``.
    """
    hh = heatmap.shape[0]
    hw = heatmap.shape[1]
    half = (kernel_size - 1) // 2
    for i in range(landmarks.shape[0]):
        col = int(landmarks[i, 0] * hw)
        row = int(landmarks[i, 1] * hh)
        if col < 0 or col >= hw or row < 0 or row >= hh:
            continue
        c0 = max(0, col - half)
        c1 = min(hw, col + half + 1)
        r0 = max(0, row - half)
        r1 = min(hh, row + half + 1)
        total = 0.0
        wc = 0.0
        wr = 0.0
        peak = 0.0
        for r in range(r0, r1):
            for c in range(c0, c1):
                conf = 1.0 / (1.0 + math.exp(-heatmap[r, c, i]))
                total += conf
                wc += c * conf
                wr += r * conf
                if conf > peak:
                    peak = conf
        if peak >= min_confidence and total > 0.0:
            landmarks[i, 0] = wc / hw / total
            landmarks[i, 1] = wr / hh / total
