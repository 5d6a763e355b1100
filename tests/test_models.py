import json
import shutil

import pytest

from edge import models


def test_manifest_lists_both_models():
    table = models.specs()
    assert set(table) == {"pose_detection", "pose_landmark_full"}
    for spec in table.values():
        assert len(spec.sha256) == 64 and spec.size > 0


@pytest.mark.parametrize(
    "text", ["{not json", '{"models": 3}', '{"models": {"pose_detection": {"size": 1}}}']
)
def test_malformed_manifest_is_a_model_error(tmp_path, text):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(models.ModelError, match="manifest"):
        models.specs(models.load_manifest(tmp_path))


def test_missing_file_names_it_and_the_fix(tmp_path):
    shutil.copy(models.REPO_MODELS_DIR / "manifest.json", tmp_path)
    with pytest.raises(models.ModelError, match=r"pose_detection\.tflite is missing.*models fetch"):
        models.locate("pose_detection", tmp_path)


def test_corrupted_file_fails_checksum(tmp_path, models_ready):
    shutil.copy(models.REPO_MODELS_DIR / "manifest.json", tmp_path)
    good = models.locate("pose_detection")
    data = bytearray(good.read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / good.name).write_bytes(bytes(data))
    with pytest.raises(models.ModelError, match="fails its checksum"):
        models.locate("pose_detection", tmp_path)


def test_truncated_file_is_reported(tmp_path, models_ready):
    shutil.copy(models.REPO_MODELS_DIR / "manifest.json", tmp_path)
    good = models.locate("pose_detection")
    (tmp_path / good.name).write_bytes(good.read_bytes()[:1000])
    with pytest.raises(models.ModelError, match="truncated"):
        models.locate("pose_detection", tmp_path)


def test_fetch_is_idempotent_when_files_are_good(models_ready, capsys):
    paths = models.fetch()
    assert all(p.is_file() for p in paths)
    assert "ok" in capsys.readouterr().err


def test_unknown_model_name(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"source": {}, "models": {}}))
    with pytest.raises(models.ModelError, match="unknown model"):
        models.locate("nope", tmp_path)


def test_environment_variable_selects_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path))
    assert models.models_dir() == tmp_path
