"""Model files: locate, verify and fetch them.

The models are never downloaded at run time. ``fetch()`` (run by ``install.sh``) downloads one pinned
MediaPipe wheel from PyPI with pip, checks its SHA-256, extracts the two ``.tflite`` members and
checks theirs. At run time ``locate()`` only finds and verifies files already on disk.

Derived models (``DERIVED``: the int8 estimator) are built on the machine by ``models/quantize.py``
and are not in the manifest. Each comes with a record ``<name>.json`` beside it giving its size,
SHA-256, the SHA-256 of the manifest model it was derived from and the result of its accuracy
gate; ``locate()`` accepts one only when all of these check out.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ENV_MODELS_DIR = "BLAZEPOSE_EDGE_MODELS"
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.json"  # package data
FIX_HINT = "run `blazepose-edge models fetch` (or ./install.sh) to fetch and verify it"
DERIVED = {"pose_landmark_full_int8": "pose_landmark_full"}  # derived model -> its source model


class ModelError(RuntimeError):
    """A model file is missing, corrupted or unusable. The message says which file and how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    member: str
    size: int
    sha256: str


def models_dir() -> Path:
    """Where the model files live: ``$BLAZEPOSE_EDGE_MODELS``; else, under systemd, the service's
    ``$STATE_DIRECTORY/models``; else the user's data folder,
    ``${XDG_DATA_HOME:-~/.local/share}/blazepose-edge/models``."""
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR])
    if os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "models"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "blazepose-edge" / "models"


