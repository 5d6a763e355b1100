"""Model variants: the int8 estimator's record checks, ``auto``'s measuring and its cache.

The "int8" model here is a copy of the float estimator with a record written for it: a real file
through the real verification and loading path, only not quantized.
"""

import json
import logging
import shutil

import pytest

from edge import PoseEstimator
from edge.pose import board, landmarks, models, variants
from edge.pose.landmarks import INT8_FALLBACK_BAND, FallbackLandmarkModel
from edge.service.cli import main

INT8 = "pose_landmark_full_int8"


@pytest.fixture(autouse=True)
def _cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(variants, "MEASURE_SECONDS", 0.0)  # MIN_ROUNDS rounds only
    # int8 vs float here on any host: fp16 (tests/test_fp16.py) is left out as on a core without it
    monkeypatch.setattr(variants, "has_fp16_arithmetic", lambda: False)


def write_record(directory, **changes):
    path = directory / f"{INT8}.tflite"
    record = {
        "name": INT8,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": models.sha256_of(path),
        "source_sha256": models.specs()["pose_landmark_full"].sha256,
        "recipe": "copy of float (test)",
        "gate": {
            "passed": True,
            "mean_vs_float": 0.0,
            "worst_vs_float": 0.0,
            "tolerance": 0.03,
            "held_out": models.HELD_OUT_SOURCES,
        },
        "created_utc": "2025-01-01T00:00:00+00:00",
    }
    record.update(changes)
    (directory / f"{INT8}.json").write_text(json.dumps(record))
    return record


@pytest.fixture
def int8_dir(float_dir):
    """``float_dir`` plus an int8 estimator (a copy of float) whose record says it passed."""
    shutil.copy(float_dir / "pose_landmark_full.tflite", float_dir / f"{INT8}.tflite")
    write_record(float_dir)
    return float_dir


def test_int8_variant_loads_the_int8_file(int8_dir):
    est = PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir)
    assert est.variant == "int8"
    assert est.estimator.model.path == int8_dir / f"{INT8}.tflite"
    assert est.detector.model.path == int8_dir / "pose_detection.tflite"  # detector stays float
    # the frames it is unsure of go to the float model it was derived from
    assert isinstance(est.estimator, FallbackLandmarkModel)
    assert est.estimator.band == INT8_FALLBACK_BAND
    assert est.estimator.fallback.model.path == int8_dir / "pose_landmark_full.tflite"


def test_auto_shares_the_float_interpreter_with_int8s_fallback(int8_dir, monkeypatch):
    loads = []
    real_init = landmarks.LandmarkModel.__init__

    def counting(self, path, *args, **kwargs):
        loads.append(path.name)
        real_init(self, path, *args, **kwargs)

    monkeypatch.setattr(landmarks.LandmarkModel, "__init__", counting)
    monkeypatch.setattr(variants, "measure", lambda e, s: {"float": 9.5, "int8": 5.1})
    est = PoseEstimator(tracking=False, models_dir=int8_dir)
    assert est.variant == "int8"
    assert sorted(loads) == ["pose_landmark_full.tflite", f"{INT8}.tflite"]  # float loaded once
    assert est.estimator.fallback.model.path.name == "pose_landmark_full.tflite"


def test_an_int8_gated_with_another_fallback_band_is_refused(int8_dir):
    gate = {"passed": True, "mean_vs_float": 0.02, "worst_vs_float": 0.08, "tolerance": 0.03,
            "held_out": models.HELD_OUT_SOURCES, "fallback_band": [0.3, 0.7]}  # fmt: skip
    write_record(int8_dir, gate=gate)
    with pytest.raises(models.ModelError, match=r"pose flag in 0\.3-0\.7 .* gate does not apply"):
        PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir)
    write_record(int8_dir, gate={**gate, "fallback_band": list(INT8_FALLBACK_BAND)})
    assert PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir).variant == "int8"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "0" * 64}, "fails its checksum"),
        ({"size": 123}, "its record says 123"),
        (
            {"gate": {"passed": False, "mean_vs_float": 0.052, "tolerance": 0.03}},
            r"accuracy gate \(mean 5\.20%, worst None of torso vs float, tolerance 3\.00%\)",
        ),
        ({"source_sha256": "f" * 64}, "derived from a different pose_landmark_full.tflite"),
        ({"file": "other.tflite"}, "describes 'other.tflite'"),
    ],
)
def test_int8_record_problems_are_model_errors(int8_dir, change, message):
    write_record(int8_dir, **change)
    with pytest.raises(models.ModelError, match=message) as info:
        PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir)
    text = str(info.value)
    assert f"{INT8}.tflite" in text
    assert f"models/quantize.py --out {int8_dir / INT8}.tflite" in text


