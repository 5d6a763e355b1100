"""models/quantize.py: the parts that run without the quantizer (graph preparation, recipes).

Building and gating a real int8 model needs ai-edge-quantizer in its own venv and about a minute
(``./install.sh --int8``); the loader side of that model is tested in test_variants.py.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def quantize():
    spec = importlib.util.spec_from_file_location("quantize", ROOT / "models" / "quantize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared(quantize, models_ready):
    from edge.pose.models import locate

    return quantize.prepare_float(locate("pose_landmark_full").read_bytes())


def test_prepared_float_graph_gives_the_shipped_outputs(prepared, tmp_path):
    """fp16 constants folded to fp32, segmentation head cut: the four kept outputs are the same
    bits as the shipped model's on a real-looking input."""
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.models import locate

    path = tmp_path / "prepared.tflite"
    path.write_bytes(prepared)
    shipped = LandmarkModel(locate("pose_landmark_full"), 1).model
    mine = LandmarkModel(path, 1).model
    x = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    for m in (shipped, mine):
        m.input_view()[:] = x
        m.invoke()
    for role in ("landmarks", "flag", "heatmap", "world"):
        assert np.array_equal(shipped.output(role), mine.output(role)), role


def test_stem_and_regression_recipe_names_exactly_those_ops(quantize, prepared):
    table = quantize.op_table(prepared)
    regexes = quantize._op_range_regexes("a8w8-stem-reg", prepared)
    wanted = [i for lo, hi, _ in quantize.FLOAT_OP_RANGES["a8w8-stem-reg"] for i in range(lo, hi)]
    assert len(regexes) == len(wanted)
    # the quantizer matches re.search(regex, "<output tensor name>;") per op
    hits = [i for i, _, name in table if any(re.search(r, name + ";") for r in regexes)]
    assert hits == wanted
    kinds = {table[i][1] for i in wanted}
    assert kinds <= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D"}
    # the regression branch ends at the ADD that feeds the three heads
    assert table[wanted[-1]][1] == "ADD"
    assert table[wanted[-1] + 1][2] != table[wanted[-1]][2]


def test_mid_recipe_keeps_the_64_and_32_stages_float_too(quantize, prepared):
    table = quantize.op_table(prepared)
    stem_reg = set(quantize._op_range_regexes("a8w8-stem-reg", prepared))
    mid = quantize._op_range_regexes("a8w8-mid", prepared)
    hits = [i for i, _, name in table if any(re.search(r, name + ";") for r in mid)]
    assert hits == [*range(1, 25), *range(76, 113)]
    assert stem_reg < set(mid)


def test_recipe_keeps_io_float_and_the_listed_ops(quantize, prepared):
    recipe = quantize.build_recipe("a8w8-stem-reg", ["extra_op"], prepared)
    assert recipe[0]["regex"] == ".*" and recipe[0]["algorithm_key"] == "min_max_uniform_quantize"
    floats = [r["regex"] for r in recipe if r["algorithm_key"] == "no_quantize"]
    assert "extra_op" in floats
    assert {r["operation"] for r in recipe[-2:]} == {"INPUT", "OUTPUT"}


def test_recipe_refuses_another_graph(quantize, prepared):
    """The op ranges belong to the pinned model: a different graph is refused, not mis-quantized."""
    other = quantize.prepare_float(prepared, keep_outputs={"Identity_1": "flag"})
    with pytest.raises(quantize.BuildError, match="not the pinned one"):
        quantize._op_range_regexes("a8w8-stem-reg", other)


def test_prepared_detector_densified_gives_the_shipped_outputs(quantize, models_ready, tmp_path):
    """The detector stores sparse fp16 weights (38 DENSIFY + DEQUANTIZE pairs): densified to fp32
    constants, its outputs are the same bits."""
    from edge.pose.detector import Detector
    from edge.pose.models import locate

    shipped_bytes = locate("pose_detection").read_bytes()
    prepared = quantize.prepare_float(
        shipped_bytes, keep_outputs={"Identity": "boxes", "Identity_1": "scores"}
    )
    kinds = [kind for _, kind, _ in quantize.op_table(prepared)]
    assert "DENSIFY" not in kinds and "DEQUANTIZE" not in kinds
    path = tmp_path / "detector.tflite"
    path.write_bytes(prepared)
    shipped, mine = Detector(locate("pose_detection"), 1).model, Detector(path, 1).model
    x = np.random.default_rng(1).uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    for m in (shipped, mine):
        m.input_view()[:] = x
        m.invoke()
    for role in ("boxes", "scores"):
        assert np.array_equal(shipped.output(role), mine.output(role)), role


