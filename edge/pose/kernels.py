"""Numeric kernels, jitted with Numba.

Every function here is pure: arrays in, arrays (or in-place writes into a given output array) out.
No model, no interpreter, no state. The rest of the package calls these from the stage modules
(``detector``, ``roi``, ``landmarks``); tests compare each one with a plain numpy/OpenCV version.

Compiled code is cached on disk (``cache=True``); set ``NUMBA_CACHE_DIR`` where the package
directory is read-only (the systemd unit does).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config as numba_config
from numba.extending import intrinsic


def _ensure_cache_dir() -> None:
    """Numba refuses ``cache=True`` when it can write neither beside this file nor in the user's
    cache (a service user with a read-only home, say). Fall back to a private temp folder."""
    if numba_config.CACHE_DIR:
        return
    here = Path(__file__).resolve().parent
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for candidate in (here, home_cache):
        probe = candidate if candidate.exists() else candidate.parent
        if os.access(probe, os.W_OK):
            return
    numba_config.CACHE_DIR = tempfile.mkdtemp(prefix="blazepose-edge-numba-")


_ensure_cache_dir()

BORDER_ZERO = 0
BORDER_REPLICATE = 1
PREFETCH_ROWS = 4  # the crop asks for the source lines this many output rows ahead (2 -> 4:
# 0.37 -> 0.23 ms on cold 720p frames, znver5; 3: 0.26, 5-8: 0.23)


@intrinsic
def _prefetch(typingctx, array, offset):
    """Ask the CPU to bring the cache line holding byte ``offset`` of ``array``'s data into the
    cache (LLVM's ``llvm.prefetch``: a read, kept at every level). A hint only: it changes no
    result and cannot fault."""
    if not isinstance(array, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        address = builder.gep(builder.bitcast(data, i8p), [args[1]])
        builder.call(fn, [address, i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


@intrinsic
def _load_word(typingctx, array, offset):
    """The four bytes from byte ``offset`` of ``array``'s data as one uint32 (an unaligned load;
    the first byte is the low byte on little-endian machines). The caller keeps all four bytes
    inside the buffer."""
    if not isinstance(array, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        address = builder.gep(builder.bitcast(data, i8p), [args[1]], inbounds=True)
        return builder.load(builder.bitcast(address, ir.IntType(32).as_pointer()), align=1)

    return types.uint32(array, types.intp), codegen


_LITTLE_ENDIAN = sys.byteorder == "little"


@njit(cache=True, nogil=True)
def _pixel_word(src: np.ndarray, y: int, x: int) -> np.uint32:
    """Pixel (y, x)'s three bytes as one word, byte 0 lowest (the slow path of the crop)."""
    p = src[y, x]
    return np.uint32(p[0]) | (np.uint32(p[1]) << 8) | (np.uint32(p[2]) << 16)


