import sys
import types

import numpy as np
import pytest

from edge.pose import runtime
from edge.pose.models import ModelError, locate


def fake_backend(monkeypatch, name, interpreter):
    pkg = types.ModuleType(name)
    mod = types.ModuleType(f"{name}.interpreter")
    mod.Interpreter = interpreter
    monkeypatch.setitem(sys.modules, name, pkg)
    monkeypatch.setitem(sys.modules, f"{name}.interpreter", mod)


def test_litert_is_preferred(monkeypatch):
    class A: ...

    class B: ...

    fake_backend(monkeypatch, "ai_edge_litert", A)
    fake_backend(monkeypatch, "tflite_runtime", B)
    assert runtime.interpreter_class() == ("ai_edge_litert", A)


def test_falls_back_to_tflite_runtime(monkeypatch):
    class B: ...

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import fails
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    fake_backend(monkeypatch, "tflite_runtime", B)
    assert runtime.interpreter_class() == ("tflite_runtime", B)


def test_no_backend_says_what_to_install(monkeypatch):
    for name in ("ai_edge_litert", "tflite_runtime"):
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, f"{name}.interpreter", None)
    with pytest.raises(ModelError, match="pip install ai-edge-litert"):
        runtime.interpreter_class()


def test_interpreter_that_fails_to_build_is_a_model_error(monkeypatch, models_ready):
    class Broken:
        def __init__(self, **kwargs):
            raise SystemError("_ARRAY_API not found")

    fake_backend(monkeypatch, "tflite_runtime", Broken)
    with pytest.raises(ModelError, match="could not load.*numpy 2"):
        runtime.Model(locate("pose_detection"), {}, backend="tflite_runtime")


def test_outputs_found_by_shape_and_threads_passed(models_ready):
    model = runtime.Model(
        locate("pose_detection"), {"scores": (1, 2254, 1), "boxes": (1, 2254, 12)}, num_threads=1
    )
    assert model.num_threads == 1 and model.backend == "ai_edge_litert"
    view = model.input_view()
    assert view.shape == (224, 224, 3)
    view[:] = 0
    del view
    model.invoke()
    assert model.output("boxes").shape == (2254, 12)
    assert np.isfinite(model.output("scores")).all()
    in_place = model.output_view("boxes")
    np.testing.assert_array_equal(in_place, model.output("boxes"))
    with pytest.raises(RuntimeError):  # the interpreter will not overwrite a live view
        model.invoke()
    del in_place
    model.invoke()


def test_wrong_model_for_role_is_refused(models_ready):
    with pytest.raises(ModelError, match="right model file"):
        runtime.Model(locate("pose_detection"), {"landmarks": (1, 195)})


def test_default_threads_capped_at_four():
    assert 1 <= runtime.default_threads() <= 4


@pytest.mark.parametrize("name", ["lite", "full", "heavy"])
def test_pruned_estimator_gives_identical_outputs(models_ready, need_model, name):
    """The three landmark models have the same input and outputs (found by shape), and each
    pruned graph gives the very same values."""
    from edge.pose.landmarks import LandmarkModel

    need_model(name)
    path = locate(f"pose_landmark_{name}")
    roles = ("landmarks", "flag", "heatmap", "world")
    full = runtime.Model(path, LandmarkModel.OUTPUTS, num_threads=1)
    assert full.input.shape == (1, 256, 256, 3) and set(full.outputs) == set(LandmarkModel.OUTPUTS)
    pruned = runtime.Model(path, LandmarkModel.OUTPUTS, num_threads=1, prune_to=roles)
    assert pruned.pruned and "segmentation" not in pruned.outputs
    x = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    for model in (full, pruned):
        view = model.input_view()
        view[:] = x
        del view
        model.invoke()
    for role in roles:
        np.testing.assert_array_equal(full.output(role), pruned.output(role))