def test_int8_without_record_or_file(int8_dir):
    (int8_dir / f"{INT8}.json").unlink()
    with pytest.raises(models.ModelError, match=r"has no record .*quantize\.py --out"):
        PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir)
    (int8_dir / f"{INT8}.tflite").unlink()
    with pytest.raises(
        models.ModelError, match=r"_int8\.tflite is missing; install it with \./install\.sh --int8"
    ):
        PoseEstimator(variant="int8", tracking=False, models_dir=int8_dir)


def test_unreadable_record(int8_dir):
    (int8_dir / f"{INT8}.json").write_text("{not json")
    with pytest.raises(models.ModelError, match="unreadable or incomplete"):
        models.verify_derived(INT8, int8_dir)


def test_auto_with_one_candidate_takes_float_without_measuring(float_dir, monkeypatch, caplog):
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    with caplog.at_level(logging.INFO, logger="edge.pose.variants"):
        est = PoseEstimator(tracking=False, models_dir=float_dir)
    assert est.variant == "float"
    assert "only verified variant (int8: absent, fp16: no fp16 arithmetic" in est.variant_reason
    assert "variant auto: float" in caplog.text
    assert not (variants.cache_dir() / variants.CACHE_NAME).exists()


def test_auto_leaves_out_an_int8_that_fails_its_gate(int8_dir, monkeypatch, caplog):
    write_record(int8_dir, gate={"passed": False})
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    with caplog.at_level(logging.WARNING, logger="edge.pose.variants"):
        est = PoseEstimator(tracking=False, models_dir=int8_dir)
    assert est.variant == "float" and "int8: unusable" in est.variant_reason
    assert "accuracy gate" in caplog.text


@pytest.mark.parametrize("held_out", [models.YOUR_FOOTAGE, "test photos", None])
def test_auto_takes_only_an_int8_gated_on_held_out_sources(int8_dir, held_out, monkeypatch, caplog):
    """A model judged on your own footage, or by an older gate, passed a gate that does not say
    how it does on sources it never saw: used when asked for by name, never by ``auto``."""
    gate = {"passed": True, "mean_vs_float": 0.01, "worst_vs_float": 0.02, "tolerance": 0.03}
    if held_out is not None:
        gate["held_out"] = held_out
    write_record(int8_dir, gate=gate)
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    with caplog.at_level(logging.INFO, logger="edge.pose.variants"):
        est = PoseEstimator(tracking=False, models_dir=int8_dir)
    assert est.variant == "float"
    assert "int8: not gated on held-out sources" in est.variant_reason
    assert "--variant int8" in caplog.text
    assert PoseEstimator("int8", tracking=False, models_dir=int8_dir).variant == "int8"


def test_auto_measures_once_then_uses_the_cache(int8_dir, monkeypatch, caplog):
    calls = []
    real = variants.measure

    def counting(estimators, seconds):
        calls.append(sorted(estimators))
        return real(estimators, seconds)

    monkeypatch.setattr(variants, "measure", counting)
    with caplog.at_level(logging.INFO, logger="edge.pose.variants"):
        first = PoseEstimator(num_threads=1, tracking=False, models_dir=int8_dir)
    assert calls == [["float", "int8"]]
    assert first.variant in ("float", "int8")
    assert "fastest measured" in first.variant_reason and "float " in first.variant_reason
    assert f"variant auto: {first.variant}, fastest measured" in caplog.text

    cache = variants.cache_dir() / variants.CACHE_NAME
    (entry,) = json.loads(cache.read_text())["choices"].values()
    assert entry["variant"] == first.variant
    assert set(entry["invoke_ms"]) == {"float", "int8"}
    assert entry["board"]["threads"] == 1 and entry["board"]["model"] == "full"
    assert entry["board"]["models"]["int8"] == models.sha256_of(int8_dir / f"{INT8}.tflite")

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge.pose.variants"):
        second = PoseEstimator(num_threads=1, tracking=False, models_dir=int8_dir)
    assert calls == [["float", "int8"]]  # not measured again
    assert second.variant == first.variant
    assert "cached for this board" in second.variant_reason
    assert "cached for this board" in caplog.text

    # another thread count is another board key: measured again
    PoseEstimator(num_threads=2, tracking=False, models_dir=int8_dir)
    assert len(calls) == 2
    assert len(json.loads(cache.read_text())["choices"]) == 2

    # so is another instruction set behind the same model name (a VM moved to another host)
    assert entry["board"]["isa"] == board.cpu_isa()
    monkeypatch.setattr(variants, "cpu_isa", lambda: "znver5 avx2 fma avx512f avx512_vnni")
    PoseEstimator(num_threads=1, tracking=False, models_dir=int8_dir)
    assert len(calls) == 3


