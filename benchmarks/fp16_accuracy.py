"""fp16 estimator vs float under an emulated Cortex-A76 (fp16 arithmetic) and Cortex-A72 (none).

    .venv/bin/python benchmarks/fp16_accuracy.py                    # full, photos + video frames
    .venv/bin/python benchmarks/fp16_accuracy.py --models lite,full,heavy --json out.json
    .venv/bin/python benchmarks/fp16_accuracy.py --photos 2 --videos 0 --cpus cortex-a76
    .venv/bin/python benchmarks/fp16_accuracy.py --models heavy --timeout 10800

The fp16 estimator (``edge/pose/fp16.py``) is the float model whose ``reduced_precision_support``
metadata says ``fp16accfp16``; XNNPACK then runs it in fp16 where the core has fp16 arithmetic.
x86 has none that XNNPACK uses, so this runs both estimators under Debian's ``qemu-aarch64`` in
the Debian Bookworm arm64 userland with LiteRT's aarch64 wheel that ``benchmarks/icount.py``
builds (same cache, ``$BLAZEPOSE_EDGE_ICOUNT_CACHE``; the guest gets a Raspberry Pi 4 or 5
``/proc/cpuinfo``, and qemu sets the aarch64 HWCAPs by ``-cpu``), one interpreter thread.

The inputs are the float pipeline's own crops, made natively: for each test photo
(``media/images``) and evenly spread frames of the test videos, the float detector's first
detection, its ROI and the 256x256 crop (static mode, as ``models/quantize.py``'s gate). The
guest runs both estimators, pruned as the pipeline runs them, on the same crops and returns the
raw outputs; they are decoded natively (heatmap refinement included) and compared with the int8
gate's metric (``models/quantize.py``): mean 2D distance over the 33 landmarks as a share of the
float torso, for crops with a torso of at least 5 % of the ROI; the pose flag's decision (> 0.5).

Expect on the A76: outputs that differ from float (if they are bit-identical, fp16 did not run);
on the A72: bit-identical outputs (XNNPACK falls back to fp32). Emulated time is no guide to a
Pi's: qemu runs fp16 instructions through soft-float helpers.

Each emulated run (one core, both estimators, every crop) is stopped after ``--timeout`` seconds;
by default three times what the model's crops are expected to take (``SECONDS_PER_CROP``), and
never less than 30 minutes: heavy takes about 48 s a crop, so its 47 crops get 6768 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CPUS = ("cortex-a76", "cortex-a72")
VIDEOS = (
    "street.avi", "walking_one_by_one_intel.mp4", "synthetic_arms_up_tfjs.mp4",
    "two_people_hug_1080p_mmaction2.mp4", "hard_upper_body_sign_language_intel.mp4",
)  # fmt: skip
ROLES = ("landmarks", "flag", "heatmap", "world")
# Emulated seconds per crop of one run under the A76 (both estimators; qemu runs fp16 in soft-float
# helpers, so the A72's run is faster), 2026-11-30, 2-vCPU host: lite and full from runs of 1 and 7
# crops (the difference, so loading the models is left out), heavy from its 47 crops in chunks.
SECONDS_PER_CROP = {"lite": 5.4, "full": 11.0, "heavy": 48.0}
MIN_TIMEOUT_S = 1800  # what lite and full, all 47 crops, have always fitted in


def default_timeout(model: str, crops: int) -> int:
    """Seconds one emulated run of ``crops`` crops of ``model`` may take before it is stopped:
    three times the expected time (a busy host is slower), at least ``MIN_TIMEOUT_S``."""
    return max(MIN_TIMEOUT_S, round(3 * crops * SECONDS_PER_CROP[model]))


# --- the guest side (under qemu: stdlib, numpy and the interpreter only) -------------------------


def guest(spec_path: str) -> None:
    import numpy as np

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

    spec = json.loads(Path(spec_path).read_text())
    inputs = np.load(spec["inputs"])
    report = {}
    for label, path in spec["models"].items():
        t0 = time.monotonic()
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        outputs = {
            d["index"]: tuple(int(s) for s in d["shape"]) for d in interpreter.get_output_details()
        }
        results: dict[str, list] = {str(i): [] for i in outputs}
        for x in inputs:
            interpreter.set_tensor(index, x[None])
            interpreter.invoke()
            for i in outputs:
                results[str(i)].append(interpreter.get_tensor(i)[0].copy())
        out = Path(spec["out"]) / f"{label}.npz"
        np.savez(out, **{f"t{i}": np.stack(v) for i, v in results.items()})
        report[label] = {
            "file": str(out),
            "shapes": {str(i): s for i, s in outputs.items()},
            "seconds": round(time.monotonic() - t0, 1),
        }
        del interpreter
    print(json.dumps(report))


# --- the host side ------------------------------------------------------------------------------


def say(msg: str) -> None:
    print(f"fp16_accuracy: {msg}", file=sys.stderr, flush=True)


def frames(media: Path, photos: int | None, per_video: int) -> list[tuple[str, object]]:
    import cv2

    out = []
    names = sorted(
        p for p in (media / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    for p in names[:photos] if photos is not None else names:
        image = cv2.imread(str(p))
        if image is not None:
            out.append((f"images/{p.name}", image))
    for name in VIDEOS[: max(0, per_video and len(VIDEOS))]:
        cap = cv2.VideoCapture(str(media / "video" / name))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for k in range(per_video):
            index = (2 * k + 1) * count // (2 * per_video)
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = cap.read()
            if ok:
                out.append((f"video/{name}#{index}", image))
        cap.release()
    return out


def crops(model: str, items: list[tuple[str, object]]):
    """The float pipeline's crops: [(name, rect, padding, frame shape)], (N, 256, 256, 3)."""
    import numpy as np

    from edge.pose import models
    from edge.pose.detector import Detector
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.tracking import roi_from_detection

    detector = Detector(models.locate(models.DETECTOR), 1)
    estimator = LandmarkModel(models.locate(models.estimator_name(model)), 1)
    meta, tensors = [], []
    for name, image in items:
        detections = detector.detect(image)
        if not detections:
            continue
        rect = roi_from_detection(detections[0])
        padding = estimator.preprocess(image, rect)
        tensors.append(np.array(estimator.model.input_view(), dtype=np.float32))
        meta.append((name, rect, padding, image.shape))
    return meta, np.stack(tensors)


