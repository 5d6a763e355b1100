"""Thread-count (and variant) sweep of the whole pipeline with ``edge.service.bench``.

    .venv/bin/python benchmarks/sweep.py [--source VIDEO] [--frames 200] [--variants float]

One line per (variant, threads): FPS and p50 of the two model invocations. Runs them one after
the other in one process; run it on an otherwise idle board.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.service import bench
from edge.service.media import media_dir

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    media = media_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(media / "video" / "street.avi"))
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--variants", default="float")
    parser.add_argument("--max-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(
        f"{'variant':8s} {'threads':>7s} {'FPS':>7s} {'est. invoke p50':>16s} {'det. invoke p50':>16s}"
    )
    for variant in args.variants.split(","):
        for threads in range(1, min(args.max_threads, 4) + 1):
            r = bench.run(args.source, variant, threads, args.frames, 20, show_progress=False)
            st = r["stages_ms"]
            det = st.get("detector_invoke", {}).get("p50", float("nan"))
            print(f"{variant:8s} {threads:7d} {r['throughput']['fps']:7.1f} "
                  f"{st['estimator_invoke']['p50']:16.2f} {det:16.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