def test_head_bias_correction_removes_a_constant_shift(quantize, prepared, tmp_path):
    """Shift the float heads' biases (landmarks +2 px, world +1 cm, flag logit +1): the
    correction, measured against the shipped model on a few crops, puts the outputs back."""
    from ai_edge_litert import schema_py_generated as schema

    from edge.pose.landmarks import LandmarkModel

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(prepared, 0))
    sg = m.subgraphs[0]
    offsets = {"convld_3d": 2.0, "convworld_3d": 0.01, "conv_poseflag": 1.0}
    for op in sg.operators:
        name = sg.tensors[op.outputs[0]].name.decode()
        key = next((k for k in offsets if k in name), None)
        if key and len(op.inputs) > 2:
            bias_t = sg.tensors[op.inputs[2]]
            bias = np.frombuffer(bytes(bytearray(m.buffers[bias_t.buffer].data)), np.float32)
            shifted = (bias + np.float32(offsets[key])).astype(np.float32)
            m.buffers[bias_t.buffer].data = np.frombuffer(shifted.tobytes(), np.uint8)
    broken = quantize._pack(m)
    crops = np.random.default_rng(2).integers(0, 256, (4, 256, 256, 3), dtype=np.uint8)
    fixed = quantize.correct_head_biases(broken, crops, log=lambda _: None)

    outputs = {}
    for label, data in (("prepared", prepared), ("broken", broken), ("fixed", fixed)):
        path = tmp_path / f"{label}.tflite"
        path.write_bytes(data)
        model = LandmarkModel(path, 1).model
        model.input_view()[:] = crops[0].astype(np.float32) / 255
        model.invoke()
        outputs[label] = {r: model.output(r).copy() for r in ("landmarks", "world", "flag")}
    want, broke, got = outputs["prepared"], outputs["broken"], outputs["fixed"]
    assert np.abs(broke["landmarks"] - want["landmarks"]).max() > 1.9  # the shift took effect
    np.testing.assert_allclose(got["landmarks"], want["landmarks"], atol=1e-3)
    np.testing.assert_allclose(got["world"], want["world"], atol=1e-5)
    np.testing.assert_allclose(got["flag"], want["flag"], atol=1e-5)


