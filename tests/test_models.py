import base64
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from edge.pose import models


def test_manifest_lists_the_detector_and_three_landmark_models():
    table = models.specs()
    assert set(table) == {
        "pose_detection", "pose_landmark_lite", "pose_landmark_full", "pose_landmark_heavy"
    }  # fmt: skip
    for spec in table.values():
        assert len(spec.sha256) == 64 and spec.size > 0
    # the detector and full come from the MediaPipe wheel as before; lite and heavy from npm
    assert {n: s.source for n, s in table.items()} == {
        "pose_detection": "wheel", "pose_landmark_full": "wheel",
        "pose_landmark_lite": "npm", "pose_landmark_heavy": "npm",
    }  # fmt: skip
    npm = models.load_manifest()["sources"]["npm"]
    assert npm["url"].startswith("https://registry.npmjs.org/@mediapipe/pose/-/")
    assert npm["integrity"].startswith("sha512-") and npm["size"] > 0


def test_fetch_selection_defaults_and_named_models():
    names = lambda specs: {s.name for s in specs}  # noqa: E731
    assert names(models.selection()) == {
        "pose_detection",
        "pose_landmark_lite",
        "pose_landmark_full",
    }
    assert names(models.selection(["heavy"])) == {"pose_detection", "pose_landmark_heavy"}
    with pytest.raises(ValueError, match="lite, full, heavy"):
        models.selection(["medium"])


@pytest.mark.parametrize("model", ["lite", "heavy"])
def test_missing_optional_model_names_the_command_that_fetches_it(tmp_path, model):
    with pytest.raises(
        models.ModelError,
        match=rf"pose_landmark_{model}\.tflite is missing; run `blazepose-edge models fetch "
        rf"--model {model}`",
    ):
        models.locate(f"pose_landmark_{model}", tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"models": 3}',
        '{"models": {}}',  # no sources
        '{"sources": {}, "models": {"pose_detection": {"size": 1}}}',
    ],
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
    paths = models.fetch(models=["full"])
    assert [p.name for p in paths] == ["pose_detection.tflite", "pose_landmark_full.tflite"]
    assert all(p.is_file() for p in paths)
    assert "ok" in capsys.readouterr().err


def _fake_npm(tmp_path, monkeypatch, body_of=lambda data: data, integrity_of=None):
    """A manifest whose npm source is a small tarball served through ``models._urlopen``, with
    files for the detector and lite (and one that is not a model); returns (manifest, served
    URLs, the temporary folder fetch uses)."""
    files = {
        "package/pose_detection.tflite": b"detector" * 100,
        "package/pose_landmark_lite.tflite": b"lite" * 300,
        "package/pose.js": b"// not a model",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    tarball = buf.getvalue()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    url = "https://registry.example/@mediapipe/pose/-/pose-1.tgz"
    source = {"kind": "npm", "package": "@mediapipe/pose", "version": "1", "url": url,
              "integrity": integrity_of or f"sha512-{digest}", "size": len(tarball)}  # fmt: skip
    entry = lambda member: {  # noqa: E731
        "source": "npm", "file": member.split("/")[1], "member": member,
        "size": len(files[member]), "sha256": hashlib.sha256(files[member]).hexdigest(),
    }  # fmt: skip
    manifest = {
        "sources": {"npm": source},
        "models": {
            "pose_detection": {**entry("package/pose_detection.tflite"), "default": True},
            "pose_landmark_lite": entry("package/pose_landmark_lite.tflite"),
        },
    }
    served = []

    def urlopen(request, timeout):
        served.append(request.full_url)
        assert timeout > 0
        return io.BytesIO(body_of(tarball))

    monkeypatch.setattr(models, "_urlopen", urlopen)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    return manifest, served, scratch


def test_fetch_from_the_npm_tarball_extracts_only_what_is_asked(tmp_path, monkeypatch, capsys):
    manifest, served, scratch = _fake_npm(tmp_path, monkeypatch)
    out = tmp_path / "models"
    paths = models.fetch(out, models=["lite"], manifest=manifest)
    assert paths == [out / "pose_detection.tflite", out / "pose_landmark_lite.tflite"]
    assert sorted(os.listdir(out)) == ["pose_detection.tflite", "pose_landmark_lite.tflite"]
    assert served == [manifest["sources"]["npm"]["url"]]  # one download for both
    assert os.listdir(scratch) == []  # the tarball is deleted
    assert "npm registry" in capsys.readouterr().err
    # again: everything verifies, nothing is downloaded
    models.fetch(out, models=["lite"], manifest=manifest)
    assert len(served) == 1
    # by default, only the default models
    default_out = tmp_path / "default"
    models.fetch(default_out, manifest=manifest)
    assert os.listdir(default_out) == ["pose_detection.tflite"]


@pytest.mark.parametrize(
    ("body_of", "integrity", "match"),
    [
        (lambda data: data[:-10], None, "expected"),  # cut short
        (lambda data: data + b"x", None, "more than"),  # longer than pinned
        (lambda data: data, "sha512-" + base64.b64encode(b"0" * 64).decode(), "integrity"),
    ],
)
def test_fetch_refuses_a_tarball_that_does_not_match_its_pins(
    tmp_path, monkeypatch, body_of, integrity, match
):
    manifest, _, scratch = _fake_npm(tmp_path, monkeypatch, body_of, integrity)
    out = tmp_path / "models"
    with pytest.raises(models.ModelError, match=match):
        models.fetch(out, models=["lite"], manifest=manifest, quiet=True)
    assert os.listdir(out) == [] and os.listdir(scratch) == []


def test_fetch_refuses_a_plain_http_address(tmp_path, monkeypatch):
    manifest, served, _ = _fake_npm(tmp_path, monkeypatch)
    manifest["sources"]["npm"]["url"] = "http://registry.example/pose-1.tgz"
    with pytest.raises(models.ModelError, match="https"):
        models.fetch(tmp_path / "models", models=["lite"], manifest=manifest, quiet=True)
    assert served == []


def test_fetch_reports_a_network_failure_as_a_model_error(tmp_path, monkeypatch):
    import urllib.error

    manifest, _, _ = _fake_npm(tmp_path, monkeypatch)

    def unreachable(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(models, "_urlopen", unreachable)
    with pytest.raises(models.ModelError, match="could not download .*Name or service"):
        models.fetch(tmp_path / "models", models=["lite"], manifest=manifest, quiet=True)


def test_a_member_missing_from_the_archive_is_reported(tmp_path, monkeypatch):
    manifest, _, _ = _fake_npm(tmp_path, monkeypatch)
    manifest["models"]["pose_landmark_lite"]["member"] = "package/elsewhere.tflite"
    with pytest.raises(models.ModelError, match="has no package/elsewhere.tflite"):
        models.fetch(tmp_path / "models", models=["lite"], manifest=manifest, quiet=True)


def test_a_model_naming_an_unknown_source_is_a_manifest_error():
    manifest = models.load_manifest()
    manifest["models"]["pose_landmark_lite"] = {
        **manifest["models"]["pose_landmark_lite"], "source": "ftp"
    }  # fmt: skip
    with pytest.raises(models.ModelError, match="unknown source 'ftp'"):
        models.specs(manifest)


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
