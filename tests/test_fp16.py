"""The fp16 estimators: the metadata edit, its record, when ``auto`` considers them, and (where
qemu-aarch64 is installed) that XNNPACK really runs them in fp16 on an emulated Cortex-A76."""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edge import PoseEstimator
from edge.pose import board, fp16, models, variants
from edge.pose.landmarks import LandmarkModel
from edge.pose.models import ModelError

ROOT = Path(__file__).resolve().parent.parent

# /proc/cpuinfo as the kernels print it (abridged to the lines that matter)
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU part\t: 0xd0b
"""
PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08
"""
X86_FP16 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma f16c avx512f avx512bw avx512_fp16 amx_int8 amx_bf16
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (PI5, True),
        (PI4, False),
        (X86_FP16, False),  # XNNPACK counts no x86 core as native fp16
        ("", False),
        (PI5.replace("fphp asimdhp", "asimdhp"), False),  # both flags, on every core
        (PI5 + PI4.replace("processor\t: 0", "processor\t: 2"), False),  # one core without
    ],
    ids=["pi5-a76", "pi4-a72", "x86-avx512fp16", "empty", "no-fphp", "mixed-cores"],
)
def test_fp16_arithmetic_from_cpuinfo(text, expected):
    assert board.has_fp16_arithmetic(text) is expected


def test_this_x86_host_has_no_fp16_arithmetic():
    if not os.uname().machine.startswith(("x86", "amd64")):
        pytest.skip("an x86 host")
    assert board.has_fp16_arithmetic() is False


@pytest.mark.parametrize("model", models.LANDMARK_MODELS)
def test_edit_changes_only_the_metadata_value(model, need_model):
    need_model(model)
    source = models.locate(models.estimator_name(model)).read_bytes()
    edited = fp16.edit(source)
    assert len(edited) == len(source)
    changed = [i for i in range(len(source)) if source[i] != edited[i]]  # 2 bytes: "32" -> "16"
    start, length = fp16.metadata(source)[fp16.KEY]
    assert changed == [start + length - 2, start + length - 1]
    assert edited[start : start + length] == b"fp16accfp16"
    name = fp16.name_for(model)
    assert hashlib.sha256(edited).hexdigest() == fp16.SHA256[name]  # pinned: same on every machine
    assert fp16.edit(source) == edited  # and deterministic here

    # LiteRT's own schema reads the same metadata from the edited file
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAsModel(edited, 0)
    found = {}
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        found[entry.Name().decode()] = bytes(m.Buffers(entry.Buffer()).DataAsNumpy())
    assert found[fp16.KEY] == b"fp16accfp16"
    assert found["min_runtime_version"].rstrip(b"\0") == b"2.2.0"


def test_edit_refuses_what_it_was_not_made_for(models_ready):
    detector = models.locate(models.DETECTOR).read_bytes()
    with pytest.raises(ValueError, match="no reduced_precision_support"):
        fp16.edit(detector)
    edited = fp16.edit(models.locate("pose_landmark_full").read_bytes())
    with pytest.raises(ValueError, match="expected b'fp16accfp32'"):
        fp16.edit(edited)  # twice
    with pytest.raises(ValueError, match="TFL3"):
        fp16.edit(b"\0" * 64)
    with pytest.raises(ValueError, match="not a readable TFLite flatbuffer"):
        fp16.metadata(detector[:2000])