def pruned(path: Path) -> bytes:
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.runtime import Model, interpreter_class

    class _Source:  # what Model._pruned reads of a Model: the file
        def __init__(self, p: Path):
            self.path = p

    _, cls = interpreter_class(None)
    content = Model._pruned(_Source(path), cls, LandmarkModel.OUTPUTS, ROLES)
    if content is None:
        raise SystemExit(f"fp16_accuracy: cannot prune {path}")
    return content


def run_guest(cache: Path, view: Path, site: Path, cpu: str, models: dict, inputs: Path,
              timeout: int) -> dict:  # fmt: skip
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix=f"fp16-{cpu}-", dir=cache))
    try:
        spec = work / "spec.json"
        spec.write_text(json.dumps({"models": models, "inputs": str(inputs), "out": str(work)}))
        env = {
            "PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(site),
        }  # fmt: skip
        cmd = ["qemu-aarch64", "-cpu", cpu, "-L", str(view), str(view / "usr/bin/python3.11")]
        cmd += [str(Path(__file__)), "--guest", str(spec)]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SystemExit(
                f"fp16_accuracy: the {cpu} run was stopped after {timeout} s: give a longer "
                "--timeout, or fewer crops (--photos, --videos)"
            ) from None
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"fp16_accuracy: the {cpu} run failed (exit {proc.returncode})")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        out = {"seconds": round(time.monotonic() - t0, 1)}
        for label, r in report.items():
            with np.load(r["file"]) as data:
                arrays = {k: data[k] for k in data.files}
            by_shape = {tuple(s): f"t{i}" for i, s in r["shapes"].items()}
            out[label] = {role: arrays[by_shape[shape]] for role, shape in _roles().items()}
            out[label]["invoke_s"] = r["seconds"]
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _roles() -> dict[str, tuple[int, ...]]:
    from edge.pose.landmarks import LandmarkModel

    return {role: tuple(LandmarkModel.OUTPUTS[role]) for role in ROLES}