def test_auto_uses_a_cached_choice(int8_dir, monkeypatch):
    """Whatever the cache says for this board is used as is (here the slower-looking int8)."""
    monkeypatch.setattr(variants, "measure", lambda e, s: {"float": 5.0, "int8": 9.0})
    assert PoseEstimator(num_threads=1, tracking=False, models_dir=int8_dir).variant == "float"
    cache = variants.cache_dir() / variants.CACHE_NAME
    data = json.loads(cache.read_text())
    for entry in data["choices"].values():
        entry["variant"] = "int8"
    cache.write_text(json.dumps(data))
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    assert PoseEstimator(num_threads=1, tracking=False, models_dir=int8_dir).variant == "int8"


def test_auto_picks_the_faster_and_survives_an_unwritable_cache(int8_dir, monkeypatch, caplog):
    blocker = int8_dir.parent / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("CACHE_DIRECTORY", str(blocker / "sub"))
    monkeypatch.setattr(variants, "measure", lambda e, s: {"float": 9.5, "int8": 5.1})
    with caplog.at_level(logging.WARNING, logger="edge.pose.variants"):
        est = PoseEstimator(tracking=False, models_dir=int8_dir)
    assert est.variant == "int8" and "not cached" in est.variant_reason
    assert "cannot cache the variant choice" in caplog.text


def test_auto_keeps_float_when_int8_is_within_noise(int8_dir, monkeypatch):
    monkeypatch.setattr(variants, "measure", lambda e, s: {"float": 5.0, "int8": 4.9})
    assert PoseEstimator(tracking=False, models_dir=int8_dir).variant == "float"


def test_variants_per_model():
    assert variants.variants("full") == {
        "float": ("pose_detection", "pose_landmark_full"),
        "int8": ("pose_detection", INT8),
        "fp16": ("pose_detection", "pose_landmark_full_fp16"),
    }
    assert variants.variants("lite")["int8"] == ("pose_detection", "pose_landmark_lite_int8")
    assert variants.variants("heavy") == {  # no int8 estimator is derived from heavy
        "float": ("pose_detection", "pose_landmark_heavy"),
        "fp16": ("pose_detection", "pose_landmark_heavy_fp16"),
    }


def test_model_and_variant_are_checked_before_loading(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'medium'; choose one of lite, full, heavy"):
        PoseEstimator(model="medium", models_dir=tmp_path)
    with pytest.raises(
        ValueError, match=r"no int8 estimator for model 'heavy' \(only for lite and"
    ):
        PoseEstimator(model="heavy", variant="int8", models_dir=tmp_path)


@pytest.mark.parametrize("model", ["lite", "heavy"])
def test_auto_for_lite_or_heavy_never_picks_full_int8(int8_dir, need_model, model, monkeypatch):
    need_model(model)
    shutil.copy(models.locate(f"pose_landmark_{model}"), int8_dir)
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    est = PoseEstimator(model=model, tracking=False, models_dir=int8_dir)
    assert est.model == model and est.variant == "float"
    assert est.model_files["estimator"] == int8_dir / f"pose_landmark_{model}.tflite"
    why = "absent" if model == "lite" else f"none for {model}"  # lite has an int8 of its own
    assert f"only verified variant (int8: {why}," in est.variant_reason


def test_a_missing_model_names_the_command_that_fetches_it(float_dir, capsys):
    with pytest.raises(models.ModelError, match="models fetch --model heavy"):
        PoseEstimator(model="heavy", models_dir=float_dir)
    assert main(["infer", "--model", "heavy", "--variant", "int8"]) == 2
    assert "--variant int8 exists for --model lite and full only" in capsys.readouterr().err


def test_cache_directory_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path}/a:{tmp_path}/b")
    assert variants.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert variants.cache_dir() == tmp_path / "x" / "blazepose-edge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert variants.cache_dir() == tmp_path / "home" / ".cache" / "blazepose-edge"