def load_manifest(path: Path = MANIFEST_PATH) -> dict:
    """The manifest (package data): which files, from where, with which sizes and SHA-256."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        manifest, problem = None, exc
    else:
        problem = "no 'models' table"
    if isinstance(manifest, dict) and isinstance(manifest.get("models"), dict):
        return manifest
    raise ModelError(
        f"model manifest {path} is unreadable or malformed ({problem}); reinstall blazepose-edge"
    )


def specs(manifest: dict | None = None) -> dict[str, ModelSpec]:
    manifest = manifest or load_manifest()
    try:
        return {name: ModelSpec(name=name, **entry) for name, entry in manifest["models"].items()}
    except TypeError as exc:
        raise ModelError(f"model manifest: an entry is malformed ({exc})") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: ModelSpec, path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {FIX_HINT}")
    size = path.stat().st_size
    if size != spec.size:
        raise ModelError(
            f"model file {path} has {size} bytes, expected {spec.size} (truncated or replaced); "
            f"{FIX_HINT}"
        )
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(
            f"model file {path} fails its checksum (sha256 {actual}, expected {spec.sha256}); "
            f"{FIX_HINT}"
        )


def locate(name: str, directory: Path | None = None, check: bool = True) -> Path:
    """Path of model ``name`` (e.g. ``pose_detection``), verified against the manifest, or for a
    derived model (``DERIVED``) against its record (see ``verify_derived``)."""
    directory = directory or models_dir()
    if name in DERIVED:
        path = directory / f"{name}.tflite"
        if check:
            verify_derived(name, directory)
        return path
    table = specs()
    if name not in table:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(table))}")
    spec = table[name]
    path = directory / spec.file
    if check:
        verify(spec, path)
    return path


def share_of_torso(value) -> str:
    """A gate figure (a fraction of torso length) as a percentage, or as given if not a number."""
    return f"{value:.2%}" if isinstance(value, (int, float)) else str(value)


def derived_hint(name: str, directory: Path) -> str:
    return (
        "build it with ./install.sh --int8, or: .venv/bin/python models/quantize.py --out "
        f"{directory / (name + '.tflite')}"
    )


def derived_present(name: str, directory: Path | None = None) -> bool:
    """Whether derived model ``name`` or its record is on disk (usable or not)."""
    directory = directory or models_dir()
    return (directory / f"{name}.tflite").exists() or (directory / f"{name}.json").exists()


def verify_derived(name: str, directory: Path | None = None) -> dict:
    """Check derived model ``name`` against its record ``<name>.json``: the file's size and
    SHA-256, the SHA-256 of the manifest model it was derived from, and a passed accuracy gate.
    Returns the record; raises ``ModelError`` naming the file and the fix."""
    directory = directory or models_dir()
    path = directory / f"{name}.tflite"
    record_path = directory / f"{name}.json"
    fix = derived_hint(name, directory)
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {fix}")
    if not record_path.is_file():
        raise ModelError(
            f"model file {path} has no record {record_path.name} (size, checksum, accuracy gate), "
            f"so it cannot be verified; {fix}"
        )
    try:
        record = json.loads(record_path.read_text())
        size, sha256, source_sha256 = record["size"], record["sha256"], record["source_sha256"]
        gate = record["gate"]
        passed = gate["passed"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"record {record_path} is unreadable or incomplete ({exc}); {fix}"
        ) from exc
    if record.get("file", path.name) != path.name:
        raise ModelError(
            f"record {record_path} describes {record.get('file')!r}, not {path.name}; {fix}"
        )
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelError(
            f"model file {path} has {actual_size} bytes, its record says {size} (truncated or "
            f"replaced); {fix}"
        )
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(
            f"model file {path} fails its checksum (sha256 {actual}, record says {sha256}); {fix}"
        )
    source = specs()[DERIVED[name]]
    if source_sha256 != source.sha256:
        raise ModelError(
            f"model file {path} was derived from a different {source.file} (sha256 "
            f"{source_sha256}, the manifest's is {source.sha256}); it is stale: {fix}"
        )
    if passed is not True:
        raise ModelError(
            f"model file {path} did not pass its accuracy gate (mean "
            f"{share_of_torso(gate.get('mean_vs_float'))}, worst "
            f"{share_of_torso(gate.get('worst_vs_float'))} of torso vs float, tolerance "
            f"{share_of_torso(gate.get('tolerance'))}), so "
            f"it is not used; delete it, or {fix} with a recipe that passes"
        )
    return record


def fetch(directory: Path | None = None, quiet: bool = False) -> list[Path]:
    """Fetch the pinned wheel with pip into a temporary folder, verify it, extract the models and
    delete the wheel (36 MB that a Pi's SD card need not keep). Idempotent: files that verify are
    kept and nothing is downloaded."""
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest()
    table = specs(manifest)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))

    todo = []
    for spec in table.values():
        try:
            verify(spec, directory / spec.file)
            say(f"ok      {directory / spec.file} (sha256 verified)")
        except ModelError:
            todo.append(spec)
    if todo:
        with tempfile.TemporaryDirectory(prefix="blazepose-edge-fetch-") as tmpdir:
            wheel = _wheel(manifest["source"], Path(tmpdir), say)
            with zipfile.ZipFile(wheel) as zf:
                for spec in todo:
                    target = directory / spec.file
                    tmp = target.with_suffix(".part")
                    with zf.open(spec.member) as src, open(tmp, "wb") as dst:
                        while block := src.read(1 << 20):
                            dst.write(block)
                    verify(spec, tmp)
                    os.replace(tmp, target)
                    say(f"fetched {target} (sha256 verified)")
    return [directory / spec.file for spec in table.values()]


def _wheel(source: dict, folder: Path, say) -> Path:
    wheel = folder / source["wheel"]
    say(f"downloading {source['package']}=={source['version']} wheel from PyPI (archive only)")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", source["pip_platform"], "--python-version", source["pip_python_version"],
        "--dest", str(folder), "--quiet", f"{source['package']}=={source['version']}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.is_file():
        raise ModelError(
            f"could not download {source['wheel']} with pip: {result.stderr.strip()[-500:]}"
        )
    actual = sha256_of(wheel)
    if actual != source["wheel_sha256"]:
        raise ModelError(
            f"downloaded {source['wheel']} has sha256 {actual}, expected {source['wheel_sha256']}"
        )
    return wheel