def compare(meta, ref: dict, cand: dict) -> dict:
    """The int8 gate's figures for ``cand`` vs ``ref`` (raw outputs of the same crops)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "models"))
    from quantize import MIN_TORSO_SHARE, landmark_error, torso

    from edge.pose.landmarks import POSE_THRESHOLD, decode_landmarks, decode_world, to_pixels

    rows = []
    for i, (name, rect, padding, shape) in enumerate(meta):
        height, width = shape[:2]
        fa, fb = float(ref["flag"][i][0]), float(cand["flag"][i][0])
        row = {"file": name, "float": fa > POSE_THRESHOLD, "fp16": fb > POSE_THRESHOLD,
               "flag": abs(fa - fb)}  # fmt: skip
        la = to_pixels(
            decode_landmarks(ref["landmarks"][i], rect, padding, ref["heatmap"][i]), (width, height)
        )
        lb = to_pixels(
            decode_landmarks(cand["landmarks"][i], rect, padding, cand["heatmap"][i]),
            (width, height),
        )
        side = max(rect.width * width, rect.height * height)
        row["torso_share"] = torso(la) / side
        if row["float"] and row["fp16"] and row["torso_share"] >= MIN_TORSO_SHARE:
            row["vs_float"] = landmark_error(lb, la)
            row["worst_landmark"] = float(
                np.linalg.norm(lb[:33, :2] - la[:33, :2], axis=1).max() / torso(la)
            )
            row["vis"] = float(np.abs(lb[:33, 3] - la[:33, 3]).max())
            wa, wb = decode_world(ref["world"][i], rect), decode_world(cand["world"][i], rect)
            row["world_cm"] = float(np.abs(wb[:33] - wa[:33]).mean() * 100)
        rows.append(row)
    scored = [r for r in rows if "vs_float" in r]
    identical = all(np.array_equal(ref[role], cand[role]) for role in ROLES)
    summary = {
        "crops": len(rows),
        "compared": len(scored),
        "bit_identical": bool(identical),
        "max_abs_diff": {role: float(np.abs(ref[role] - cand[role]).max()) for role in ROLES},
        "presence_mismatch": [r["file"] for r in rows if r["float"] != r["fp16"]],
        "max_flag_diff": max(r["flag"] for r in rows),
    }
    if scored:
        summary.update({
            "mean_vs_float": float(np.mean([r["vs_float"] for r in scored])),
            "median_vs_float": float(np.median([r["vs_float"] for r in scored])),
            "worst_vs_float": max((r["vs_float"], r["file"]) for r in scored),
            "worst_landmark": max((r["worst_landmark"], r["file"]) for r in scored),
            "max_vis": max(r["vis"] for r in scored),
            "mean_world_cm": float(np.mean([r["world_cm"] for r in scored])),
        })  # fmt: skip
    return {"summary": summary, "rows": rows}


def setup(cache: Path, cpus) -> tuple[Path, dict[str, Path]]:
    """icount.py's userland and aarch64 site (built on first use: needs root and debootstrap)."""
    sys.path.insert(0, str(HERE))
    import icount

    if not shutil.which("qemu-aarch64"):
        raise SystemExit("fp16_accuracy: needs qemu-aarch64 (apt-get install qemu-user)")
    root = icount.build_root(cache)
    site = icount.build_site(cache)
    return site, {cpu: icount.cpu_view(cache, root, cpu) for cpu in cpus}


def default_cache() -> Path:
    import os

    return Path(
        os.environ.get("BLAZEPOSE_EDGE_ICOUNT_CACHE")
        or Path.home() / ".cache" / "blazepose-edge" / "icount"
    )