def test_footage_files_finds_videos_and_photos_and_names_what_is_wrong(quantize, tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/clip.MP4", "a/b.jpg", "notes.txt", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    videos, images = quantize.footage_files([tmp_path])
    assert [p.name for p in videos] == ["clip.MP4"]
    assert sorted(p.name for p in images) == ["b.jpg", "c.png"]
    with pytest.raises(quantize.BuildError, match="does not exist"):
        quantize.footage_files([tmp_path / "missing"])
    with pytest.raises(quantize.BuildError, match="no video"):
        quantize.footage_files([tmp_path / "notes.txt"])


def test_collect_footage_holds_out_the_end_of_each_video(quantize, media, models_ready):
    """Calibration crops come from the first 80 % of a video, gate frames from its last 20 %."""
    video = media / "video" / "synthetic_arms_up_tfjs.mp4"  # 120 frames
    crops, held = quantize.collect_footage([video], per_video=20, log=lambda *a: None)
    assert crops.dtype == np.uint8 and crops.shape[1:] == (256, 256, 3) and len(crops) >= 15
    indices = [int(name.split("#")[1]) for name, _ in held]
    assert len(held) == quantize.HELD_OUT_PER_VIDEO and min(indices) >= 96
    assert all(frame.ndim == 3 for _, frame in held)


def test_gate_on_your_footage(quantize, media, built_int8):
    """The int8 model ``./install.sh --int8`` built, judged on held-out frames of other footage
    (no MediaPipe reference there: against float only)."""
    from edge.pose.models import locate

    videos = [media / "video" / "synthetic_arms_up_tfjs.mp4",
              media / "video" / "two_people_hug_1080p_mmaction2.mp4"]  # fmt: skip
    _, held = quantize.collect_footage(videos, per_video=10, log=lambda *a: None)
    s = quantize.evaluate_frames(locate("pose_landmark_full_int8", built_int8), held)["summary"]
    assert s["compared"] >= quantize.MIN_HELD_OUT and not s["presence_mismatch"]
    assert s["mean_vs_float"] <= 0.03 and s["worst_vs_float"][0] <= 0.10
    assert s["mean_vs_mp"] is None  # no reference for your footage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "bogus"], "--recipe bogus: one of"),
        (["--per-video", "0"], "--per-video must be >= 1"),
        (["--tolerance", "nan"], "--tolerance must be a positive share"),
        (["--qat-epochs", "-1"], "--qat-epochs must be >= 0"),
        (["--update", "percentile:20"], "--update percentile:20: minmax, ema or percentile"),
        (["--update", "median"], "--update median: minmax, ema or percentile"),
        (["--augment", "flip,blur"], "--augment blur: one of flip, light, scale, lowres"),
        (["--rounding-crops", "0"], "--rounding-crops must be >= 1"),
        (["--qat-lr", "0"], "--qat-lr must be a positive number"),
        (["--model", "detector", "--rounding", "gptq"], "--rounding gptq is for the landmark"),
    ],
)
def test_bad_arguments_exit_2_at_once(quantize, args, message, capsys, tmp_path):
    """Before any crop is collected, and never 1 (which install.sh reads as a gate refusal)."""
    assert quantize.main(["--out", str(tmp_path / "x.tflite"), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_inputs_exit_2_not_1(quantize, capsys, tmp_path, monkeypatch):
    assert quantize.main(["--evaluate", str(tmp_path / "nope.tflite")]) == 2
    assert "could not load" in capsys.readouterr().err
    monkeypatch.setenv("BLAZEPOSE_EDGE_MODELS", str(tmp_path))  # the float model is looked for here
    assert quantize.main(["--out", str(tmp_path / "x.tflite")]) == 2
    assert "pose_landmark_full.tflite is missing" in capsys.readouterr().err


def test_media_split_is_by_source_and_calibrates_on_licence_clean_ones_only(quantize, media):
    """Every test-media file belongs to one source; calibration takes the licence-clean sources
    and the gate all the others, so no person, camera or scene is on both sides."""
    split = quantize.media_split(media)
    calibration = {p for files in split["calibration"].values() for p in files}
    held_out = {p for files in split["held_out"].values() for p in files}
    assert calibration and held_out and not calibration & held_out
    assert "unlisted" not in split["held_out"], split["held_out"].get("unlisted")
    for source in split["calibration"]:
        licence, clean, _ = quantize.MEDIA_SOURCES[source]
        assert clean and licence in ("Apache-2.0", "CC-BY-4.0", "Pixabay licence")
    names = {p.name for p in calibration}
    assert "street.avi" not in names and "yoga.jpg" not in names  # openpose, geaxgx: held out
    assert not any(n.startswith("COCO_") for n in names)
    assert not any("annotated" in p.parts for p in calibration)
    assert "synthetic_arms_up_tfjs.mp4" in names  # tfjs-models, Apache-2.0


def test_unlisted_media_files_are_held_out(quantize, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "video").mkdir()
    (tmp_path / "images" / "new_photo.jpg").write_bytes(b"")
    (tmp_path / "video" / "synthetic_arms_up_tfjs.mp4").write_bytes(b"")
    split = quantize.media_split(tmp_path)
    assert [p.name for p in split["held_out"]["unlisted"]] == ["new_photo.jpg"]
    assert [p.name for p in split["calibration"]["tensorflow/tfjs-models"]] == [
        "synthetic_arms_up_tfjs.mp4"
    ]


def test_augment_adds_one_transformed_copy_per_kind(quantize):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, 256, 256, 3), dtype=np.uint8)
    out = quantize.augment(crops, ["flip", "light", "scale", "lowres"])
    assert out.shape == (15, 256, 256, 3) and out.dtype == np.uint8
    as_set = {c.tobytes() for c in out}
    assert all(c.tobytes() in as_set for c in crops)  # the originals are kept
    assert all(c[:, ::-1].tobytes() in as_set for c in crops)  # and mirrored
    with pytest.raises(quantize.BuildError, match="--augment blur"):
        quantize.augment(crops, ["blur"])


def test_percentile_ranges_drop_outlying_crops_and_keep_zero(quantize):
    qsv = None
    for i in range(1000):  # per-crop extremes of one tensor: 999 ordinary crops, one outlier
        top = 100.0 if i == 500 else 6.0
        qsv = quantize._collect_extremes(qsv, {"min": np.array([0.5]), "max": np.array([top])})
    assert qsv["max"][0] == 100.0  # min/max would take the outlier
    ranges = quantize.percentile_ranges({"t": qsv, "w": {"min": -1.0, "max": 1.0}}, 99.0)
    assert ranges["t"]["max"][0] == pytest.approx(6.0)
    assert ranges["t"]["min"][0] == 0.0  # the grid keeps 0 exactly
    assert ranges["w"] == {"min": -1.0, "max": 1.0}  # without per-crop extremes: unchanged