def test_measure_returns_a_median_per_model(int8_dir):
    est = PoseEstimator(variant="float", num_threads=1, tracking=False, models_dir=int8_dir)
    ms = variants.measure({"a": est.estimator.model, "b": est.detector.model}, 0.0)
    assert set(ms) == {"a", "b"} and all(v > 0 for v in ms.values())


def test_models_verify_reports_int8(int8_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(int8_dir))
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"ok {int8_dir / INT8}.tflite" in out and "accuracy gate passed" in out
    (int8_dir / f"{INT8}.tflite").unlink()
    (int8_dir / f"{INT8}.json").unlink()
    assert main(["models", "verify"]) == 0
    assert f"absent {int8_dir / INT8}.tflite" in capsys.readouterr().out
    shutil.copy(int8_dir / "pose_landmark_full.tflite", int8_dir / f"{INT8}.tflite")
    write_record(int8_dir, gate={"passed": False})
    assert main(["models", "verify"]) == 3
    assert "accuracy gate" in capsys.readouterr().err


def test_cli_rejects_an_unknown_variant(capsys):
    with pytest.raises(SystemExit) as info:
        main(["infer", "--variant", "int4"])
    assert info.value.code == 2
    assert "int4" in capsys.readouterr().err


def test_cpu_isa_names_the_core_and_its_int8_features(monkeypatch, tmp_path):
    isa = board.cpu_isa()
    assert isa.split()[0]  # LLVM's name for this core
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd asimdhp cpuid asimddp\n")
    real_path = board.Path
    monkeypatch.setattr(board, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert board.cpu_isa().split()[1:] == ["asimd", "asimdhp", "asimddp"]


def test_install_derived_copies_a_verified_model(int8_dir, tmp_path):
    target = tmp_path / "elsewhere"
    record = models.install_derived(INT8, int8_dir, target)
    assert (target / f"{INT8}.tflite").read_bytes() == (int8_dir / f"{INT8}.tflite").read_bytes()
    assert record == json.loads((int8_dir / f"{INT8}.json").read_text())
    assert sorted(p.name for p in target.iterdir()) == [f"{INT8}.json", f"{INT8}.tflite"]


def test_install_derived_refuses_what_fails_its_record(int8_dir, tmp_path):
    write_record(int8_dir, sha256="0" * 64)
    with pytest.raises(models.ModelError, match="fails its checksum"):
        models.install_derived(INT8, int8_dir, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


# --- the int8 detector -----------------------------------------------------------------------

DET8 = models.INT8_DETECTOR


def write_detector_record(directory, **changes):
    """A record for ``pose_detection_int8.tflite`` (a copy of the float detector) as
    ``quantize.py --model detector`` writes it after a passed gate."""
    path = directory / f"{DET8}.tflite"
    record = {
        "name": DET8,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": models.sha256_of(path),
        "source_sha256": models.specs()["pose_detection"].sha256,
        "recipe": "copy of float (test)",
        "gate": {
            "passed": True,
            "kind": "detector",
            "min_iou": 1.0,
            "mean_vs_float": 0.0,
            "worst_vs_float": 0.0,
            "tolerance": 0.03,
            "held_out": models.HELD_OUT_SOURCES,
        },  # fmt: skip
    }
    record.update(changes)
    (directory / f"{DET8}.json").write_text(json.dumps(record))
    return record


@pytest.fixture
def det8_dir(float_dir):
    """``float_dir`` plus an int8 detector (a copy of float) whose record says it passed."""
    shutil.copy(float_dir / "pose_detection.tflite", float_dir / f"{DET8}.tflite")
    write_detector_record(float_dir)
    return float_dir


def test_the_int8_detector_is_a_derived_model_verified_by_its_record(det8_dir):
    assert models.DERIVED[DET8] == "pose_detection"
    assert models.verify_derived(DET8, det8_dir)["gate"]["kind"] == "detector"
    write_detector_record(det8_dir, source_sha256=models.specs()["pose_landmark_full"].sha256)
    with pytest.raises(models.ModelError, match="derived from a different pose_detection.tflite"):
        models.verify_derived(DET8, det8_dir)
    assert "quantize.py --model detector --out" in models.derived_hint(DET8, det8_dir)
    assert "quantize.py --out" in models.derived_hint(INT8, det8_dir)


def test_auto_measures_the_detectors_once_and_takes_a_faster_gated_int8(det8_dir, monkeypatch):
    calls = []

    def fake(estimators, seconds):
        calls.append(sorted(estimators))
        return {"float": 5.0, "int8": 2.7}

    monkeypatch.setattr(variants, "measure", fake)
    est = PoseEstimator(num_threads=1, tracking=False, models_dir=det8_dir)
    assert est.variant == "float"  # no int8 estimator: nothing to measure for the estimator
    assert est.detector_variant == "int8" and "fastest measured" in est.detector_reason
    assert est.model_files["detector"] == det8_dir / f"{DET8}.tflite"
    again = PoseEstimator(num_threads=1, tracking=False, models_dir=det8_dir)
    assert again.detector_variant == "int8" and "cached for this board" in again.detector_reason
    assert calls == [["float", "int8"]]
    # float by name never uses it
    est = PoseEstimator("float", tracking=False, models_dir=det8_dir)
    assert est.detector_variant == "float" and est.detector_reason == "requested"
    assert est.model_files["detector"] == det8_dir / "pose_detection.tflite"


def test_auto_keeps_the_float_detector_when_int8_is_within_noise(det8_dir, monkeypatch):
    monkeypatch.setattr(variants, "measure", lambda e, s: {"float": 5.0, "int8": 4.9})
    est = PoseEstimator(num_threads=1, tracking=False, models_dir=det8_dir)
    assert est.detector_variant == "float" and "fastest measured" in est.detector_reason


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"gate": {"passed": False, "mean_vs_float": 0.11, "min_iou": 0.71}}, "unusable"),
        ({"gate": {"passed": True, "mean_vs_float": 0.0, "held_out": "test photos"}},
         "not gated on held-out sources"),
        ({"gate": {"passed": True, "mean_vs_float": 0.0}}, "not gated on held-out sources"),
        ({"sha256": "0" * 64}, "unusable"),
    ],
)  # fmt: skip
def test_a_detector_without_a_passed_held_out_gate_is_never_used(
    det8_dir, change, why, monkeypatch, caplog
):
    write_detector_record(det8_dir, **change)
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    with caplog.at_level(logging.WARNING, logger="edge.pose.variants"):
        auto = PoseEstimator(tracking=False, models_dir=det8_dir)
    assert auto.detector_variant == "float" and auto.detector_reason == f"int8 detector {why}"
    assert auto.model_files["detector"] == det8_dir / "pose_detection.tflite"
    assert "int8 detector left out" in caplog.text
    shutil.copy(det8_dir / "pose_landmark_full.tflite", det8_dir / f"{INT8}.tflite")
    write_record(det8_dir)
    by_name = PoseEstimator("int8", tracking=False, models_dir=det8_dir)
    assert by_name.variant == "int8" and by_name.detector_variant == "float"