def measure(model: str, items, cpus, cache: Path, timeout: int | None = None) -> dict:
    """Float vs fp16 estimator of landmark model ``model`` on ``items`` under each core; each
    core's run is stopped after ``timeout`` seconds (default: ``default_timeout``)."""
    import numpy as np

    from edge.pose import fp16, models

    site, views = setup(cache, cpus)
    meta, tensors = crops(model, items)
    timeout = timeout or default_timeout(model, len(meta))
    folder = cache / "fp16-models"
    folder.mkdir(exist_ok=True)
    source = models.locate(models.estimator_name(model))  # verified against the manifest
    float_file = folder / f"{source.stem}.tflite"
    fp16_file = folder / f"{fp16.name_for(model)}.tflite"
    float_file.write_bytes(source.read_bytes())
    fp16_file.write_bytes(fp16.edit(source.read_bytes()))  # what fp16.derive writes, unrecorded
    files = {}
    for label, path in (("float", float_file), ("fp16", fp16_file)):
        files[label] = str(path.with_name(path.stem + "-pruned.tflite"))
        Path(files[label]).write_bytes(pruned(path))
    with tempfile.NamedTemporaryFile(suffix=".npy", dir=cache, delete=False) as fh:
        np.save(fh, tensors)
        inputs = Path(fh.name)
    result = {"model": model, "crops": [m[0] for m in meta], "cpus": {}}
    try:
        for cpu in cpus:
            say(f"{model}: {len(meta)} crops under -cpu {cpu} (stopped after {timeout} s)")
            outs = run_guest(cache, views[cpu], site, cpu, files, inputs, timeout)
            cmp = compare(meta, outs["float"], outs["fp16"])
            cmp["seconds"] = outs["seconds"]
            cmp["guest_seconds"] = {k: outs[k]["invoke_s"] for k in ("float", "fp16")}
            result["cpus"][cpu] = cmp
    finally:
        inputs.unlink(missing_ok=True)
    return result


def report(result: dict) -> str:
    lines = []
    for cpu, r in result["cpus"].items():
        s = r["summary"]
        head = f"{result['model']:5s} {cpu:10s} {s['compared']:3d}/{s['crops']} crops"
        if s["bit_identical"]:
            lines.append(f"{head}: fp16 outputs bit-identical to float (fp16 did not run)")
            continue
        lines.append(
            f"{head}: mean {s.get('mean_vs_float', float('nan')):.3%}, median "
            f"{s.get('median_vs_float', float('nan')):.3%}, worst "
            f"{s['worst_vs_float'][0]:.3%} ({s['worst_vs_float'][1]}) of torso; worst single "
            f"landmark {s['worst_landmark'][0]:.2%}; flag max diff {s['max_flag_diff']:.4f}, "
            f"decisions differ on {len(s['presence_mismatch'])}; visibility max "
            f"{s['max_vis']:.4f}; world mean {s['mean_world_cm']:.3f} cm; "
            f"guest s float {r['guest_seconds']['float']}, fp16 {r['guest_seconds']['fp16']}"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--guest":
        guest(sys.argv[2])
        return
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="full")
    parser.add_argument("--cpus", default=",".join(CPUS))
    parser.add_argument("--photos", type=int, default=None, help="the first N photos (all)")
    parser.add_argument("--videos", type=int, default=4, help="frames per test video")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument(
        "--timeout",
        type=int,
        metavar="SECONDS",
        help="stop each emulated run (one core, one model) after this long (default: three "
        "times the expected time for the model and the number of crops, at least "
        f"{MIN_TIMEOUT_S}; expected per crop: "
        + ", ".join(f"{m} {s:g} s" for m, s in SECONDS_PER_CROP.items())
        + ")",
    )
    args = parser.parse_args()

    from edge.service.media import media_dir

    media = media_dir()
    items = frames(media, args.photos, args.videos)
    cache = default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    for model in args.models.split(","):
        result = measure(model, items, args.cpus.split(","), cache, args.timeout)
        print(report(result), flush=True)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