def test_a_candidate_that_passes_is_written_with_a_record_naming_its_gate(
    quantize, media, models_ready, tmp_path, monkeypatch
):
    """The whole build path minus the quantizer: the prepared float graph stands in for the
    candidate (it passes any gate), judged on a held-out photo and one of the calibration side."""
    import cv2

    from edge.pose import models

    frames = [(f"images/{n}", cv2.imread(str(media / "images" / n)))
              for n in ("yoga.jpg", "standing_businessman_pixabay.jpeg")]  # fmt: skip
    crops = np.zeros((2, 256, 256, 3), np.uint8)
    monkeypatch.setattr(
        quantize, "collect_by_source", lambda *a, **k: (crops, frames[1:], frames[:1])
    )
    monkeypatch.setattr(quantize, "quantize", lambda float_model, *a, **k: float_model)
    out = tmp_path / "pose_landmark_full_int8.tflite"
    assert quantize.main(["--out", str(out), "--update", "percentile:99.9"]) == 0
    record = models.verify_derived("pose_landmark_full_int8", tmp_path)
    gate = record["gate"]
    assert gate["held_out"] == models.HELD_OUT_SOURCES and gate["passed"] is True
    assert gate["frames"] == 1 and gate["mean_vs_float"] == 0.0 and gate["worst_vs_float"] == 0.0
    assert gate["mean_vs_mediapipe"] < 0.01  # yoga.jpg has MediaPipe's reference
    assert any("openpose" in source for source in gate["sources"])
    side = record["calibration"]["side"]
    assert side["frames"] == 1 and side["mean_vs_float"] == 0.0
    assert "percentile:99.9" in record["recipe"]
    # and --if-missing keeps it, a model gated the older way is built again
    assert quantize.main(["--out", str(out), "--if-missing"]) == 0
    record["gate"]["held_out"] = "test photos"
    (tmp_path / "pose_landmark_full_int8.json").write_text(__import__("json").dumps(record))
    assert quantize.main(["--out", str(out), "--if-missing"]) == 0
    assert models.verify_derived("pose_landmark_full_int8", tmp_path)["gate"]["held_out"] == (
        models.HELD_OUT_SOURCES
    )


