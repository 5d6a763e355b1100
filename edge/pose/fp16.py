"""The fp16 estimators: the published landmark models with one metadata value changed.

MediaPipe's landmark models carry the TFLite metadata entry ``reduced_precision_support`` =
``fp16accfp32`` ("may run in fp16, accumulating in fp32"). The XNNPACK delegate of LiteRT and of
tflite-runtime runs a model in fp16 only when that value declares fp16 inference *and* fp16
accumulation, ``fp16accfp16``, and only on a core with native fp16 arithmetic (ARMv8.2 FP16,
e.g. the Pi 5's Cortex-A76; never on x86, nor on the Pi 4's Cortex-A72, where it runs in fp32
as ever). The fp16 estimator is that file with the last two bytes of the value changed, ``32`` ->
``16``: the same size, every other byte identical. It is derived on the machine from the verified
float model on first use (nothing is downloaded) and is identical on every machine: its SHA-256
is pinned here (``SHA256``) and the derivation refuses any other result. Like the int8 model it
gets a record ``<name>.json`` (``models.verify_derived``), whose gate is the accuracy measured
against float under an emulated Cortex-A76 (``benchmarks/fp16_accuracy.py``; ``GATE``).

The flatbuffer is read with a few lines of ``struct`` (root table, ``metadata`` vector,
``buffers`` vector), so this needs neither the flatbuffers package nor LiteRT's schema.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from pathlib import Path

from . import models
from .models import ModelError

log = logging.getLogger(__name__)

KEY = "reduced_precision_support"
PUBLISHED = b"fp16accfp32"  # what MediaPipe's landmark models carry
FP16 = b"fp16accfp16"  # what makes XNNPACK run fp16 where the core has fp16 arithmetic
SUFFIX = "_fp16"

# SHA-256 of each fp16 estimator: the manifest model (pinned there) with the edit above.
SHA256 = {
    "pose_landmark_lite_fp16": "029f0fc29c4dcab873cf8bda467587fc846a2b120be85f6af85c49eae842b866",
    "pose_landmark_full_fp16": "630f26019b29ba5031eba29a98342f361c4184c32453ba78a5644d893cb2dd92",
    "pose_landmark_heavy_fp16": "2e27a57064e0e12705dfe35959e895a7c93f9b7295f56bae75c6d4a57c425e38",
}
NAMES = models.FP16  # fp16 model -> its source; the same keys as SHA256

# Accuracy vs float under qemu-aarch64 -cpu cortex-a76 (benchmarks/fp16_accuracy.py): mean and
# worst 2D landmark distance over the 33 landmarks as a share of the torso, on the test photos
# and video frames. The tolerance is the int8 estimator's gate (docs/models.md).
TOLERANCE = {"mean": 0.03, "worst": 0.10}
# A model not listed here has not been measured: its gate fails and it is not used.
MEASURED: dict[str, dict[str, float]] = {
    # 46 and 45 crops with a torso (of 47: 34 photos, 4 frames of each of 5 videos), LiteRT 2.3.0,
    # one thread, 2026-11-29
    "pose_landmark_full_fp16": {"mean": 0.01118, "worst": 0.06303},
    "pose_landmark_lite_fp16": {"mean": 0.01322, "worst": 0.07026},
    # the same 47 crops (46 with a torso), 2026-11-30: fails, worst 14.8 % on one COCO photo
    # (one landmark moves by 74 % of the torso); no pose decision changed
    "pose_landmark_heavy_fp16": {"mean": 0.01321, "worst": 0.14783},
}
GATE_KIND = models.EMULATED_A76


def gate(name: str) -> dict:
    """The accuracy gate written into ``name``'s record."""
    measured = MEASURED.get(name)
    if measured is None:
        return {"held_out": GATE_KIND, "passed": False, "mean_vs_float": "not measured",
                "worst_vs_float": "not measured", "tolerance": TOLERANCE["mean"]}  # fmt: skip
    passed = measured["mean"] <= TOLERANCE["mean"] and measured["worst"] <= TOLERANCE["worst"]
    return {
        "held_out": GATE_KIND,
        "passed": passed,
        "mean_vs_float": measured["mean"],
        "worst_vs_float": measured["worst"],
        "tolerance": TOLERANCE["mean"],
        "tolerance_worst": TOLERANCE["worst"],
        "measured_by": "benchmarks/fp16_accuracy.py",
    }


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


