from pathlib import Path

import pytest

from edge.pose import models


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
        models.specs(models.load_manifest(tmp_path / "manifest.json"))


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(models.ModelError, match=r"pose_detection\.tflite is missing.*models fetch"):
        models.locate("pose_detection", tmp_path)


def test_corrupted_file_fails_checksum(tmp_path, models_ready):
    good = models.locate("pose_detection")
    data = bytearray(good.read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / good.name).write_bytes(bytes(data))
    with pytest.raises(models.ModelError, match="fails its checksum"):
        models.locate("pose_detection", tmp_path)


def test_truncated_file_is_reported(tmp_path, models_ready):
    good = models.locate("pose_detection")
    (tmp_path / good.name).write_bytes(good.read_bytes()[:1000])
    with pytest.raises(models.ModelError, match="truncated"):
        models.locate("pose_detection", tmp_path)


def test_fetch_is_idempotent_when_files_are_good(models_ready, capsys):
    paths = models.fetch()
    assert all(p.is_file() for p in paths)
    assert "ok" in capsys.readouterr().err


def test_unknown_model_name(tmp_path):
    with pytest.raises(models.ModelError, match="unknown model"):
        models.locate("nope", tmp_path)


def test_environment_variable_selects_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path))
    assert models.models_dir() == tmp_path


def test_default_directory_is_per_user_or_the_services(tmp_path, monkeypatch):
    monkeypatch.delenv(models.ENV_MODELS_DIR, raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert models.models_dir() == tmp_path / "data" / "blazepose-edge" / "models"
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    assert models.models_dir() == tmp_path / "state" / "models"  # systemd's StateDirectory=


def test_manifest_is_package_data():
    """A non-editable install carries the manifest inside the package, not beside a checkout."""
    assert models.MANIFEST_PATH.parent == Path(models.__file__).resolve().parent
    assert models.MANIFEST_PATH.is_file()
