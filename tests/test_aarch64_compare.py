"""tools/aarch64/compare.py diff: which pairs of runs it compares, and the int8 run's limit."""

from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest

from edge.pose.fp16 import TOLERANCE
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location(
        "aarch64_compare", ROOT / "tools" / "aarch64" / "compare.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc(variant: str, landmarks: np.ndarray) -> dict:
    """The parts of a ``compare.py run`` document that ``diff`` reads for an int8 run."""
    return {
        "machine": "x86_64" if variant == "float" else "aarch64",
        "variant": variant,
        "image": "/media/images/person.jpg",
        "deterministic": True,
        "poses": [{"score": 0.99, "landmarks": landmarks.tolist()}],
    }


@pytest.fixture
def float_landmarks() -> np.ndarray:
    lm = np.zeros((33, 5))
    lm[:, 0] = np.linspace(100, 200, 33)
    lm[:, 1] = np.linspace(50, 350, 33)
    lm[11, :2], lm[12, :2] = (140, 100), (160, 100)  # shoulders
    lm[23, :2], lm[24, :2] = (140, 200), (160, 200)  # hips: a torso of 100 px
    return lm


def _diff(compare, tmp_path, ref: dict, other: dict) -> int:
    a, b = tmp_path / "ref.json", tmp_path / "other.json"
    a.write_text(json.dumps(ref))
    b.write_text(json.dumps(other))
    return compare.main(["diff", str(a), str(b)])


def test_int8_within_the_gate_limit_passes(compare, tmp_path, float_landmarks, capsys):
    moved = float_landmarks.copy()
    moved[:33, 0] += 100 * TOLERANCE["worst"] * 0.9  # every landmark 9 % of the torso away
    assert _diff(compare, tmp_path, _doc("float", float_landmarks), _doc("int8", moved)) == 0
    out = capsys.readouterr().out
    assert "mean 2D distance 9.000% of the torso" in out and "PASS" in out


def test_int8_beyond_the_gate_limit_fails(compare, tmp_path, float_landmarks, capsys):
    moved = float_landmarks.copy()
    moved[:33, 1] += 100 * TOLERANCE["worst"] * 1.1
    assert _diff(compare, tmp_path, _doc("float", float_landmarks), _doc("int8", moved)) == 1
    assert "FAIL" in capsys.readouterr().out


def test_int8_nan_pose_count_and_nondeterminism_fail(compare, tmp_path, float_landmarks):
    broken = float_landmarks.copy()
    broken[5, 0] = np.nan
    ref = _doc("float", float_landmarks)
    assert _diff(compare, tmp_path, ref, _doc("int8", broken)) == 1
    none = copy.deepcopy(_doc("int8", float_landmarks))
    none["poses"] = []
    assert _diff(compare, tmp_path, ref, none) == 1
    flaky = _doc("int8", float_landmarks)
    flaky["deterministic"] = False
    assert _diff(compare, tmp_path, ref, flaky) == 1
    assert _diff(compare, tmp_path, ref, _doc("int8", float_landmarks)) == 0


def test_only_float_against_float_or_int8(compare, tmp_path, float_landmarks, capsys):
    """An int8 reference (or two int8 runs) is refused: int8 differs by machine by design."""
    int8 = _doc("int8", float_landmarks)
    assert _diff(compare, tmp_path, int8, _doc("float", float_landmarks)) == 1
    assert _diff(compare, tmp_path, int8, int8) == 1
    assert "not compared" in capsys.readouterr().out
