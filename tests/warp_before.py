"""The crop kernel ``kernels.warp_to_tensor`` as it was up to commit 0dcee3a: a scalar pixel
loop with a 256-entry table. Kept to check, bit for bit, that the vectorised kernel computes the
same tensor (tests/test_kernels.py) and as the "before" of ``benchmarks/overhead.py``'s kernel
timing. Not used by the package."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from edge.pose.kernels import BORDER_REPLICATE, PREFETCH_ROWS, _prefetch


@njit(cache=False, nogil=True)
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
    """The kernel as it was before the vectorised passes (verbatim apart from this line)."""
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
    r_src = 2 if swap_rb else 0  # the source channel that becomes output channel 0
    b_src = 2 - r_src
    replicate = border == BORDER_REPLICATE
    lut = np.empty(256, dtype=np.float32)  # each 8-bit result v, written as v * scale + offset
    for v in range(256):
        lut[v] = v * scale + offset
    xqs = np.empty(bw, dtype=np.int32)  # int32: the conversion vectorises (AVX2, NEON)
    yqs = np.empty(bw, dtype=np.int32)
    row_bytes = src.strides[0]
    px_bytes = src.strides[1]
    # prefetch every `every` output columns: <= 21 source pixels (63 bytes) apart, every line
    every = max(1, min(16, int(21.0 / max(math.hypot(m0, m3), 1e-6))))
    ahead_xq = int(m1 * prefetch_rows * 32.0)  # the source step of `prefetch_rows` rows down
    ahead_yq = int(m4 * prefetch_rows * 32.0)
    for y in range(oh):
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
            for x1 in range(n):
                xq = xqs[x1]
                yq = yqs[x1]
                x0 = xq >> 5
                y0 = yq >> 5
                ax = np.int32(xq & 31)
                ay = np.int32(yq & 31)
                w00 = (32 - ax) * (32 - ay) * 32
                w01 = ax * (32 - ay) * 32
                w10 = (32 - ax) * ay * 32
                w11 = ax * ay * 32
                if 0 <= x0 < sw - 1 and 0 <= y0 < sh - 1:  # all four neighbours inside
                    xa, xc, ya, yc = x0, x0 + 1, y0, y0 + 1
                else:
                    if not replicate:  # zero border: neighbours outside the image weigh 0
                        if not 0 <= x0 < sw:
                            w00 = 0
                            w10 = 0
                        if not 0 <= x0 + 1 < sw:
                            w01 = 0
                            w11 = 0
                        if not 0 <= y0 < sh:
                            w00 = 0
                            w01 = 0
                        if not 0 <= y0 + 1 < sh:
                            w10 = 0
                            w11 = 0
                    xa = min(max(x0, 0), sw - 1)  # replicate: clamp to the edge
                    xc = min(max(x0 + 1, 0), sw - 1)
                    ya = min(max(y0, 0), sh - 1)
                    yc = min(max(y0 + 1, 0), sh - 1)
                # unsigned indices: no negative-index wraparound code in the loop
                p00 = src[np.uint64(ya), np.uint64(xa)]
                p01 = src[np.uint64(ya), np.uint64(xc)]
                p10 = src[np.uint64(yc), np.uint64(xa)]
                p11 = src[np.uint64(yc), np.uint64(xc)]
                v0 = (w00 * np.int32(p00[r_src]) + w01 * np.int32(p01[r_src])
                      + w10 * np.int32(p10[r_src]) + w11 * np.int32(p11[r_src]))  # fmt: skip
                v1 = (w00 * np.int32(p00[1]) + w01 * np.int32(p01[1])
                      + w10 * np.int32(p10[1]) + w11 * np.int32(p11[1]))  # fmt: skip
                v2 = (w00 * np.int32(p00[b_src]) + w01 * np.int32(p01[b_src])
                      + w10 * np.int32(p10[b_src]) + w11 * np.int32(p11[b_src]))  # fmt: skip
                px = out[np.uint64(y), np.uint64(xb + x1)]
                px[0] = lut[(v0 + 16384) >> 15]
                px[1] = lut[(v1 + 16384) >> 15]
                px[2] = lut[(v2 + 16384) >> 15]
