"""Run the whole pipeline on one image and print what it found; or compare two such runs.

    python tools/aarch64/compare.py run IMAGE [--backend B] [--threads N] [--repeat N] [--out F]
    python tools/aarch64/compare.py diff REFERENCE.json OTHER.json [--tol-torso X]

``run`` is executed twice by ``check.sh``: natively (x86-64 venv) and under qemu-user in a Debian
Bookworm arm64 userland. It builds ``PoseEstimator("float", tracking=False)`` (static-image mode: detector,
Numba crop, landmark model, Numba heatmap refinement, projection), processes the image ``--repeat``
times and prints one JSON document on stdout: the landmarks at full float32 precision, the backend,
``platform.machine()``, the library versions, timings, and fingerprints of intermediate steps:

- ``frame_sha256``: the decoded image (so a JPEG decoder difference cannot hide as a model one);
- ``detector_input_sha256``, ``estimator_input_sha256``: the interpreter input tensors the Numba
  warp kernel wrote on the last call (equal when both sides cropped the same ROI);
- ``kernels``: the three Numba kernels run on fixed inputs (the real frame and a fixed matrix for
  the warp, seeded synthetic tensors for SSD decoding and heatmap refinement), plus Numba's
  per-kernel compile and cache counters, which show the kernels were JIT-compiled in this process.

``diff`` compares two such documents, prints a summary and exits 1 when they disagree beyond the
tolerances (see ``tools/aarch64/README.md`` for how they were chosen). Two float runs are held to
the tolerances below; an int8 run (``run --variant int8``) is judged against a float one the way
the int8 gate judges a frame (``diff_int8``).

Besides the public API (``from edge import PoseEstimator``), ``run`` reaches into the package for the
Numba kernels, the SSD anchors and the interpreters' input tensors (``edge.pose`` internals: this
tool checks the library's numerics, not its API).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# Tolerances for ``diff``. Landmark positions are compared as a share of the reference torso length
# (shoulder midpoint to hip midpoint), the unit the project's fidelity tests use.
TOL_TORSO = 0.005  # max 2D landmark difference: 0.5 % of the torso
TOL_Z_TORSO = 0.02  # max z difference: 2 % of the torso (z is the model's least stable output)
TOL_VIS = 0.01  # visibility and presence
TOL_WORLD_M = 0.005  # world landmarks, metres
TOL_SCORE = 0.01  # pose presence score
TOL_KERNEL = 1e-5  # Numba float kernels on identical inputs (absolute, normalised coordinates)
# An int8 run on aarch64 against the float run on x86-64 is held to the int8 gate's per-frame limit
# (edge.pose.fp16.TOLERANCE["worst"]: the mean 2D distance over the 33 landmarks, a share of the
# torso) and the same pose decision: int8 requantizes differently on ARM and x86, so the int8 runs
# of the two machines are not compared with each other (on yoga2.jpg they differ by 11 % of the
# torso on one landmark, 1.7 % on the mean).


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _log(msg: str) -> None:
    print(f"compare.py [{platform.machine()}]: {msg}", file=sys.stderr, flush=True)


def kernel_checks(frame: np.ndarray) -> dict:
    """Each Numba kernel on fixed inputs: the same bytes in on every machine."""
    from edge.pose import kernels
    from edge.pose.detector import ssd_anchors

    out: dict = {}
    # Warp: a fixed rotated, scaled crop of the real frame, both border modes.
    h, w = frame.shape[:2]
    a = math.radians(17.0)
    s = 1.37 * max(h, w) / 256.0
    inverse = np.array(
        [
            [s * math.cos(a), -s * math.sin(a), w / 2 - 100.3],
            [s * math.sin(a), s * math.cos(a), h / 2 - 140.7],
            [0.0, 0.0, 1.0],
        ]
    )
    for name, border, scale, offset in (
        ("replicate", kernels.BORDER_REPLICATE, 1.0 / 255.0, 0.0),
        ("zero", kernels.BORDER_ZERO, 2.0 / 255.0, -1.0),
    ):
        dst = np.zeros((256, 256, 3), np.float32)
        kernels.warp_to_tensor(frame, inverse, dst, scale, offset, True, border)
        out[f"warp_{name}_sha256"] = _sha(dst)

    rng = np.random.default_rng(20240611)  # PCG64: the same stream on every platform
    n = 400
    anchors = ssd_anchors()[:n]
    raw_boxes = (rng.standard_normal((n, 12)) * 20.0).astype(np.float32)
    raw_scores = (rng.standard_normal(n) * 3.0).astype(np.float32)
    boxes, scores = kernels.decode_detections(raw_boxes, raw_scores, anchors, 224.0, 100.0, 0.5)
    out["decode_boxes"] = boxes.astype(np.float64).tolist()
    out["decode_scores"] = scores.astype(np.float64).tolist()

    landmarks = rng.uniform(0.0, 1.0, (39, 5)).astype(np.float32)
    heatmap = (rng.standard_normal((64, 64, 39)) * 3.0).astype(np.float32)
    kernels.refine_from_heatmap(landmarks, heatmap, 9, 0.5)
    out["refine_xy"] = landmarks[:, :2].astype(np.float64).tolist()
    return out


def numba_report() -> dict:
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    from numba.core import config

    from edge.pose import kernels

    stats = {}
    for name in ("warp_to_tensor", "decode_detections", "refine_from_heatmap"):
        fn = getattr(kernels, name)
        st = fn.stats
        stats[name] = {
            "signatures": len(fn.signatures),
            "cache_hits": sum(st.cache_hits.values()),
            "cache_misses": sum(st.cache_misses.values()),
        }
    return {
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "jit_disabled": bool(config.DISABLE_JIT),
        "cache_dir": config.CACHE_DIR or None,
        "host_cpu": llvm.get_host_cpu_name(),
        "process_triple": llvm.get_process_triple(),
        "kernels": stats,
    }


def backend_version(name: str) -> str | None:
    from importlib import metadata

    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}[name]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    import cv2

    import edge
    from edge import PoseEstimator

    t_import = time.perf_counter() - t0
    _log(f"imported edge, cv2, numba in {t_import:.1f} s")

    frame = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if frame is None:
        print(f"compare.py: cannot read {args.image}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    est = PoseEstimator(args.variant, tracking=False, backend=args.backend,
                        num_threads=args.threads)  # fmt: skip
    t_build = time.perf_counter() - t0
    backend = getattr(est, "backend", None) or est.estimator.model.backend
    _log(f"{backend}: models loaded in {t_build:.1f} s; processing {args.image.name}")

    times, results = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        poses = est.process(frame)
        times.append(time.perf_counter() - t0)
        stages = dict(est.timings)
        results.append(
            [(p.score, p.landmarks.copy(), p.world_landmarks.copy(), p.roi) for p in poses]
        )
        _log(f"call {i + 1}/{args.repeat}: {times[-1]:.2f} s, {len(poses)} pose(s)")
    # Static mode keeps no state: every call must give the same bits.
    deterministic = all(
        len(r) == len(results[0])
        and all(
            a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
            for a, b in zip(r, results[0], strict=True)
        )
        for r in results[1:]
    )

    # The input tensors as the Numba warp left them on the last call (no invoke follows).
    det_view = est.detector.model.input_view()
    det_sha = _sha(det_view)
    del det_view
    est_view = est.estimator.model.input_view()
    est_sha = _sha(est_view)
    del est_view

    t0 = time.perf_counter()
    kchecks = kernel_checks(frame)
    t_kernels = time.perf_counter() - t0

    doc = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "edge": edge.__version__,
        "backend": backend,
        "variant": est.variant,
        "backend_version": backend_version(backend),
        "threads": est.num_threads,
        "numba": numba_report(),
        "image": str(args.image),
        "image_size": [int(frame.shape[1]), int(frame.shape[0])],
        "frame_sha256": _sha(frame),
        "detector_input_sha256": det_sha,
        "estimator_input_sha256": est_sha,
        "deterministic": deterministic,
        "timings_s": {
            "import": round(t_import, 3),
            "build": round(t_build, 3),
            "first_call": round(times[0], 3),
            "fastest_call": round(min(times), 3),
            "kernel_checks": round(t_kernels, 3),
            "last_call_stages_ms": {k: round(v, 2) for k, v in stages.items()},
        },
        "poses": [
            {
                "score": float(score),
                "landmarks": lm.astype(np.float64).tolist(),
                "world_landmarks": world.astype(np.float64).tolist(),
                "roi": [float(v) for v in (roi.cx, roi.cy, roi.width, roi.height, roi.rotation)],
            }
            for score, lm, world, roi in results[-1]
        ],
        "kernel_checks": kchecks,
    }
    text = json.dumps(doc)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def torso_length(landmarks: np.ndarray) -> float:
    shoulders = (landmarks[11, :2] + landmarks[12, :2]) / 2
    hips = (landmarks[23, :2] + landmarks[24, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def _max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a - b).max()) if a.size else 0.0


def diff(args: argparse.Namespace) -> int:
    ref = json.loads(Path(args.reference).read_text())
    other = json.loads(Path(args.other).read_text())
    tol = args.tol_torso
    failures: list[str] = []
    notes: list[str] = []
    tag = f"{ref['machine']} vs {other['machine']}"
    variants = (ref.get("variant", "float"), other.get("variant", "float"))
    if variants == ("float", "int8"):
        return diff_int8(ref, other, tag + " int8")
    if variants != ("float", "float"):
        print(f"FAIL: {tag}: variants {variants[0]} vs {variants[1]} are not compared")
        return 1

    for key in ("frame_sha256",):
        if ref[key] != other[key]:
            notes.append(f"{key} differs (the image decodes differently)")
    for side in (ref, other):
        if not side["deterministic"]:
            failures.append(f"{side['machine']}: repeated calls gave different results")
        if side["numba"]["jit_disabled"]:
            failures.append(
                f"{side['machine']}: NUMBA_DISABLE_JIT is set, kernels were not compiled"
            )
        for name, st in side["numba"]["kernels"].items():
            if st["signatures"] == 0:
                failures.append(f"{side['machine']}: Numba kernel {name} never compiled")

    kr, ko = ref["kernel_checks"], other["kernel_checks"]
    for key in ("warp_replicate_sha256", "warp_zero_sha256"):
        if kr[key] != ko[key]:
            failures.append(f"Numba warp kernel ({key[:-7]}) is not bit-identical")
    k_err = max(
        _max_abs(kr["decode_boxes"], ko["decode_boxes"]),
        _max_abs(kr["decode_scores"], ko["decode_scores"]),
        _max_abs(kr["refine_xy"], ko["refine_xy"]),
    )
    warp = (
        "bit-identical" if kr["warp_replicate_sha256"] == ko["warp_replicate_sha256"] else "DIFFERS"
    )
    if k_err > TOL_KERNEL:
        failures.append(f"Numba float kernels differ by {k_err:.2e} (> {TOL_KERNEL:g})")

    same = [
        ref[f"{stage}_input_sha256"] == other[f"{stage}_input_sha256"]
        for stage in ("detector", "estimator")
    ]
    crops = "detector input {}, landmark crop {}".format(
        *("bit-identical" if s else "differs" for s in same)
    )
    if len(ref["poses"]) != len(other["poses"]):
        failures.append(f"{len(ref['poses'])} vs {len(other['poses'])} poses")
        summary = f"{tag}: pose count differs"
    elif not ref["poses"]:
        failures.append("no pose found on either side: pick an image with a person")
        summary = f"{tag}: no pose"
    else:
        pr, po = ref["poses"][0], other["poses"][0]
        lr = np.array(pr["landmarks"])
        lo = np.array(po["landmarks"])
        torso = torso_length(lr)
        d2 = np.linalg.norm(lr[:, :2] - lo[:, :2], axis=1)
        max_px, mean_px = float(d2.max()), float(d2.mean())
        z = float(np.abs(lr[:, 2] - lo[:, 2]).max())
        vis = float(np.abs(lr[:, 3:5] - lo[:, 3:5]).max())
        world = _max_abs(pr["world_landmarks"], po["world_landmarks"])
        score = abs(pr["score"] - po["score"])
        roi = _max_abs(pr["roi"][:4], po["roi"][:4])
        checks = (
            (max_px / torso, tol, f"max 2D landmark difference {max_px / torso:.3%} of torso "
             f"(limit {tol:.2%})"),
            (z / torso, TOL_Z_TORSO, f"max z difference {z / torso:.3%} of torso "
             f"(limit {TOL_Z_TORSO:.0%})"),
            (vis, TOL_VIS, f"visibility/presence differ by {vis:.4f} (limit {TOL_VIS:g})"),
            (world, TOL_WORLD_M, f"world landmarks differ by {world * 1000:.2f} mm "
             f"(limit {TOL_WORLD_M * 1000:g} mm)"),
            (score, TOL_SCORE, f"score differs by {score:.4f} (limit {TOL_SCORE:g})"),
        )  # fmt: skip
        for value, limit, text in checks:
            if not value <= limit:  # NaN fails too
                failures.append(text)
        summary = (
            f"{tag} on {Path(ref['image']).name} ({ref['backend']} vs {other['backend']}): "
            f"landmarks max {max_px:.4f} px = {max_px / torso:.4%} of torso ({torso:.0f} px), "
            f"mean {mean_px:.4f} px; z max {z:.4f} px; vis/presence max {vis:.2e}; "
            f"world max {world * 1000:.3f} mm; score diff {score:.2e}; ROI max {roi:.2e} px; "
            f"{crops}; Numba kernels on fixed inputs: warp {warp}, float max diff {k_err:.1e}"
        )
    print(summary)
    for side in (ref, other):
        t = side["timings_s"]
        print(
            f"  {side['machine']}: {side['backend']} {side['backend_version']}, numpy "
            f"{side['numpy']}, numba {side['numba']['numba']} (host cpu "
            f"{side['numba']['host_cpu']}), opencv {side['opencv']}, python {side['python']}; "
            f"import {t['import']:.1f} s, models {t['build']:.1f} s, first call "
            f"{t['first_call']:.2f} s (JIT), fastest {t['fastest_call']:.2f} s"
        )
    for note in notes:
        print(f"  note: {note}")
    if failures:
        for f in failures:
            print(f"  FAIL: {f}")
        print(f"FAIL: {tag}: {len(failures)} check(s) beyond tolerance")
        return 1
    print(f"PASS: {tag} within tolerance (2D {tol:.2%} of torso)")
    return 0


def diff_int8(ref: dict, other: dict, tag: str) -> int:
    """The int8 run against the float one, as the int8 gate judges a frame."""
    from edge.pose.fp16 import TOLERANCE

    limit = TOLERANCE["worst"]
    name = Path(ref["image"]).name
    for side in (ref, other):  # static mode keeps no state: repeated calls give the same bits
        if not side.get("deterministic", False):
            print(f"FAIL: {tag}: {side['machine']}: repeated calls gave different results")
            return 1
    if len(ref["poses"]) != len(other["poses"]):
        print(f"FAIL: {tag}: {len(ref['poses'])} vs {len(other['poses'])} poses on {name}")
        return 1
    if not ref["poses"]:
        print(f"FAIL: {tag}: no pose found on {name}: pick an image with a person")
        return 1
    lr = np.array(ref["poses"][0]["landmarks"])
    lo = np.array(other["poses"][0]["landmarks"])
    torso = torso_length(lr)
    d2 = np.linalg.norm(lr[:, :2] - lo[:, :2], axis=1)
    mean = float(d2.mean()) / torso
    print(
        f"{tag} on {name}: {len(lr)} landmarks, mean 2D distance {mean:.3%} of the torso "
        f"({torso:.0f} px; gate's per-frame limit {limit:.0%}), max {float(d2.max()) / torso:.2%}; "
        f"score {ref['poses'][0]['score']:.3f} vs {other['poses'][0]['score']:.3f}"
    )
    if not mean <= limit:  # NaN fails too
        print(f"FAIL: {tag}: beyond the int8 gate's per-frame limit")
        return 1
    print(f"PASS: {tag} within the int8 gate's per-frame limit ({limit:.0%} of the torso)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the pipeline on IMAGE, print JSON")
    p.add_argument("image", type=Path)
    p.add_argument("--backend", default=os.environ.get("BLAZEPOSE_EDGE_BACKEND") or None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--variant", default="float", choices=("float", "int8"))
    p.add_argument("--out")
    d = sub.add_parser("diff", help="compare two JSON documents from `run`")
    d.add_argument("reference")
    d.add_argument("other")
    d.add_argument("--tol-torso", type=float, default=TOL_TORSO)
    args = parser.parse_args(argv)
    return run(args) if args.cmd == "run" else diff(args)


if __name__ == "__main__":
    sys.exit(main())