def _field(data: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vtable_size = struct.unpack_from("<H", data, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", data, vtable + slot)[0]
    return table + offset if offset else None


def _vector(data: bytes, at: int) -> tuple[int, int]:
    """(position of the first element, length) of the vector referenced at ``at``."""
    start = at + _u32(data, at)
    return start + 4, _u32(data, start)


def _table(data: bytes, at: int) -> int:
    return at + _u32(data, at)


def metadata(content: bytes) -> dict[str, tuple[int, int]]:
    """{name: (position, length)} of each metadata value (``Model.metadata``, values held inline
    in ``Model.buffers``) of the TFLite flatbuffer ``content``. Raises ``ValueError`` if it is
    not one."""
    try:
        if content[4:8] != b"TFL3":
            raise ValueError("no TFL3 file identifier")
        root = _table(content, 0)
        # Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4,
        # metadata_buffer 5, metadata 6 (tflite/schema/schema.fbs)
        found: dict[str, tuple[int, int]] = {}
        meta_at, buffers_at = _field(content, root, 6), _field(content, root, 4)
        if meta_at is None or buffers_at is None:
            return found
        buffers, n_buffers = _vector(content, buffers_at)
        entries, n_entries = _vector(content, meta_at)
        for i in range(n_entries):
            entry = _table(content, entries + 4 * i)
            name_at, buffer_at = _field(content, entry, 0), _field(content, entry, 1)
            if name_at is None:
                continue
            name_start, name_len = _vector(content, name_at)
            name = content[name_start : name_start + name_len].decode()
            index = _u32(content, buffer_at) if buffer_at is not None else 0
            if index >= n_buffers:
                continue
            buffer = _table(content, buffers + 4 * index)
            data_at = _field(content, buffer, 0)  # Buffer: data 0, offset 1, size 2
            if data_at is not None:
                found[name] = _vector(content, data_at)
        return found
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a readable TFLite flatbuffer ({exc})") from exc


def edit(content: bytes) -> bytes:
    """``content`` (a published landmark model) with ``reduced_precision_support`` set to
    ``fp16accfp16``. Raises ``ValueError`` if the model does not carry the published value."""
    where = metadata(content).get(KEY)
    if where is None:
        raise ValueError(f"the model has no {KEY} metadata")
    start, length = where
    value = content[start : start + length]
    if value != PUBLISHED:
        raise ValueError(f"{KEY} is {value!r}, expected {PUBLISHED!r}")
    return content[:start] + FP16 + content[start + length :]


def name_for(model: str) -> str:
    """The fp16 estimator of landmark model ``model`` (lite, full or heavy)."""
    return models.estimator_name(model) + SUFFIX


def derive(name: str, directory: Path | None = None) -> dict:
    """Write fp16 estimator ``name`` and its record into ``directory`` from the verified float
    model there; returns the record. Raises ``ModelError`` naming the file and the fix."""
    directory = directory or models.models_dir()
    source = models.locate(NAMES[name], directory)  # verified against the manifest
    content = edit(source.read_bytes())
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256[name]:
        raise ModelError(
            f"deriving {name} from {source} gave sha256 {digest}, not the pinned {SHA256[name]}"
        )
    record = {
        "file": f"{name}.tflite",
        "size": len(content),
        "sha256": digest,
        "source": source.name,
        "source_sha256": models.specs()[NAMES[name]].sha256,
        "edit": f"metadata {KEY}: {PUBLISHED.decode()} -> {FP16.decode()}",
        "gate": gate(name),
    }
    try:
        for suffix, data in ((".tflite", content), (".json", json.dumps(record, indent=2) + "\n")):
            target = directory / f"{name}{suffix}"  # the model first, as install_derived
            tmp = target.with_name(target.name + ".part")
            try:
                tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot write {directory / record['file']}: {exc}") from exc
    log.info("derived %s from %s (sha256 %s)", record["file"], source.name, digest)
    return models.verify_derived(name, directory)


def ensure(name: str, directory: Path | None = None) -> dict:
    """The record of fp16 estimator ``name``, derived first if it is absent or does not verify
    (stale, truncated): it is made again from the float model, never downloaded."""
    directory = directory or models.models_dir()
    verdict = gate(name)
    if not verdict["passed"]:
        what = (
            "has not been measured against float on a core with fp16 arithmetic"
            if name not in MEASURED
            else f"failed its accuracy gate (mean {verdict['mean_vs_float']:.2%}, worst "
            f"{verdict['worst_vs_float']:.2%} of torso vs float)"
        )
        raise ModelError(
            f"the fp16 estimator {name} {what} (benchmarks/fp16_accuracy.py), so it is not used; "
            "use variant float"
        )
    if models.derived_present(name, directory):
        try:
            record = models.verify_derived(name, directory)
        except ModelError as exc:
            log.warning("%s; deriving it again", exc)
        else:
            if record.get("gate") == gate(name):
                return record
            log.info("%s: its gate figures are not this version's; deriving it again", name)
    return derive(name, directory)