def test_int8_by_name_takes_the_gated_int8_detector_without_measuring(det8_dir, monkeypatch):
    shutil.copy(det8_dir / "pose_landmark_full.tflite", det8_dir / f"{INT8}.tflite")
    write_record(det8_dir)
    monkeypatch.setattr(variants, "measure", lambda *a: pytest.fail("measured"))
    est = PoseEstimator("int8", tracking=False, models_dir=det8_dir)
    assert est.detector_variant == "int8"
    assert est.model_files == {"detector": det8_dir / f"{DET8}.tflite",
                               "estimator": det8_dir / f"{INT8}.tflite"}  # fmt: skip


def test_models_verify_reports_the_int8_detector(det8_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(det8_dir))
    assert main(["models", "verify"]) == 0
    assert f"ok {det8_dir / DET8}.tflite" in capsys.readouterr().out
    write_detector_record(det8_dir, gate={"passed": False})
    assert main(["models", "verify"]) == 3


def test_fallback_share_counts_the_estimates_handed_to_float(int8_dir):
    import cv2

    from edge.service.media import DEMO_CLIP

    est = PoseEstimator(variant="int8", models_dir=int8_dir)
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [capture.read()[1] for _ in range(6)]
    capture.release()
    for i, frame in enumerate(frames[:3]):
        assert len(est.process(frame, timestamp_ms=i * 33)) == 1
    assert est.fallback_share == 0.0  # the person is clear: int8 decides alone
    est.estimator.band = (0.0, 1.0)  # every flag inside: every estimate handed over
    for i, frame in enumerate(frames[3:], start=3):
        assert len(est.process(frame, timestamp_ms=i * 33)) == 1
    assert est.fallback_share == pytest.approx(0.5)
    est.reset_counters()
    assert est.fallback_share == 0.0
    assert PoseEstimator(variant="float", models_dir=int8_dir).fallback_share == 0.0
