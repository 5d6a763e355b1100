"""Numba kernels against their plain alternatives, side by side in one run.

    .venv/bin/python benchmarks/bench_kernels.py

- SSD decoding of the detector's 2254 anchors: Numba vs vectorised numpy.
- The crop into the 256x256 estimator input: the Numba kernel (bit-exact with MediaPipe's
  OpenCV warp) vs ``cv2.warpPerspective`` + colour conversion + scaling, OpenCV on one thread
  and on its default threads.
- The same crop from frames that are not in the cache (a different 720p frame each call, as in a
  video), with the kernel's prefetching of the source lines it reads next and without it.
- The crop kernel against the scalar one it replaced (``tests/warp_before.py``, prefetching 2
  rows ahead as it did), warm and cold, alternating.
Each figure is the best of 7 repeats of 200 calls (ms per call); the ratio is what to quote.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not the venv's

from edge.pose import kernels  # noqa: E402
from edge.pose.detector import SCORE_CLIP, ssd_anchors  # noqa: E402
from edge.pose.roi import Roi, roi_matrices  # noqa: E402
from edge.service.media import media_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def best_ms(fn, calls: int = 200, repeats: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1000)
    return best


def decode_numpy(raw, scores, anchors, size=224.0, clip=SCORE_CLIP, min_score=0.5):
    s = 1 / (1 + np.exp(-np.clip(scores, -clip, clip)))
    keep = s >= min_score
    raw, a = raw[keep], anchors[keep]
    xc = raw[:, 0] / size * a[:, 2] + a[:, 0]
    yc = raw[:, 1] / size * a[:, 3] + a[:, 1]
    w = raw[:, 2] / size * a[:, 2]
    h = raw[:, 3] / size * a[:, 3]
    kp = raw[:, 4:].reshape(len(raw), -1, 2) / size * a[:, None, 2:] + a[:, None, :2]
    return np.column_stack(
        [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2, kp.reshape(len(raw), -1)]
    ), s[keep]


def main() -> None:
    print(f"machine: {os.cpu_count()} cores; numba kernels single-threaded")
    rng = np.random.default_rng(0)
    anchors = ssd_anchors()
    raw = rng.normal(0, 20, (2254, 12)).astype(np.float32)
    scores = rng.normal(-4, 2, 2254).astype(np.float32)
    a = best_ms(lambda: kernels.decode_detections(raw, scores, anchors, 224.0, SCORE_CLIP, 0.5))
    b = best_ms(lambda: decode_numpy(raw, scores, anchors))
    print(f"decode 2254 anchors: numba {a:.4f} ms, numpy {b:.4f} ms, numpy/numba {b / a:.1f}x")

    media = media_dir()
    frame = cv2.imread(str(media / "images" / "standing_businessman_pixabay.jpeg"))
    frame = cv2.resize(frame, (1280, 720))
    forward, inverse = roi_matrices(Roi(640.0, 360.0, 500.0, 500.0, 0.3), 256, 256)
    out = np.empty((256, 256, 3), np.float32)
    numba_ms = best_ms(lambda: kernels.warp_to_tensor(frame, inverse, out, 1 / 255, 0.0, True, 1))

    def opencv():
        crop = cv2.warpPerspective(frame, forward, (256, 256), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=crop)
        np.multiply(crop, np.float32(1 / 255), out=out, casting="unsafe")

    threads = cv2.getNumThreads()
    cv_default = best_ms(opencv)
    cv2.setNumThreads(1)
    cv_one = best_ms(opencv)
    cv2.setNumThreads(threads)
    print(f"crop 256x256 from 1280x720: numba {numba_ms:.3f} ms, opencv 1 thread {cv_one:.3f} ms "
          f"({numba_ms / cv_one:.2f}x of it), opencv {threads} threads {cv_default:.3f} ms")  # fmt: skip

    # cold frames: 64 distinct 720p frames (177 MB) cycled, so each call reads one from memory
    frames = [np.roll(frame, 7 * i, axis=1) for i in range(64)]
    turn = iter(range(10**9))

    def cold(prefetch_rows: int):
        src = frames[next(turn) % len(frames)]
        kernels.warp_to_tensor(src, inverse, out, 1 / 255, 0.0, True, 1, prefetch_rows)

    plain, fetched = [], []
    for _ in range(3):  # alternating, so both see the same machine
        plain.append(best_ms(lambda: cold(0), calls=64, repeats=3))
        fetched.append(best_ms(lambda: cold(kernels.PREFETCH_ROWS), calls=64, repeats=3))
    print(f"crop from cold frames: numba without prefetching {min(plain):.3f} ms, with "
          f"{min(fetched):.3f} ms ({min(plain) / min(fetched):.2f}x)")  # fmt: skip

    from tests.warp_before import warp_to_tensor as scalar_warp

    def cold_with(fn, prefetch_rows: int):
        src = frames[next(turn) % len(frames)]
        fn(src, inverse, out, 1 / 255, 0.0, True, 1, prefetch_rows)

    rows = {"scalar": [], "vectorised": []}
    for _ in range(3):
        for name, fn, ahead in (("scalar", scalar_warp, 2), ("vectorised", kernels.warp_to_tensor,
                                                               kernels.PREFETCH_ROWS)):  # fmt: skip
            warm = best_ms(lambda fn=fn, ahead=ahead: fn(frame, inverse, out, 1 / 255, 0.0, True,
                                                         1, ahead))  # fmt: skip
            cold_ms = best_ms(lambda fn=fn, ahead=ahead: cold_with(fn, ahead), calls=64, repeats=3)
            rows[name].append((warm, cold_ms))
    for name, runs in rows.items():
        print(f"crop kernel, {name}: warm {min(r[0] for r in runs):.3f} ms, cold frames "
              f"{min(r[1] for r in runs):.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