def test_quantizer_progress_bars_are_hidden(tmp_path):
    """ai-edge-quantizer's bars ignore TQDM_DISABLE; ``_quiet_progress_bars`` hides them (they
    filled install.sh's log). Runs in the quantizer venv that ``./install.sh --int8`` makes."""
    import subprocess
    from pathlib import Path

    # install.sh's default place (the tests' own XDG_CACHE_HOME is a temporary folder)
    python = Path.home() / ".cache" / "blazepose-edge" / "quantizer-venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("no quantizer venv (./install.sh --int8 makes it)")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('q', {str(ROOT / 'models' / 'quantize.py')!r})\n"
        "q = importlib.util.module_from_spec(spec); spec.loader.exec_module(q)\n"
        "from ai_edge_quantizer.utils import progress_utils\n"
        "if len(sys.argv) > 1: q._quiet_progress_bars()\n"
        "with progress_utils.ProgressBar(1000, description='Running Calibration:') as bar:\n"
        "    for _ in range(1000): bar.update_single_step()\n"
    )
    shown = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    hidden = subprocess.run([python, "-c", code, "quiet"], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert "Running Calibration" in shown.stderr  # the bar this hides is real
    assert hidden.returncode == 0 and hidden.stderr == "", hidden.stderr


# --- the int8 detector (--model detector) and lite (--model lite) ----------------------------


def test_match_detections_pairs_people_one_to_one(quantize):
    """The detector gate's matching: the most overlapping pair first, one to one; boxes
    overlapping by MATCH_IOU or less are different people."""
    a = [np.array([0, 0, 10, 10.0]), np.array([20, 0, 30, 10.0]), np.array([50, 50, 60, 60.0])]
    b = [np.array([21, 0, 31, 10.0]), np.array([0, 0, 10, 11.0]), np.array([56, 56, 66, 66.0])]
    matched, lost, new = quantize.match_detections(a, b)
    assert [(i, j) for i, j, _ in matched] == [(0, 1), (1, 0)]
    assert matched[0][2] == pytest.approx(100 / 110)  # 0.909: a box 10 % taller
    assert matched[1][2] == pytest.approx(90 / 110)  # shifted by a tenth of its width
    assert lost == [2] and new == [2]  # IoU 16/184 = 0.09: another person
    assert quantize.box_iou(a[0], a[0]) == 1.0 and quantize.box_iou(a[0], a[2]) == 0.0
    # two candidates for one box: the better overlap takes it, the other is a person found twice
    matched, lost, new = quantize.match_detections(a[:1], [b[1], a[0]])
    assert [(i, j) for i, j, _ in matched] == [(0, 1)] and lost == [] and new == [0]


def _summary(**changes):
    s = {"compared": 10, "people_mismatch": [], "min_iou": (0.95, "x.jpg"),
         "mean_vs_float": 0.01, "worst_vs_float": (0.05, "x.jpg"), "presence_mismatch": []}  # fmt: skip
    s.update(changes)
    return s


@pytest.mark.parametrize(
    ("changes", "passes"),
    [
        ({}, True),
        ({"min_iou": None}, True),  # no person in any frame: only the landmark figures count
        ({"min_iou": (0.899, "street.avi#40")}, False),
        ({"people_mismatch": ["COCO_1.jpg"]}, False),
        ({"mean_vs_float": 0.031}, False),
        ({"worst_vs_float": (0.101, "y.jpg")}, False),
        ({"presence_mismatch": ["y.jpg"]}, False),
        ({"compared": 0}, False),
    ],
)
def test_detector_gate(quantize, changes, passes):
    assert quantize.detector_gate_passes(_summary(**changes), 0.03, 0.10) is passes


def test_detector_recipes_name_the_stem_and_heads(quantize, models_ready):
    from edge.pose.models import locate

    prepared = quantize.prepare_float(
        locate("pose_detection").read_bytes(), quantize.DETECTOR_OUTPUTS
    )
    table = quantize.op_table(prepared)
    assert len(table) == 109
    regexes = quantize._op_range_regexes("a8w8-stem-heads", prepared, "detector")
    hits = [i for i, _, name in table if any(re.search(r, name + ";") for r in regexes)]
    assert hits == [*range(1, 5), *range(86, 109)]
    assert {table[i][2] for i in (104, 108)} == {"Identity", "Identity_1"}  # the outputs
    recipe = quantize.build_recipe("a8w8-heads", [], prepared, "detector")
    assert {r["operation"] for r in recipe[-2:]} == {"INPUT", "OUTPUT"}  # float32 in and out
    with pytest.raises(quantize.BuildError, match="not the pinned one"):  # the estimator's graph
        quantize._op_range_regexes("a8w8-heads", quantize.prepare_float(
            locate("pose_landmark_full").read_bytes()), "detector")  # fmt: skip


def test_lite_recipes_keep_the_same_stages_float(quantize, need_model):
    """Lite has full's layout up to the heatmap conv and a shorter regression branch."""
    from edge.pose.models import locate

    need_model("lite")
    prepared = quantize.prepare_float(locate("pose_landmark_lite").read_bytes())
    table = quantize.op_table(prepared)
    mid = quantize._op_range_regexes("a8w8-mid-dec", prepared, "lite")
    hits = [i for i, _, name in table if any(re.search(r, name + ";") for r in mid)]
    assert hits == [*range(1, 25), *range(69, 75), *range(76, 101)]
    assert table[100][1] == "ADD" and "convld_3d" in table[101][2]  # the branch feeds the heads
    with pytest.raises(quantize.BuildError, match="not the pinned one"):  # full's op ranges
        quantize._op_range_regexes("a8w8-mid", prepared, "full")


def test_detector_input_is_what_the_pipeline_feeds(quantize, media, models_ready):
    """The stored uint8 calibration input is the detector's letterboxed input to a grey level."""
    import cv2

    from edge.pose.detector import Detector
    from edge.pose.models import locate

    detector = Detector(locate("pose_detection"), 1)
    frame = cv2.imread(str(media / "images" / "yoga.jpg"))
    stored = quantize.detector_input(detector, frame)
    assert stored.shape == (224, 224, 3) and stored.dtype == np.uint8
    fed = detector.model.input_view().copy()
    scale, offset = quantize.INPUT_RANGES["detector"]
    assert np.abs(stored * np.float32(scale) + np.float32(offset) - fed).max() <= 1.0 / 255 + 1e-6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "detector", "--recipe", "a8w8-mid"], "--recipe a8w8-mid: one of a8w8, "),
        (["--model", "lite", "--qat-epochs", "2"], "for --model full only"),
        (["--model", "detector", "--footage", "x.mp4"], "--footage is for the landmark models"),
    ],
)
def test_bad_model_arguments_exit_2(quantize, args, message, capsys, tmp_path):
    assert quantize.main(["--out", str(tmp_path / "x.tflite"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_detector_that_passes_is_written_with_its_record(
    quantize, media, models_ready, tmp_path, monkeypatch
):
    """The detector's build path minus the quantizer: the prepared float detector stands in for
    the candidate (the same people, IoU 1, the same landmarks), judged on two held-out photos; the
    record verifies as a derived model gated on held-out sources."""
    import cv2

    from edge.pose import models

    frames = [(f"images/{n}", cv2.imread(str(media / "images" / n)))
              for n in ("yoga.jpg", "three_dancers_tfpose.png", "standing_businessman_pixabay.jpeg")]  # fmt: skip
    inputs = np.zeros((2, 224, 224, 3), np.uint8)
    monkeypatch.setattr(
        quantize, "collect_detector_inputs", lambda *a, **k: (inputs, frames[2:], frames[:2])
    )
    seen = {}

    def fake_quantize(float_model, crops, recipe, *a, kind="landmark", **k):
        seen["kind"], seen["recipe"] = kind, recipe
        return float_model

    monkeypatch.setattr(quantize, "quantize", fake_quantize)
    out = tmp_path / "pose_detection_int8.tflite"
    assert quantize.main(["--model", "detector", "--out", str(out)]) == 0
    assert seen["kind"] == "detector"
    assert any(r["algorithm_key"] == "no_quantize" and "classifier_person_8" in r["regex"]
               for r in seen["recipe"])  # the default recipe keeps the heads float  # fmt: skip
    record = models.verify_derived("pose_detection_int8", tmp_path)
    gate = record["gate"]
    assert gate["passed"] is True and gate["held_out"] == models.HELD_OUT_SOURCES
    assert gate["kind"] == "detector" and gate["min_iou"] == 1.0
    assert gate["detections"] == 2 and gate["people_mismatch"] == []
    assert gate["mean_vs_float"] == 0.0 and gate["mean_vs_mediapipe"] < 0.01
    assert record["calibration"]["side"]["frames"] == 1


def test_lite_is_judged_against_float_lite_and_mediapipe_lite(
    quantize, media, need_model, tmp_path, monkeypatch, capsys
):
    """--model lite: the crops come from the lite pipeline, the gate compares with float lite and
    MediaPipe's lite reference (float lite vs full's reference would be percents off)."""
    import json

    import cv2

    need_model("lite")
    frames = [(f"images/{n}", cv2.imread(str(media / "images" / n)))
              for n in ("yoga.jpg", "standing_businessman_pixabay.jpeg")]  # fmt: skip
    seen = {}

    def fake_collect(media, per_video, log=print, model="full"):
        seen["model"] = model
        return np.zeros((2, 256, 256, 3), np.uint8), frames[1:], frames[:1]

    monkeypatch.setattr(quantize, "collect_by_source", fake_collect)
    monkeypatch.setattr(quantize, "quantize", lambda float_model, *a, **k: float_model)
    out = tmp_path / "pose_landmark_lite_int8.tflite"
    assert quantize.main(["--model", "lite", "--out", str(out), "--recipe", "a8w8-mid-dec"]) == 0
    assert seen["model"] == "lite"
    assert "is not a derived model" not in capsys.readouterr().out  # the pipeline loads lite's
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["gate"]["mean_vs_float"] == 0.0 and record["gate"]["mean_vs_mediapipe"] < 0.01
    from edge.pose.models import locate, sha256_of

    assert record["source_sha256"] == sha256_of(locate("pose_landmark_lite"))


def test_float_detectors_own_noise_floor(quantize, media, models_ready):
    """Without a candidate, the float detector on its input moved by +-1 grey level stands in:
    the same person, a box that moves a little (a scale for the gate's IoU)."""
    import cv2

    frames = [("images/yoga.jpg", cv2.imread(str(media / "images" / "yoga.jpg")))]
    still = quantize.evaluate_detector(None, frames, noise=0)["summary"]  # input rounded only
    assert still["min_iou"][0] > 0.999 and still["mean_vs_float"] < 0.001
    moved = quantize.evaluate_detector(None, frames, noise=1)["summary"]
    assert moved["matched"] == 1 and not moved["people_mismatch"]
    assert 0.5 < moved["min_iou"][0] < 1.0