@njit(cache=True, nogil=True)
def warp_to_tensor(
    src: np.ndarray,
    inverse: np.ndarray,
    out: np.ndarray,
    scale: float,
    offset: float,
    swap_rb: bool,
    border: int,
    prefetch_rows: int = PREFETCH_ROWS,
) -> None:
    """Sample ``src`` (H, W, 3) uint8 into ``out`` (h, w, 3) float32 with bilinear interpolation.

    ``inverse`` (3, 3) maps an output pixel (x, y, 1) to source coordinates (pixel centres on
    integers). The arithmetic is OpenCV's classic ``warpPerspective`` (INTER_LINEAR) for 8-bit
    images, which MediaPipe's image-to-tensor step runs, bit for bit: coordinates evaluated per
    16x64 block in double and rounded to 1/32 pixel, four integer weights summing to 2**15, each
    sample rounded to 8 bits. (OpenCV >= 4.11 replaced these kernels; its results differ by a grey
    level here and there, and the landmark model notices.) Each 8-bit sample v is written as
    ``v * scale + offset`` (in double, rounded to float32): the normalised input goes straight
    into the interpreter's tensor, with no intermediate image. ``swap_rb`` turns BGR into RGB
    while sampling; ``border`` is BORDER_ZERO (neighbours outside the image count as 0) or
    BORDER_REPLICATE (clamped to the edge).

    Each block row runs in passes that LLVM can vectorise, around one that cannot: the source
    coordinates; the four neighbours' byte offsets, clamped to the image; the gather, each
    neighbour's three bytes read as one 32-bit word (the only scalar pass: x86 and ARM have no
    fast byte gather); the weights and the interpolation of the three channels, branch-free;
    then the results are stored into ``out``.

    A rotated, scaled crop reads the source along slanted lines that the hardware prefetcher does
    not follow, and a freshly decoded frame is not in the cache: without help the kernel stalls
    on memory. So while it computes one output row it prefetches the source lines that
    the same columns need ``prefetch_rows`` rows further down (0: no prefetching; the results are
    the same either way).
    """
    sh = src.shape[0]
    sw = src.shape[1]
    oh = out.shape[0]
    ow = out.shape[1]
    m0, m1, m2 = inverse[0, 0], inverse[0, 1], inverse[0, 2]
    m3, m4, m5 = inverse[1, 0], inverse[1, 1], inverse[1, 2]
    m6, m7, m8 = inverse[2, 0], inverse[2, 1], inverse[2, 2]
    # OpenCV's blocking (BLOCK_SZ = 32): the coordinate sums start again at each block's corner.
    bh = min(16, oh)
    bw = min(1024 // bh, ow)
    bh = min(1024 // bw, oh)
    r_shift = np.uint32(16 if swap_rb else 0)  # the bits of the word that become channel 0
    b_shift = np.uint32(16) - r_shift
    replicate = border == BORDER_REPLICATE
    xqs = np.empty(bw, dtype=np.int32)  # int32: the conversion vectorises (AVX2, NEON)
    yqs = np.empty(bw, dtype=np.int32)
    o00 = np.empty(bw, dtype=np.intp)  # byte offsets of the four neighbours
    o01 = np.empty(bw, dtype=np.intp)
    o10 = np.empty(bw, dtype=np.intp)
    o11 = np.empty(bw, dtype=np.intp)
    q00 = np.empty(bw, dtype=np.uint32)  # their bytes, one word each
    q01 = np.empty(bw, dtype=np.uint32)
    q10 = np.empty(bw, dtype=np.uint32)
    q11 = np.empty(bw, dtype=np.uint32)
    r0 = np.empty(bw, dtype=np.float32)  # the three output channels
    r1 = np.empty(bw, dtype=np.float32)
    r2 = np.empty(bw, dtype=np.float32)
    row_bytes = src.strides[0]
    px_bytes = src.strides[1]
    # one past the last byte; a word read from the last pixel would end one byte beyond it
    end = (sh - 1) * row_bytes + (sw - 1) * px_bytes + 3
    words = (
        _LITTLE_ENDIAN and px_bytes == 3 and src.strides[2] == 1 and row_bytes >= 3 * sw
        and end >= 4
    )  # fmt: skip
    # prefetch every `every` output columns: <= 21 source pixels (63 bytes) apart, every line
    every = max(1, min(16, int(21.0 / max(math.hypot(m0, m3), 1e-6))))
    ahead_xq = int(m1 * prefetch_rows * 32.0)  # the source step of `prefetch_rows` rows down
    ahead_yq = int(m4 * prefetch_rows * 32.0)
    for y in range(oh):
        orow = out[y]
        for xb in range(0, ow, bw):
            x_row = m0 * xb + m1 * y + m2
            y_row = m3 * xb + m4 * y + m5
            w_row = m6 * xb + m7 * y + m8
            n = min(bw, ow - xb)
            # 1/32-pixel source coordinates of the block's pixels, in a branch-free loop that
            # LLVM vectorises (the per-pixel division dominates otherwise)
            for x1 in range(n):
                w = w_row + m6 * x1
                w = 32.0 / w if w != 0.0 else 0.0
                fx = max(-2147483648.0, min(2147483647.0, (x_row + m0 * x1) * w))
                fy = max(-2147483648.0, min(2147483647.0, (y_row + m3 * x1) * w))
                xqs[x1] = np.int32(np.rint(fx))
                yqs[x1] = np.int32(np.rint(fy))
            if prefetch_rows > 0:
                for x1 in range(0, n, every):
                    xa = min(max((xqs[x1] + ahead_xq) >> 5, 0), sw - 1)
                    ya = min(max((yqs[x1] + ahead_yq) >> 5, 0), sh - 1)
                    yc = min(ya + 1, sh - 1)
                    _prefetch(src, ya * row_bytes + xa * px_bytes)
                    _prefetch(src, yc * row_bytes + xa * px_bytes)
            if words:
                # the neighbours clamped to the image (replicate; a zero border zeroes their
                # weights below), as byte offsets
                for x1 in range(n):
                    x0 = xqs[x1] >> 5
                    y0 = yqs[x1] >> 5
                    pa = min(max(x0, 0), sw - 1) * px_bytes
                    pc = min(max(x0 + 1, 0), sw - 1) * px_bytes
                    oa = min(max(y0, 0), sh - 1) * row_bytes
                    oc = min(max(y0 + 1, 0), sh - 1) * row_bytes
                    o00[x1] = oa + pa
                    o01[x1] = oa + pc
                    o10[x1] = oc + pa
                    o11[x1] = oc + pc
                for x1 in range(n):
                    if o11[x1] + 4 <= end:  # o11 is the largest of the four
                        q00[x1] = _load_word(src, o00[x1])
                        q01[x1] = _load_word(src, o01[x1])
                        q10[x1] = _load_word(src, o10[x1])
                        q11[x1] = _load_word(src, o11[x1])
                    else:  # the image's last pixel: its word starts a byte early
                        for q, o in ((q00, o00[x1]), (q01, o01[x1]), (q10, o10[x1]),
                                     (q11, o11[x1])):  # fmt: skip
                            q[x1] = (
                                _load_word(src, o)
                                if o + 4 <= end
                                else (_load_word(src, o - 1) >> np.uint32(8))
                            )
            else:  # any other layout: index the pixels
                for x1 in range(n):
                    x0 = xqs[x1] >> 5
                    y0 = yqs[x1] >> 5
                    xa = min(max(x0, 0), sw - 1)
                    xc = min(max(x0 + 1, 0), sw - 1)
                    ya = min(max(y0, 0), sh - 1)
                    yc = min(max(y0 + 1, 0), sh - 1)
                    q00[x1] = _pixel_word(src, ya, xa)
                    q01[x1] = _pixel_word(src, ya, xc)
                    q10[x1] = _pixel_word(src, yc, xa)
                    q11[x1] = _pixel_word(src, yc, xc)
            # weights and interpolation, branch-free: LLVM vectorises this loop
            for x1 in range(n):
                xq = xqs[x1]
                yq = yqs[x1]
                ax = xq & 31
                ay = yq & 31
                w00 = (32 - ax) * (32 - ay) * 32
                w01 = ax * (32 - ay) * 32
                w10 = (32 - ax) * ay * 32
                w11 = ax * ay * 32
                if not replicate:  # zero border: neighbours outside the image weigh 0
                    x0 = xq >> 5
                    y0 = yq >> 5
                    in_x0 = (x0 >= 0) & (x0 < sw)
                    in_x1 = (x0 + 1 >= 0) & (x0 + 1 < sw)
                    in_y0 = (y0 >= 0) & (y0 < sh)
                    in_y1 = (y0 + 1 >= 0) & (y0 + 1 < sh)
                    w00 = w00 if in_x0 & in_y0 else 0
                    w01 = w01 if in_x1 & in_y0 else 0
                    w10 = w10 if in_x0 & in_y1 else 0
                    w11 = w11 if in_x1 & in_y1 else 0
                a = q00[x1]
                b = q01[x1]
                c = q10[x1]
                d = q11[x1]
                v0 = (w00 * np.int32((a >> r_shift) & 255) + w01 * np.int32((b >> r_shift) & 255)
                      + w10 * np.int32((c >> r_shift) & 255) + w11 * np.int32((d >> r_shift) & 255))  # fmt: skip
                v1 = (w00 * np.int32((a >> 8) & 255) + w01 * np.int32((b >> 8) & 255)
                      + w10 * np.int32((c >> 8) & 255) + w11 * np.int32((d >> 8) & 255))  # fmt: skip
                v2 = (w00 * np.int32((a >> b_shift) & 255) + w01 * np.int32((b >> b_shift) & 255)
                      + w10 * np.int32((c >> b_shift) & 255) + w11 * np.int32((d >> b_shift) & 255))  # fmt: skip
                r0[x1] = ((v0 + 16384) >> 15) * scale + offset
                r1[x1] = ((v1 + 16384) >> 15) * scale + offset
                r2[x1] = ((v2 + 16384) >> 15) * scale + offset
            for x1 in range(n):  # scalar stores: interleaving them costs more than it saves
                px = orow[xb + x1]
                px[0] = r0[x1]
                px[1] = r1[x1]
                px[2] = r2[x1]


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
            s = np.float32(-score_clip)
        elif s > score_clip:
            s = np.float32(score_clip)
        s = np.float32(1.0) / (np.float32(1.0) + np.exp(-s))
        if s >= min_score:
            keep[m] = i
            scores_all[m] = s
            m += 1
    boxes = np.empty((m, ncoords), dtype=np.float32)
    scores = np.empty(m, dtype=np.float32)
    size = np.float32(input_size)
    half = np.float32(2.0)
    for j in range(m):
        i = keep[j]
        ax = anchors[i, 0]
        ay = anchors[i, 1]
        aw = anchors[i, 2]
        ah = anchors[i, 3]
        # float32 throughout, in TensorsToDetections' operation order
        xc = raw_boxes[i, 0] / size * aw + ax
        yc = raw_boxes[i, 1] / size * ah + ay
        w = raw_boxes[i, 2] / size * aw
        h = raw_boxes[i, 3] / size * ah
        boxes[j, 0] = xc - w / half
        boxes[j, 1] = yc - h / half
        boxes[j, 2] = xc + w / half
        boxes[j, 3] = yc + h / half
        for k in range(nkp):
            boxes[j, 4 + 2 * k] = raw_boxes[i, 4 + 2 * k] / size * aw + ax
            boxes[j, 5 + 2 * k] = raw_boxes[i, 5 + 2 * k] / size * ah + ay
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
    one = np.float32(1.0)
    floor = np.float32(min_confidence)
    for i in range(landmarks.shape[0]):
        col = int(landmarks[i, 0] * np.float32(hw))  # truncation toward zero, as in C++
        row = int(landmarks[i, 1] * np.float32(hh))
        if col < 0 or col >= hw or row < 0 or row >= hh:
            continue
        c0 = max(0, col - half)
        c1 = min(hw, col + half + 1)
        r0 = max(0, row - half)
        r1 = min(hh, row + half + 1)
        total = np.float32(0.0)
        wc = np.float32(0.0)
        wr = np.float32(0.0)
        peak = np.float32(0.0)
        for r in range(r0, r1):
            for c in range(c0, c1):
                conf = one / (one + np.exp(-heatmap[r, c, i]))
                total += conf
                peak = max(peak, conf)
                wc += np.float32(c) * conf
                wr += np.float32(r) * conf
        if peak >= floor and total > 0.0:
            landmarks[i, 0] = wc / np.float32(hw) / total
            landmarks[i, 1] = wr / np.float32(hh) / total


@njit(cache=True, nogil=True)
def _blend(alpha: np.float32, x: np.float32, previous: np.float32) -> np.float32:
    """MediaPipe's low-pass step: float32 ``alpha * x``, the sum in double, rounded to float32."""
    return np.float32(np.float64(alpha * x) + (1.0 - np.float64(alpha)) * np.float64(previous))


@njit(cache=True, nogil=True)
def _alpha(cutoff: float, period: float) -> np.float32:
    """The smoothing factor of a ``cutoff`` (Hz) low-pass filter sampled every ``period`` s."""
    return np.float32(1.0 / (1.0 + (1.0 / (2 * math.pi * cutoff)) / period))


@njit(cache=True, nogil=True)
def low_pass(
    x: np.ndarray, alpha: np.ndarray, raw: np.ndarray, value: np.ndarray, started: bool
) -> np.ndarray:
    """One step of MediaPipe's low-pass filter, y = alpha * x + (1 - alpha) * y_prev, elementwise.

    ``x`` (any shape, contiguous) float32; ``alpha`` float32, one per element or a single one;
    ``raw`` and ``value`` (x.size,) float32, the filter's state (last input and output), updated in
    place. Without a previous sample (``started`` false) the output is ``x``. The arithmetic is
    MediaPipe's: float32 state and ``alpha * x`` product, the sum in double, rounded to float32.
    """
    n = x.size
    xs = x.reshape(n)
    out = np.empty_like(x)
    ys = out.reshape(n)
    step = 1 if alpha.size > 1 else 0
    for i in range(n):
        xi = xs[i]
        yi = _blend(alpha[i * step], xi, value[i]) if started else xi
        raw[i] = xi
        value[i] = yi
        ys[i] = yi
    return out


@njit(cache=True, nogil=True)
def one_euro(
    x: np.ndarray,
    x_raw: np.ndarray,
    x_value: np.ndarray,
    x_alpha: np.ndarray,
    dx_raw: np.ndarray,
    dx_value: np.ndarray,
    dx_alpha: np.ndarray,
    started: bool,
    has_alpha: bool,
    frequency: float,
    value_scale: float,
    min_cutoff: float,
    beta: float,
    derivate_cutoff: float,
) -> np.ndarray:
    """One step of MediaPipe's one-euro filter over ``x`` (any shape, contiguous, float32).

    The state is two low-pass filters (``low_pass``), one for the values (``x_*``) and one for
    their derivative (``dx_*``), each as (x.size,) float32 arrays of the last input, the last
    output and the alpha, updated in place. ``started``: a previous sample exists (else the output
    is ``x`` and the derivative 0); ``has_alpha``: the alphas were ever set (MediaPipe keeps the
    previous alpha when a new one falls outside [0, 1], and has none to keep before the first
    sample). The derivative is taken from the previous raw value, scaled by ``value_scale`` and
    ``frequency`` (Hz); the cutoff grows with the smoothed derivative by ``beta``. Arithmetic as
    in MediaPipe: float32 state, double intermediates, in its operation order.
    """
    n = x.size
    xs = x.reshape(n)
    out = np.empty_like(x)
    ys = out.reshape(n)
    te = 1.0 / frequency
    dx_a = _alpha(derivate_cutoff, te)
    for i in range(n):
        xi = xs[i]
        # the derivative, through its own low-pass filter
        if started:
            d = np.float32((np.float64(xi) - np.float64(x_raw[i])) * value_scale * frequency)
        else:
            d = np.float32(0.0)
        if not has_alpha or (dx_a >= 0 and dx_a <= 1):
            dx_alpha[i] = dx_a
        ed = _blend(dx_alpha[i], d, dx_value[i]) if started else d
        dx_raw[i] = d
        dx_value[i] = ed
        # the value, with a cutoff that rises with the speed
        cutoff = min_cutoff + beta * np.float64(abs(ed))
        xa = _alpha(cutoff, te)
        if not has_alpha or (xa >= 0 and xa <= 1):
            x_alpha[i] = xa
        yi = _blend(x_alpha[i], xi, x_value[i]) if started else xi
        x_raw[i] = xi
        x_value[i] = yi
        ys[i] = yi
    return out


@njit(cache=True, nogil=True)
def decode_landmarks(
    raw: np.ndarray,
    heatmap: np.ndarray,
    refine: bool,
    kernel_size: int,
    min_confidence: float,
    input_size: float,
    padding: tuple[float, float, float, float],
    rect: tuple[float, float, float, float],
    cos_sin: tuple[float, float],
) -> np.ndarray:
    """The estimator's (N * 5,) landmarks -> (N, 5) float32: x, y, z as fractions of the image,
    visibility and presence still raw (logits).

    As MediaPipe, in float32 and in its operation order: x, y, z divided by the tensor size;
    x, y refined from the (Hh, Wh, N) ``heatmap`` if ``refine`` (``refine_from_heatmap``); the
    letterbox ``padding`` (left, top, right, bottom, fractions of the tensor) removed (z scales as
    x); then projected through the ROI: ``rect`` (x_center, y_center, width, height, normalised)
    turned by the angle whose float32 cosine and sine are ``cos_sin`` (z scaled by the width).
    """
    n = raw.size // 5
    lm = raw.reshape(n, 5)
    size = np.float32(input_size)
    norm = np.empty((n, 3), dtype=np.float32)
    for i in range(n):
        for k in range(3):
            norm[i, k] = np.float32(lm[i, k]) / size
    if refine:
        refine_from_heatmap(norm, heatmap, kernel_size, min_confidence)
    left = np.float32(padding[0])
    top = np.float32(padding[1])
    x_den = np.float32(1.0) - (left + np.float32(padding[2]))
    y_den = np.float32(1.0) - (top + np.float32(padding[3]))
    xc = np.float32(rect[0])
    yc = np.float32(rect[1])
    width = np.float32(rect[2])
    height = np.float32(rect[3])
    c = np.float32(cos_sin[0])
    s = np.float32(cos_sin[1])
    half = np.float32(0.5)
    out = np.empty((n, 5), dtype=np.float32)
    for i in range(n):
        x = (norm[i, 0] - left) / x_den - half
        y = (norm[i, 1] - top) / y_den - half
        out[i, 0] = (c * x - s * y) * width + xc
        out[i, 1] = (s * x + c * y) * height + yc
        out[i, 2] = norm[i, 2] / x_den * width
        out[i, 3] = lm[i, 3]
        out[i, 4] = lm[i, 4]
    return out


@njit(cache=True, nogil=True)
def rotate_world(raw: np.ndarray, cos_sin: tuple[float, float]) -> np.ndarray:
    """(N * 3,) world landmarks -> (N, 3) float32 turned about the z axis by the angle whose
    float32 cosine and sine are ``cos_sin`` (float32 arithmetic, MediaPipe's order)."""
    n = raw.size // 3
    w = raw.reshape(n, 3)
    c = np.float32(cos_sin[0])
    s = np.float32(cos_sin[1])
    out = np.empty((n, 3), dtype=np.float32)
    for i in range(n):
        x = np.float32(w[i, 0])
        y = np.float32(w[i, 1])
        out[i, 0] = c * x - s * y
        out[i, 1] = s * x + c * y
        out[i, 2] = w[i, 2]
    return out


@njit(cache=True, nogil=True)
def decode_pose(
    raw: np.ndarray,
    heatmap: np.ndarray,
    refine: bool,
    kernel_size: int,
    min_confidence: float,
    input_size: float,
    padding: tuple[float, float, float, float],
    rect: tuple[float, float, float, float],
    cos_sin: tuple[float, float],
    world_raw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``decode_landmarks`` and ``rotate_world`` in one call (the estimator's post-processing
    touches little code after an invoke that has evicted it), and whether the result is usable:
    x, y, z and the world landmarks finite, visibility and presence not NaN (the sigmoid the
    caller applies to them turns +-inf into 1 and 0)."""
    norm = decode_landmarks(
        raw, heatmap, refine, kernel_size, min_confidence, input_size, padding, rect, cos_sin
    )
    world = rotate_world(world_raw, cos_sin)
    ok = True
    for i in range(norm.shape[0]):
        for k in range(3):
            ok &= math.isfinite(norm[i, k])
        for k in range(3, 5):
            ok &= not math.isnan(norm[i, k])
    for i in range(world.shape[0]):
        for k in range(3):
            ok &= math.isfinite(world[i, k])
    return norm, world, ok


@njit(cache=True, nogil=True)
def alignment_rect(
    x0: float, y0: float, x1: float, y1: float, width: float, height: float, target_angle: float
) -> tuple[float, float, float, float, float]:
    """MediaPipe's AlignmentPointsRects for a start (x0, y0) and end (x1, y1) point normalised
    to a ``width`` x ``height`` image: (x_center, y_center, width, height, rotation) of a square
    centred on the start with side 2 * |end - start| in pixels, turned so that start -> end
    points at ``target_angle``. Float32 where MediaPipe's C++ uses float, double for the angle,
    as ``roi.alignment_rect`` documents; the rotation wrapped as ``roi.normalize_radians``."""
    f32 = np.float32
    w = f32(width)
    h = f32(height)
    sx = f32(f32(x0) * w)
    sy = f32(f32(y0) * h)
    dx = f32(f32(x1) * w) - sx
    dy = f32(f32(y1) * h) - sy
    box = np.sqrt(dx * dx + dy * dy) * f32(2.0)
    angle = np.float64(f32(f32(target_angle) - f32(math.atan2(np.float64(-dy), np.float64(dx)))))
    turns = math.floor((angle - (-math.pi)) / (2 * math.pi))
    rotation = f32(angle - 2 * math.pi * turns)
    return (
        np.float64(sx / w),
        np.float64(sy / h),
        np.float64(box / w),
        np.float64(box / h),
        np.float64(rotation),
    )


@njit(cache=True, nogil=True)
def object_scale(x0: float, y0: float, x1: float, y1: float, width: float, height: float) -> float:
    """The person's size in pixels as MediaPipe measures it for value scaling: the mean side
    (float32) of the ``alignment_rect`` of a start (x0, y0) and end (x1, y1) point normalised to
    a ``width`` x ``height`` image."""
    f32 = np.float32
    _, _, rect_w, rect_h, _ = alignment_rect(x0, y0, x1, y1, width, height, 0.0)
    w = f32(width)
    h = f32(height)
    return np.float64(f32(f32(f32(f32(rect_w) * w) + f32(f32(rect_h) * h)) / f32(2.0)))


@njit(cache=True, nogil=True)
def smooth_landmarks(
    out: np.ndarray,
    lo: int,
    hi: int,
    width: float,
    height: float,
    vis_alpha: np.ndarray,
    vis_raw: np.ndarray,
    vis_value: np.ndarray,
    vis_started: bool,
    x_raw: np.ndarray,
    x_value: np.ndarray,
    x_alpha: np.ndarray,
    dx_raw: np.ndarray,
    dx_value: np.ndarray,
    dx_alpha: np.ndarray,
    started: bool,
    has_alpha: bool,
    frequency: float,
    value_scale: float,
    min_cutoff: float,
    beta: float,
    derivate_cutoff: float,
    run: bool,
) -> None:
    """One smoothing step for rows ``lo:hi`` of ``out`` (N, 5) float32 landmarks normalised to a
    ``width`` x ``height`` image, in place: column 3 (visibility) through ``low_pass`` with the
    ``vis_*`` state; x, y, z scaled to pixels (float32, z by the width), through ``one_euro`` with
    the ``x_*``/``dx_*`` state and parameters if ``run`` (else unchanged: a timestamp that is not
    new), and scaled back (float32 division). The same arithmetic as scaling with numpy and
    calling the two filters, in one call."""
    n = hi - lo
    vis = np.empty(n, np.float32)
    for i in range(n):
        vis[i] = out[lo + i, 3]
    vis = low_pass(vis, vis_alpha, vis_raw, vis_value, vis_started)
    to_px = np.empty(3, np.float32)
    to_px[0] = np.float32(width)
    to_px[1] = np.float32(height)
    to_px[2] = np.float32(width)
    px = np.empty((n, 3), np.float32)
    for i in range(n):
        for k in range(3):
            px[i, k] = out[lo + i, k] * to_px[k]
    if run:
        px = one_euro(
            px, x_raw, x_value, x_alpha, dx_raw, dx_value, dx_alpha, started, has_alpha,
            frequency, value_scale, min_cutoff, beta, derivate_cutoff,
        )  # fmt: skip
    for i in range(n):
        out[lo + i, 3] = vis[i]
        for k in range(3):
            out[lo + i, k] = px[i, k] / to_px[k]