def test_derived_on_first_use_identically_with_a_record(float_dir, tmp_path):
    name = fp16.name_for("full")
    assert not models.derived_present(name, float_dir)
    path = models.locate(name, float_dir)  # derives it
    record = json.loads((float_dir / f"{name}.json").read_text())
    assert record["sha256"] == models.sha256_of(path) == fp16.SHA256[name]
    assert record["source_sha256"] == models.specs()["pose_landmark_full"].sha256
    assert record["gate"] == fp16.gate(name) and record["gate"]["passed"] is True
    assert record["gate"]["held_out"] in models.AUTO_GATES
    assert models.verify_derived(name, float_dir) == record

    other = tmp_path / "other"  # another machine: the same bytes
    shutil.copytree(float_dir, other, ignore=shutil.ignore_patterns("*_fp16*"))
    assert models.sha256_of(models.locate(name, other)) == record["sha256"]

    # a damaged file is derived again, not used
    with open(path, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff")
    models.locate(name, float_dir)
    assert models.sha256_of(path) == fp16.SHA256[name]


def test_a_bad_float_model_is_not_edited(float_dir):
    source = float_dir / "pose_landmark_full.tflite"
    source.write_bytes(source.read_bytes()[:-1])
    with pytest.raises(ModelError, match="pose_landmark_full.tflite has"):
        models.locate(fp16.name_for("full"), float_dir)
    assert not models.derived_present(fp16.name_for("full"), float_dir)


@pytest.mark.parametrize("model, usable", [("lite", True), ("full", True), ("heavy", False)])
def test_each_fp16_estimator_is_measured_and_used_only_within_its_gate(
    model, usable, need_model, tmp_path
):
    """Every model's fp16 estimator has figures from benchmarks/fp16_accuracy.py; lite and full
    pass the gate and are derived, heavy fails it (worst crop) and is refused, naming why."""
    name = fp16.name_for(model)
    assert name in fp16.MEASURED
    verdict = fp16.gate(name)
    assert verdict["passed"] is usable, verdict
    need_model(model)
    shutil.copy(models.locate(models.estimator_name(model)), tmp_path)
    if usable:
        record = fp16.ensure(name, tmp_path)
        assert record["gate"] == verdict and record["sha256"] == fp16.SHA256[name]
    else:
        with pytest.raises(ModelError, match=rf"{name} failed its accuracy gate \(mean "):
            fp16.ensure(name, tmp_path)
        assert not models.derived_present(name, tmp_path)


def test_an_unmeasured_fp16_model_is_not_used(float_dir, monkeypatch):
    name = fp16.name_for("full")
    monkeypatch.setattr(fp16, "MEASURED", {})
    with pytest.raises(ModelError, match="has not been measured against float"):
        models.locate(name, float_dir)
    monkeypatch.setattr(fp16, "MEASURED", {name: {"mean": 0.04, "worst": 0.05}})
    with pytest.raises(ModelError, match=r"failed its accuracy gate \(mean 4.00%"):
        PoseEstimator("fp16", tracking=False, models_dir=float_dir)
    assert not models.derived_present(name, float_dir)


def test_on_x86_fp16_gives_float_outputs_exactly(float_dir):
    """XNNPACK runs the fp16-marked model in fp32 where the core has no fp16 arithmetic."""
    if board.has_fp16_arithmetic():
        pytest.skip("a host without fp16 arithmetic")
    a = LandmarkModel(float_dir / "pose_landmark_full.tflite", 1)
    b = LandmarkModel(models.locate(fp16.name_for("full"), float_dir), 1)
    x = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    for m in (a, b):
        m.model.input_view()[:] = x
        m.infer()
    for role in ("landmarks", "flag", "heatmap", "world"):
        assert np.array_equal(a.model.output(role), b.model.output(role)), role


def test_auto_leaves_fp16_out_without_fp16_arithmetic(float_dir, monkeypatch, caplog):
    monkeypatch.setattr(variants, "has_fp16_arithmetic", lambda: False)
    found, left_out = variants.candidates(float_dir)
    assert "fp16" not in found
    assert left_out["fp16"] == "no fp16 arithmetic on this CPU"
    assert not models.derived_present(fp16.name_for("full"), float_dir)  # not even derived


def test_auto_never_picks_fp16_on_this_host(float_dir, monkeypatch, tmp_path):
    if board.has_fp16_arithmetic():
        pytest.skip("a host without fp16 arithmetic")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    est = PoseEstimator("auto", tracking=False, models_dir=float_dir)
    assert est.variant == "float"
    assert "fp16: no fp16 arithmetic on this CPU" in est.variant_reason


def test_auto_measures_fp16_on_a_core_with_fp16_arithmetic(float_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(variants, "MEASURE_SECONDS", 0.0)
    monkeypatch.setattr(variants, "has_fp16_arithmetic", lambda: True)
    found, left_out = variants.candidates(float_dir, "full")
    assert set(found) == {"float", "fp16"}
    assert found["fp16"][1] == fp16.SHA256[fp16.name_for("full")]
    monkeypatch.setattr(variants, "measure", lambda est, s: {"float": 10.0, "fp16": 6.0})
    est = PoseEstimator("auto", tracking=False, models_dir=float_dir)
    assert est.variant == "fp16" and "fastest measured" in est.variant_reason


def test_fp16_by_name_on_x86_says_it_runs_in_fp32(float_dir):
    if board.has_fp16_arithmetic():
        pytest.skip("a host without fp16 arithmetic")
    est = PoseEstimator("fp16", tracking=False, models_dir=float_dir)
    assert est.variant == "fp16"
    assert "XNNPACK runs it in fp32" in est.variant_reason
    assert est.model_files["estimator"].name == "pose_landmark_full_fp16.tflite"


# --- emulated aarch64 ----------------------------------------------------------------------------


def _script():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fp16_accuracy

    return fp16_accuracy


def _emulation():
    fp16_accuracy = _script()
    cache = fp16_accuracy.default_cache()
    ready = shutil.which("qemu-aarch64") and (
        any(cache.glob("root-*/usr/bin/python3.11"))
        or (os.geteuid() == 0 and shutil.which("debootstrap"))
    )
    if not ready:
        pytest.skip(
            "needs qemu-aarch64 (apt-get install qemu-user) and the arm64 userland of "
            f"benchmarks/icount.py in {cache} (built on first use as root with debootstrap)"
        )
    return fp16_accuracy, cache


def test_fp16_runs_in_fp16_on_an_emulated_a76_only(media, models_ready):
    """Two photos: on the A76 the fp16 model's outputs differ from float's (fp16 kernels ran) and
    stay within the gate; on the A72 they are float's, bit for bit."""
    fp16_accuracy, cache = _emulation()
    items = fp16_accuracy.frames(media, None, 0)
    items = [i for i in items if i[0] in ("images/yoga.jpg", "images/yoga2.jpg")]
    result = fp16_accuracy.measure("full", items, fp16_accuracy.CPUS, cache, timeout=600)
    a76 = result["cpus"]["cortex-a76"]["summary"]
    a72 = result["cpus"]["cortex-a72"]["summary"]
    assert a76["crops"] == a72["crops"] == 2
    assert a72["bit_identical"], a72["max_abs_diff"]
    assert not a76["bit_identical"], "the A76 ran the fp16-marked model in fp32"
    assert a76["presence_mismatch"] == []
    assert a76["mean_vs_float"] <= fp16.TOLERANCE["mean"]
    assert a76["worst_vs_float"][0] <= fp16.TOLERANCE["worst"]


def test_the_emulated_runs_timeout_scales_with_the_work(models_ready, monkeypatch, tmp_path):
    """Heavy's 47 crops (about 48 s each under the A76) outlast the 30 minutes that lite and full
    fit in: each run's default timeout follows the model and the number of crops."""
    script = _script()
    assert script.default_timeout("heavy", 47) == 3 * 47 * 48 > 47 * 48 > script.MIN_TIMEOUT_S
    assert script.default_timeout("full", 47) == script.default_timeout("lite", 2) == 1800
    assert script.default_timeout("full", 200) == 6600
    timeouts = []

    def run_guest(cache, view, site, cpu, files, inputs, timeout):
        timeouts.append(timeout)
        return {"seconds": 1, "float": {"invoke_s": 1}, "fp16": {"invoke_s": 1}}

    monkeypatch.setattr(script, "setup", lambda cache, cpus: (tmp_path, dict.fromkeys(cpus)))
    monkeypatch.setattr(
        script, "crops", lambda model, items: ([("crop",)] * len(items), np.zeros((len(items), 1)))
    )
    monkeypatch.setattr(script, "pruned", lambda path: b"")
    monkeypatch.setattr(script, "run_guest", run_guest)
    monkeypatch.setattr(script, "compare", lambda meta, ref, cand: {})
    script.measure("full", [None] * 200, script.CPUS, tmp_path)
    script.measure("full", [None] * 200, ["cortex-a76"], tmp_path, timeout=60)
    assert timeouts == [6600, 6600, 60]
