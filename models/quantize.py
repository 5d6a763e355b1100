"""Int8 variants of the BlazePose models, built reproducibly, each with an accuracy gate.

    .venv/bin/python models/quantize.py [--model full|lite|detector] \
        --out models/int8/pose_landmark_full_int8.tflite \
        [--recipe a8w8-mid-dec] [--update percentile:99.9] [--augment light,lowres] \
        [--per-video 80] [--crops-cache crops.npy] [--tolerance 0.03] [--bench 200] \
        [--quantizer-python /path/to/venv/bin/python]

Steps (see docs/models.md and docs/history.md for what was tried and measured):

1. Prepare a float graph the quantizer accepts: the shipped model stores fp16 weights behind
   DEQUANTIZE ops (every quantizer recipe is a no-op on them), so each fp16 constant + DEQUANTIZE
   becomes one fp32 constant (same values, identical outputs); the segmentation head is cut off as
   ``edge/graph.py`` does at run time (outputs: landmarks, flag, heatmap, world); unused tensors
   and buffers are dropped; a ``serving_default`` SignatureDef is added (the static recipes need it).
2. Calibration crops, split by source (``MEDIA_SOURCES``): the pipeline itself (float detector +
   ROI + bit-exact crop, video mode with tracking) runs over the test media whose licence is clean
   (Apache-2.0, CC-BY-4.0, Pixabay: the intel, tfjs-models, mmaction2, mmhuman3d videos and a few
   photos) and every 256x256 input it feeds the estimator in the first 80 % of each video is kept;
   ``--augment`` adds mirrored, relit, rescaled or low-resolution copies. Every file of the other
   sources (the openpose street clip and COCO photos, tf-pose-estimation, openpifpaf, geaxgx, the
   mmpose datasets' photos) is held out: no person, camera or scene of the gate is calibrated on.
3. Quantize with ai-edge-quantizer (static int8 activations per tensor, per-channel symmetric
   int8 weights, activation ranges = global min/max over the crops, or a percentile of the
   per-crop extremes with ``--update percentile:P``) keeping the listed ops in float; float32
   model input and outputs, so ``edge.pose.landmarks.LandmarkModel`` loads the file by path
   unchanged.
4. Verify: on the held-out sources (their photos and 24 evenly spread frames of each video) the
   float detector finds the ROI; the float and the int8 estimator run on the same crop; landmarks
   are decoded by ``edge.pose.landmarks`` (heatmap refinement included) and compared as mean 2D
   distance over the 33 body landmarks / torso length, against the float model and against
   MediaPipe's reference where it exists. The model is written only if the mean stays within
   ``--tolerance`` (and every frame within ``--worst-tolerance``, and the pose flag agrees with
   float on every frame); otherwise exit 1 and leave the candidate beside ``--out``. The same
   figures on the calibration side (the last 20 % of the calibration videos, the calibration
   photos) are printed and recorded. No recipe tried so far passes this gate: see
   docs/history.md.

``--model`` picks what is quantized: ``full`` (the default), ``lite`` (the same steps on the lite
estimator, gated against float lite and MediaPipe's lite reference; its op ranges are lite's) or
``detector``: ``pose_detection_int8`` from the pinned float detector (its sparse fp16 weights
densified and folded to fp32), calibrated on the detector's own 224x224 letterboxed inputs of
the licence-clean sources' frames (people or not), float32 outputs (anchors and boxes are
decoded in float) and, by recipe, the stem, the heads and the upsampling path kept float. Its gate
on the held-out sources (``detector_gate_passes``): on every frame the same people as the float
detector at the pipeline's score threshold (a frame where float's own detections change under
+-1 grey level is reported, not failed), every matched box at IoU >= 0.9, and the float
estimator's static-mode landmarks from the int8 detector's ROIs within ``--tolerance`` /
``--worst-tolerance`` of those from float's ROIs, with the same pose decisions.

``--footage PATH...`` replaces the test media in steps 2 and 4 with your own videos and photos
(a board has no test media): the end of each video and every 5th photo are held out for the gate,
which then compares with float only (MediaPipe's reference exists for the test photos alone).

ai-edge-quantizer (0.10.0) does not pull TensorFlow, but it does pull scipy, absl-py,
immutabledict and litert-lm-builder (about 150 MB, mostly scipy). It is not a project dependency:
install it in the project venv, or in a scratch venv and pass ``--quantizer-python``; then only
the quantization step runs there (it needs numpy, ai-edge-litert and the quantizer only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
INT8_NAME = "pose_landmark_full_int8"
# distillation (qat.py) is opt-in: it needs torch, which the quantizer venv of ./install.sh
# --int8-footage does not carry; the shipped models/int8 build adds --qat-epochs 6
QAT_EPOCHS = 0
QAT_LR = 0.003
ROUNDINGS = ("nearest", "gptq", "gptq-upstream")  # rounding.py; docs/history.md
# The landmark models' defaults: the recipe of the shipped int8 estimator (models/int8/, its
# record's "recipe"), which passed the gate on held-out sources; the detector keeps its own.
LANDMARK_DEFAULTS = {"update": "percentile:99.9", "augment": ["light", "lowres"],
                     "rounding": "gptq"}  # fmt: skip
DETECTOR_DEFAULTS = {"update": "percentile:99.9", "augment": [], "rounding": "nearest"}
REFERENCE = ROOT / "tests" / "data" / "mediapipe_reference.json"
SIGNATURE = "serving_default"
# output tensors of the landmark models kept after pruning (Identity_2 is the mask)
KEEP_OUTPUTS = {"Identity": "landmarks", "Identity_1": "flag", "Identity_3": "heatmap",
                "Identity_4": "world"}  # fmt: skip
DETECTOR_OUTPUTS = {"Identity": "boxes", "Identity_1": "scores"}


class Target(NamedTuple):
    """A model ``--model`` can quantize: the manifest model it is derived from, the derived
    model's name, what its input is (``landmark``: a 256x256 crop in [0, 1]; ``detector``: the
    224x224 letterboxed frame in [-1, 1]), the outputs kept and MediaPipe's static-mode reference
    (for the detector: the landmarks of the default estimator, full, run on its ROIs)."""

    model: str
    float_name: str
    int8_name: str
    kind: str
    keep_outputs: dict
    reference: Path


TARGETS = {
    "full": Target("full", "pose_landmark_full", INT8_NAME, "landmark", KEEP_OUTPUTS, REFERENCE),
    "lite": Target("lite", "pose_landmark_lite", "pose_landmark_lite_int8", "landmark",
                   KEEP_OUTPUTS, ROOT / "tests" / "data" / "mediapipe_reference_lite.json"),
    "detector": Target("detector", "pose_detection", "pose_detection_int8", "detector",
                       DETECTOR_OUTPUTS, REFERENCE),
}  # fmt: skip
# the model input from a stored uint8 value k: k * scale + offset (what the pipeline writes)
INPUT_RANGES = {"landmark": (1.0 / 255.0, 0.0), "detector": (2.0 / 255.0, -1.0)}
CALIB_VIDEOS = (
    "street.avi", "walking_one_by_one_intel.mp4", "synthetic_arms_up_tfjs.mp4",
    "two_people_hug_1080p_mmaction2.mp4", "two_people_handshake_mmhuman3d.mp4",
    "basketball_two_players_lowres_mmaction2.mp4", "hard_upper_body_sign_language_intel.mp4",
    "hard_arm_wrestling_closeup_mmaction2.mp4", "hard_legs_only_pool_mmaction2.mp4",
)  # fmt: skip


class BuildError(RuntimeError):
    """The model cannot be built here (no media, no quantizer, not the pinned float model): exit 2.
    A model that is built but fails the accuracy gate exits 1."""


# ---------------------------------------------------------------------------------------------
# 1. float graph the quantizer accepts


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _op_names(m) -> list[str]:
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in m.operatorCodes]


def _pack(m) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def densify(tensor, values: np.ndarray) -> np.ndarray:
    """The dense array of a sparse TFLite constant in the layout the MediaPipe detector uses:
    identity traversal order, no blocks, leading dimensions dense and the last one compressed
    (CSR: per-row segments and column indices); anything else is refused."""
    sp = tensor.sparsity
    shape = [int(d) for d in tensor.shape]
    dims = sp.dimMetadata
    order = [int(i) for i in sp.traversalOrder]
    if order != list(range(len(shape))) or sp.blockMap is not None and len(sp.blockMap):
        raise BuildError(f"sparse tensor {tensor.name!r}: unsupported traversal or blocks")
    if any(d.format != 0 for d in dims[:-1]) or dims[-1].format != 1:
        raise BuildError(f"sparse tensor {tensor.name!r}: only a compressed last dimension")
    segments = np.asarray(dims[-1].arraySegments.values, dtype=np.int64)
    indices = np.asarray(dims[-1].arrayIndices.values, dtype=np.int64)
    rows = int(np.prod(shape[:-1]))
    if len(segments) != rows + 1 or segments[-1] != len(values) or len(indices) != len(values):
        raise BuildError(f"sparse tensor {tensor.name!r}: inconsistent segments")
    dense = np.zeros((rows, shape[-1]), dtype=values.dtype)
    row_of = np.repeat(np.arange(rows), np.diff(segments))
    dense[row_of, indices] = values
    return dense.reshape(shape)


def prepare_float(model: bytes, keep_outputs=KEEP_OUTPUTS) -> bytes:
    """fp16 weights -> fp32 constants, outputs pruned to ``keep_outputs``, unused tensors and
    buffers dropped, a ``serving_default`` signature added. Same values on the kept outputs."""
    schema = _schema()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise ValueError("expected one subgraph")
    sg = m.subgraphs[0]
    ops = _op_names(m)

    # sparse constant -> DENSIFY -> dense tensor  ==>  dense constant (the detector's weights)
    kept_ops = []
    for op in sg.operators:
        if ops[op.opcodeIndex] == "DENSIFY":
            src, dst = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            dtype = np.float16 if src.type == schema.TensorType.FLOAT16 else np.float32
            dense = densify(src, np.frombuffer(bytes(bytearray(m.buffers[src.buffer].data)), dtype))
            buf = schema.BufferT()
            buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
            dst.buffer = len(m.buffers)
            m.buffers.append(buf)
            continue
        kept_ops.append(op)
    sg.operators = kept_ops

    # fp16 constant -> DEQUANTIZE -> fp32 tensor  ==>  fp32 constant
    kept_ops = []
    for op in sg.operators:
        if ops[op.opcodeIndex] == "DEQUANTIZE":
            src = sg.tensors[op.inputs[0]]
            data = m.buffers[src.buffer].data
            if src.type == schema.TensorType.FLOAT16 and data is not None and len(data):
                dst = sg.tensors[op.outputs[0]]
                values = np.frombuffer(bytes(bytearray(data)), dtype=np.float16)
                buf = schema.BufferT()
                buf.data = np.frombuffer(values.astype(np.float32).tobytes(), dtype=np.uint8)
                dst.buffer = len(m.buffers)
                m.buffers.append(buf)
                continue
        kept_ops.append(op)
    sg.operators = kept_ops

    from edge.pose import graph

    # prune to the wanted outputs (edge/graph.py's dependency walk)
    by_name = {sg.tensors[i].name.decode(): int(i) for i in sg.outputs}
    keep = [by_name[name] for name in keep_outputs]
    needed_ops, needed = graph.needed(sg, keep)
    sg.operators = [op for i, op in enumerate(sg.operators) if i in needed_ops]

    # compact: renumber tensors and buffers that are still used
    used = sorted(set(int(i) for i in sg.inputs) | needed)
    remap = {old: new for new, old in enumerate(used)}
    sg.tensors = [sg.tensors[i] for i in used]
    for op in sg.operators:
        op.inputs = np.array([remap[int(t)] if t >= 0 else -1 for t in op.inputs], dtype=np.int32)
        op.outputs = np.array([remap[int(t)] for t in op.outputs], dtype=np.int32)
    sg.inputs = np.array([remap[int(t)] for t in sg.inputs], dtype=np.int32)
    sg.outputs = np.array([remap[t] for t in keep], dtype=np.int32)
    used_buffers = sorted({0} | {t.buffer for t in sg.tensors})
    bremap = {old: new for new, old in enumerate(used_buffers)}
    m.buffers = [m.buffers[b] for b in used_buffers]
    for t in sg.tensors:
        t.buffer = bremap[t.buffer]
    used_codes = sorted({op.opcodeIndex for op in sg.operators})
    cremap = {old: new for new, old in enumerate(used_codes)}
    m.operatorCodes = [m.operatorCodes[c] for c in used_codes]
    for op in sg.operators:
        op.opcodeIndex = cremap[op.opcodeIndex]
    m.metadata = None  # metadata entries point at buffers; the MediaPipe files carry none needed
    m.metadataBuffer = None

    # serving_default signature
    def tensor_map(name: str, index: int):
        tm = schema.TensorMapT()
        tm.name = name
        tm.tensorIndex = index
        return tm

    sig = schema.SignatureDefT()
    sig.signatureKey = SIGNATURE
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map("input_1", int(sg.inputs[0]))]
    sig.outputs = [
        tensor_map(role, int(t)) for role, t in zip(keep_outputs.values(), sg.outputs, strict=True)
    ]
    m.signatureDefs = [sig]
    return _pack(m)


def inline_buffers(model: bytes) -> bytes:
    """The quantizer writes constant data after the flatbuffer (buffers with offset/size); an
    object-API round trip (``edge/graph.py`` prunes that way at load time) would drop it, so
    put the data back inside the buffers."""
    schema = _schema()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    moved = 0
    for buf in m.buffers:
        if buf.offset and buf.offset > 1:
            buf.data = np.frombuffer(model[buf.offset : buf.offset + buf.size], dtype=np.uint8)
            buf.offset, buf.size = 0, 0
            moved += 1
    return _pack(m) if moved else model


def op_table(model: bytes) -> list[tuple[int, str, str]]:
    """(index, op name, name of its first output tensor) for every operator."""
    schema = _schema()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    sg, ops = m.subgraphs[0], _op_names(m)
    return [(i, ops[op.opcodeIndex], sg.tensors[op.outputs[0]].name.decode())
            for i, op in enumerate(sg.operators)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 2. calibration crops, taken by the pipeline itself


class _CropGrabber:
    """Wraps ``LandmarkModel.infer`` to keep a copy of every model input the pipeline writes."""

    def __init__(self, estimator):
        self.crops: list[np.ndarray] = []
        self.estimator = estimator
        self._infer = estimator.infer
        self.keep = True
        estimator.infer = self._grab

    def _grab(self) -> None:
        if self.keep:
            # uint8 keeps the set small; the crop is exactly k/255 with k in 0..255
            self.crops.append(np.rint(self.estimator.model.input_view() * 255.0).astype(np.uint8))
        self._infer()


def _frame_count(path: Path) -> int:
    """Frames in the video at ``path``, as its container says, else counted (raw H.264 does not
    say); 0 if unreadable."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if total < 1:
        while cap.grab():
            total += 1
    cap.release()
    return total


def _track_video(
    est, grab: _CropGrabber, path: Path, keep: range, hold: range = range(0)
) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """The float pipeline in video mode over ``path`` from a fresh track, as deployed: ``grab``
    keeps the crops of the frames whose index is in ``keep``; copies of the frames in ``hold``
    are returned as (index, frame). Returns (frames read, held frames)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    est.reset()
    held, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        grab.keep = index in keep
        if index in hold:
            held.append((index, frame.copy()))
        est.process(frame, timestamp_ms=index * 33.333)
        index += 1
    cap.release()
    return index, held


def collect_crops(media: Path, per_video: int, seed: int = 0, log=print) -> np.ndarray:
    """(N, 256, 256, 3) uint8 RGB crops: the estimator inputs of the float pipeline in video mode
    (tracking, as deployed) on the calibration videos, up to ``per_video`` evenly spread frames
    each, plus static-mode crops of the annotated photos. Never the held-out ``media/images``."""
    import cv2

    from edge import PoseEstimator

    est = PoseEstimator("float", tracking=True, num_threads=2)
    grab = _CropGrabber(est.estimator)
    for name in CALIB_VIDEOS:
        path = media / "video" / name
        stride = max(1, _frame_count(path) // per_video)
        before = len(grab.crops)
        frames, _ = _track_video(est, grab, path, keep=range(0, sys.maxsize, stride))
        log(f"  {name}: {len(grab.crops) - before} crops from {frames} frames")
    static = PoseEstimator("float", tracking=False, num_threads=2)
    grab_static = _CropGrabber(static.estimator)
    photos = sorted(
        p for p in (media / "annotated").rglob("*") if p.suffix.lower() in (".jpg", ".png")
    )
    for p in photos:
        frame = cv2.imread(str(p))
        if frame is not None:
            static.process(frame)
    log(f"  annotated photos: {len(grab_static.crops)} crops from {len(photos)} photos")
    crops = np.stack(grab.crops + grab_static.crops)
    np.random.default_rng(seed).shuffle(crops)  # the calibrator's min/max is a moving average
    return crops


# Where each file of the test media comes from (its README), by source, and whether its licence
# lets a model calibrated on it ship (Apache-2.0, CC-BY-4.0, Pixabay's licence). The int8
# estimator is calibrated on the licence-clean sources only and gated on all the others: a split
# by source, never by frame, so the gate sees people, cameras and scenes calibration never saw.
# Patterns are globs under the media folder; a file no source claims is held out (never
# calibrated on) and reported.
MEDIA_SOURCES = {
    "intel-iot-devkit/sample-videos": ("CC-BY-4.0", True, (
        "video/walking_one_by_one_intel.mp4", "video/hard_upper_body_sign_language_intel.mp4",
        "video/hard_no_person_parking_lot_intel.mp4")),
    "tensorflow/tfjs-models": ("Apache-2.0", True, (
        "video/synthetic_arms_up_tfjs.mp4", "images/hard_three_people_upper_body_tfjs.jpg")),
    "open-mmlab/mmaction2": ("Apache-2.0", True, (
        "video/two_people_hug_1080p_mmaction2.mp4",
        "video/basketball_two_players_lowres_mmaction2.mp4",
        "video/hard_arm_wrestling_closeup_mmaction2.mp4", "video/hard_legs_only_pool_mmaction2.mp4")),
    "open-mmlab/mmhuman3d": ("Apache-2.0", True, ("video/two_people_handshake_mmhuman3d.mp4",)),
    "tensorflow/examples (Pixabay photos)": ("Pixabay licence", True, ("images/*_pixabay*",)),
    "opencv/opencv samples": ("Apache-2.0", True, ("images/*_opencv.png",)),
    "CMU-Perceptual-Computing-Lab/openpose (street clip, COCO photos)": (
        "academic non-commercial; Flickr licences", False,
        ("video/street.avi", "images/COCO_val2014_*.jpg")),
    "geaxgx/openvino_blazepose": ("not stated", False, ("images/yoga.jpg", "images/yoga2.jpg")),
    "ildoonet/tf-pose-estimation": ("not stated", False, ("images/*_tfpose.*",)),
    "openpifpaf/openpifpaf": ("AGPL-3.0", False, ("images/*_openpifpaf.*",)),
    "mmpose test data (MPII, PoseTrack18, OCHuman, CrowdPose, ExLPose, Human-Art)": (
        "each dataset's terms", False, ("annotated/**/*.jpg", "annotated/**/*.png")),
}  # fmt: skip
HELD_OUT_VIDEO_FRAMES = 24  # evenly spread frames of each held-out video


def media_split(media: Path) -> dict[str, dict[str, list[Path]]]:
    """{"calibration": {source: files}, "held_out": {source: files}} of the test media, split by
    source (``MEDIA_SOURCES``); files no source claims are held out under "unlisted"."""
    split: dict[str, dict[str, list[Path]]] = {"calibration": {}, "held_out": {}}
    claimed: set[Path] = set()
    for source, (_, clean, patterns) in MEDIA_SOURCES.items():
        files = sorted({p for pat in patterns for p in media.glob(pat) if p.is_file()})
        claimed |= set(files)
        if files:
            split["calibration" if clean else "held_out"][source] = files
    media_files = [p for sub in ("images", "video") if (media / sub).is_dir()
                   for p in sorted((media / sub).iterdir())
                   if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]  # fmt: skip
    unlisted = [p for p in media_files if p not in claimed]
    if unlisted:
        split["held_out"]["unlisted"] = unlisted
    return split


def _rel(media: Path, path: Path) -> str:
    return str(path.relative_to(media))


def collect_by_source(media: Path, per_video: int, log=print, model: str = "full") -> tuple[
        np.ndarray, list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:  # fmt: skip
    """Calibration crops from the licence-clean sources and two sets of gate frames: the
    calibration side (the last 20 % of each calibration video, never calibrated on, and the
    calibration photos) and the held-out sources (every photo, evenly spread frames of each video).
    Returns (crops, calibration-side frames, held-out frames); frames are (name, BGR image)."""
    import cv2

    from edge import PoseEstimator

    split = media_split(media)
    est = PoseEstimator("float", tracking=True, num_threads=2, model=model)
    grab = _CropGrabber(est.estimator)
    static = PoseEstimator("float", tracking=False, num_threads=2, model=model)
    grab_static = _CropGrabber(static.estimator)
    side: list[tuple[str, np.ndarray]] = []
    for source, files in split["calibration"].items():
        for path in files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                total = _frame_count(path)
                tail = total - max(1, round(total * HELD_OUT_TAIL))
                stride = max(1, tail // per_video)
                held_stride = max(1, (total - tail) // HELD_OUT_PER_VIDEO)
                before = len(grab.crops)
                frames, tail_frames = _track_video(
                    est, grab, path, keep=range(0, tail, stride),
                    hold=range(tail, sys.maxsize, held_stride)[:HELD_OUT_PER_VIDEO])  # fmt: skip
                side += [(f"{_rel(media, path)}#{i}", f) for i, f in tail_frames]
                log(f"  {source}: {path.name}: {len(grab.crops) - before} crops from {frames} "
                    f"frames, {len(tail_frames)} kept for the calibration-side check")  # fmt: skip
            else:
                frame = cv2.imread(str(path))
                if frame is not None:
                    static.process(frame)
                    side.append((_rel(media, path), frame))
    log(f"  calibration photos: {len(grab_static.crops)} crops")
    held = held_out_frames(media, split, log)
    crops = np.stack(grab.crops + grab_static.crops)
    np.random.default_rng(0).shuffle(crops)
    return crops, side, held


def held_out_frames(
    media: Path, split: dict | None = None, log=print
) -> list[tuple[str, np.ndarray]]:
    """The gate's frames from the sources never calibrated on: every photo and
    ``HELD_OUT_VIDEO_FRAMES`` evenly spread frames of each video, as (name, BGR image)."""
    import cv2

    split = split or media_split(media)
    held: list[tuple[str, np.ndarray]] = []
    for source, files in split["held_out"].items():
        for path in files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                total = _frame_count(path)
                step = max(1, total // HELD_OUT_VIDEO_FRAMES)
                cap = cv2.VideoCapture(str(path))
                for index in range(total):
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index % step == step // 2 and index // step < HELD_OUT_VIDEO_FRAMES:
                        held.append((f"{_rel(media, path)}#{index}", frame))
                cap.release()
            else:
                frame = cv2.imread(str(path))
                if frame is not None:
                    held.append((_rel(media, path), frame))
        log(f"  held out: {source}: {len(files)} files")
    return held


def detector_input(detector, frame: np.ndarray) -> np.ndarray:
    """The detector's 224x224 letterboxed input for ``frame`` as ``Detector.preprocess`` writes
    it, stored as uint8 (k, the input being k * 2/255 - 1 up to the interpolation's rounding)."""
    detector.preprocess(frame)
    return np.rint((detector.model.input_view() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def collect_detector_inputs(media: Path, per_video: int, log=print) -> tuple[
        np.ndarray, list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:  # fmt: skip
    """The detector's inputs on the licence-clean sources (up to ``per_video`` evenly spread
    frames of the first 80 % of each video, people or not: the detector scans empty rooms too;
    every calibration photo) and, as ``collect_by_source``, the calibration-side frames (the last
    20 % of each video, the calibration photos) and the held-out sources' frames."""
    import cv2

    from edge.pose.detector import Detector
    from edge.pose.models import locate

    split = media_split(media)
    detector = Detector(locate("pose_detection"), 2)
    inputs: list[np.ndarray] = []
    side: list[tuple[str, np.ndarray]] = []
    for source, files in split["calibration"].items():
        for path in files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                total = _frame_count(path)
                tail = total - max(1, round(total * HELD_OUT_TAIL))
                stride = max(1, tail // per_video)
                held_stride = max(1, (total - tail) // HELD_OUT_PER_VIDEO)
                hold = range(tail, sys.maxsize, held_stride)[:HELD_OUT_PER_VIDEO]
                cap, index, before = cv2.VideoCapture(str(path)), 0, len(inputs)
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index < tail and index % stride == 0:
                        inputs.append(detector_input(detector, frame))
                    elif index in hold:
                        side.append((f"{_rel(media, path)}#{index}", frame))
                    index += 1
                cap.release()
                log(f"  {source}: {path.name}: {len(inputs) - before} inputs from {index} frames")
            else:
                frame = cv2.imread(str(path))
                if frame is not None:
                    inputs.append(detector_input(detector, frame))
                    side.append((_rel(media, path), frame))
    held = held_out_frames(media, split, log)
    inputs = np.stack(inputs)
    np.random.default_rng(0).shuffle(inputs)
    return inputs, side, held


AUGMENTATIONS = ("flip", "light", "scale", "lowres")


def augment(crops: np.ndarray, kinds: list[str], seed: int = 0) -> np.ndarray:
    """The crops plus one transformed copy of each per kind: ``flip`` (mirrored left-right),
    ``light`` (gain 0.5-1.5 and gamma 0.6-1.6, as under other light or exposure), ``scale``
    (zoomed by 0.7-1.3 about the centre, black beyond the frame as the pipeline's crop does),
    ``lowres`` (brought down to 48-103 px and back up: a small, distant person's crop)."""
    import cv2

    rng = np.random.default_rng(seed)
    size = crops.shape[1]  # 256 (estimator crops) or 224 (detector inputs)
    out = [crops]
    for kind in kinds:
        if kind == "flip":
            out.append(crops[:, :, ::-1].copy())
        elif kind == "light":
            x = crops.astype(np.float32) / 255.0
            gain = rng.uniform(0.5, 1.5, size=(len(crops), 1, 1, 1)).astype(np.float32)
            gamma = np.exp(rng.uniform(np.log(0.6), np.log(1.6), size=(len(crops), 1, 1, 1)))
            y = np.clip(gain * x ** gamma.astype(np.float32), 0.0, 1.0)
            out.append(np.rint(y * 255.0).astype(np.uint8))
        elif kind == "scale":
            scaled = np.empty_like(crops)
            for i, crop in enumerate(crops):
                s = rng.uniform(0.7, 1.3)
                c = size / 2 * (1 - s)
                m = np.array([[s, 0, c], [0, s, c]], dtype=np.float64)
                scaled[i] = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
            out.append(scaled)
        elif kind == "lowres":
            low = np.empty_like(crops)
            for i, crop in enumerate(crops):
                side = int(rng.integers(48, 104))
                small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
                low[i] = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
            out.append(low)
        else:
            raise BuildError(f"--augment {kind}: one of {', '.join(AUGMENTATIONS)}")
    result = np.concatenate(out)
    rng.shuffle(result)
    return result


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".h264", ".mjpeg", ".mjpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HELD_OUT_TAIL = 0.2  # share of each of your videos (its end) kept for the gate
HELD_OUT_EVERY = 5  # and every 5th of your photos
HELD_OUT_PER_VIDEO = 12
# A held-out image is scored only if float's torso (shoulder to hip centre) spans at least this
# share of the crop: a body leaving the frame folds it to a few pixels, and errors measured in
# such a torso are meaningless (a 4 px torso made one frame "447 %"). Reported, not scored.
MIN_TORSO_SHARE = 0.05
MIN_HELD_OUT = 8  # held-out frames with a person needed to judge a model built on your footage


def footage_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The videos and photos among ``paths`` (files, or folders searched recursively), sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise BuildError(f"--footage: {path} does not exist")
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not videos and not images:
        raise BuildError(f"--footage: no video ({', '.join(VIDEO_SUFFIXES)}) or photo "
                         f"({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")  # fmt: skip
    return videos, images


def collect_footage(
    paths: list[Path], per_video: int, seed: int = 0, log=print, model: str = "full"
) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Calibration crops and held-out gate frames from your own footage (your camera, your scene)
    instead of the test media. Each video runs through the float pipeline in video mode, as
    deployed: up to ``per_video`` evenly spread frames of its first 80 % give calibration crops,
    and up to ``HELD_OUT_PER_VIDEO`` frames of its last 20 % are held out for the gate (never
    calibrated on). Of the photos, every ``HELD_OUT_EVERY``-th is held out, the rest give
    static-mode crops. Returns (crops, [(name, frame)])."""
    import cv2

    from edge import PoseEstimator

    videos, images = footage_files(paths)
    est = PoseEstimator("float", tracking=True, num_threads=2, model=model)
    grab = _CropGrabber(est.estimator)
    held: list[tuple[str, np.ndarray]] = []
    for path in videos:
        total = _frame_count(path)
        if total < 2:
            log(f"  {path.name}: unreadable or too short, skipped")
            continue
        tail = total - max(1, round(total * HELD_OUT_TAIL))
        stride = max(1, tail // per_video)
        held_stride = max(1, (total - tail) // HELD_OUT_PER_VIDEO)
        before = len(grab.crops)
        frames, tail_frames = _track_video(
            est, grab, path, keep=range(0, tail, stride),
            hold=range(tail, sys.maxsize, held_stride)[:HELD_OUT_PER_VIDEO],
        )  # fmt: skip
        held += [(f"{path.name}#{index}", frame) for index, frame in tail_frames]
        log(f"  {path.name}: {len(grab.crops) - before} crops from {frames} frames, "
            f"{len(tail_frames)} held out")  # fmt: skip
    static = PoseEstimator("float", tracking=False, num_threads=2, model=model)
    grab_static = _CropGrabber(static.estimator)
    for i, path in enumerate(images):
        frame = cv2.imread(str(path))
        if frame is None:
            log(f"  {path.name}: unreadable, skipped")
        elif i % HELD_OUT_EVERY == HELD_OUT_EVERY // 2:
            held.append((path.name, frame))
        else:
            static.process(frame)
    if images:
        log(f"  photos: {len(grab_static.crops)} crops from {len(images)} photos")
    crops = grab.crops + grab_static.crops
    if not crops:
        raise BuildError("--footage: the float pipeline found no person to calibrate on")
    crops = np.stack(crops)
    np.random.default_rng(seed).shuffle(crops)
    return crops, held


# ---------------------------------------------------------------------------------------------
# 3. quantization (runs where ai_edge_quantizer is installed)

ACT8 = {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "INT"}
W8 = {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"}
STATIC8 = {"activation_tensor_config": ACT8, "weight_tensor_config": W8,
           "compute_precision": "INTEGER", "explicit_dequantize": False}  # fmt: skip
DYNAMIC8 = {"weight_tensor_config": W8, "compute_precision": "INTEGER",
            "explicit_dequantize": False}  # fmt: skip
# Ops kept in float, by (a regex on) their output tensor's name
FIRST_CONV = r"model_1/model/re_lu/Relu6;"
HEAD_CONVS = ("convld_3d", "convworld_3d", "conv_poseflag")  # landmarks, world, pose flag
HEADS = [*HEAD_CONVS, r"activation_poseflag", r"^Identity"]
RECIPES = {
    # everything static int8 (activations per tensor, weights per channel)
    "a8w8": [],
    # + regression heads (landmarks, world, flag) and the heatmap conv in float
    "a8w8-heads": HEADS,
    # + the first conv in float
    "a8w8-heads-first": HEADS + [FIRST_CONV],
    # + the 128x128 stem and the whole regression branch in float (ops by index below)
    "a8w8-stem-reg": HEADS,
    # + the 64x64 and 32x32 stages too: int8 only in the 16x16 and 8x8 stages and the heatmap
    # decoder (held-out mean within 3 %, the worst frame not: docs/history.md, 2026-11-29)
    "a8w8-mid": HEADS,
    # + the heatmap decoder's upsampling and adds
    "a8w8-mid-dec": HEADS,
}
# Op index ranges of the prepared graph (``prepare_float`` of the pinned model) kept in float by a
# recipe: the stem (pad, first conv, depthwise, two pointwise at 128x128: the most sensitive part)
# and the regression branch (8x8 -> 2x2 blocks feeding the landmark/world/flag heads: its drift
# moves the heatmap refinement window). Both are cheap: see docs/models.md.
FLOAT_OP_RANGES = {
    "a8w8-stem-reg": [(1, 5, "CONV_2D"), (76, 113, "DEPTHWISE_CONV_2D")],
    "a8w8-mid": [(1, 5, "CONV_2D"), (5, 25, "PAD"), (76, 113, "DEPTHWISE_CONV_2D")],
    # + the heatmap decoder's upsampling and adds (the best held-out mean, docs/history.md)
    "a8w8-mid-dec": [(1, 5, "CONV_2D"), (5, 25, "PAD"), (69, 75, "RESIZE_BILINEAR"),
                     (76, 113, "DEPTHWISE_CONV_2D")],
}  # fmt: skip
# Lite has full's layout up to the heatmap conv (op 75); its regression branch is shorter
# (ops 76-100: 8x8 -> 2x2, ending at the ADD that feeds the three heads).
LITE_FLOAT_OP_RANGES = {
    "a8w8-stem-reg": [(1, 5, "CONV_2D"), (76, 101, "DEPTHWISE_CONV_2D")],
    "a8w8-mid": [(1, 5, "CONV_2D"), (5, 25, "PAD"), (76, 101, "DEPTHWISE_CONV_2D")],
    "a8w8-mid-dec": [(1, 5, "CONV_2D"), (5, 25, "PAD"), (69, 75, "RESIZE_BILINEAR"),
                     (76, 101, "DEPTHWISE_CONV_2D")],
}  # fmt: skip
# The detector (prepared: 109 ops): a 112x112 stem (ops 1-4), the backbone down to 7x7 (5-64), an
# upsampling path back to 28x28 (65-85) and the heads (86-108: per scale a depthwise + 1x1
# classifier / regressor conv, reshapes, the two concatenations). Its outputs stay float32: the
# anchors and boxes are decoded in float.
DETECTOR_RECIPES = {"a8w8": [], "a8w8-heads": [], "a8w8-stem-heads": [], "a8w8-backbone": []}
DETECTOR_FLOAT_OP_RANGES = {
    "a8w8-heads": [(86, 109, "PAD")],
    "a8w8-stem-heads": [(1, 5, "CONV_2D"), (86, 109, "PAD")],
    # int8 only in the backbone after the stem: the upsampling path and the heads float
    "a8w8-backbone": [(1, 5, "CONV_2D"), (65, 109, "DEPTH_TO_SPACE")],
}
OP_RANGES = {"full": FLOAT_OP_RANGES, "lite": LITE_FLOAT_OP_RANGES,
             "detector": DETECTOR_FLOAT_OP_RANGES}  # fmt: skip
DEFAULT_RECIPE = "a8w8-mid-dec"
DEFAULT_DETECTOR_RECIPE = "a8w8-stem-heads"


def recipes_for(model: str) -> dict[str, list[str]]:
    """The recipes of ``--model`` (a landmark model or the detector), name -> float regexes."""
    return DETECTOR_RECIPES if TARGETS[model].kind == "detector" else RECIPES


def _op_range_regexes(name: str, float_model: bytes, model: str = "full") -> list[str]:
    """Exact scope regexes (the quantizer matches ``output tensor name;``) for the op ranges."""
    import re

    table = op_table(float_model)
    out = []
    for lo, hi, first_kind in OP_RANGES[model].get(name, []):
        if hi > len(table) or table[lo][1] != first_kind:
            found = table[lo][1] if lo < len(table) else "missing"
            raise BuildError(f"recipe {name}: op {lo} is {found}, expected {first_kind}, in a graph "
                             f"of {len(table)} ops; the float model is not the pinned one")  # fmt: skip
        out += ["^" + re.escape(table[i][2]) + ";$" for i in range(lo, hi)]
    return out


def build_recipe(name: str, extra_float: list[str] = (), float_model: bytes | None = None,
                 model: str = "full") -> list[dict]:  # fmt: skip
    if name == "dynamic":
        return [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
                 "op_config": DYNAMIC8}]  # fmt: skip
    base = name.split("+")[0]
    recipe = [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
               "op_config": STATIC8}]  # fmt: skip
    ranges = _op_range_regexes(base, float_model, model) if base in OP_RANGES[model] else []
    for regex in list(recipes_for(model)[base]) + ranges + list(extra_float):
        recipe.append({"regex": regex, "operation": "*", "algorithm_key": "no_quantize"})
    # float32 model input and outputs (QUANTIZE / DEQUANTIZE inside the graph): the pipeline
    # writes float crops and decodes float outputs
    for io in ("INPUT", "OUTPUT"):
        recipe.append({"regex": ".*", "operation": io, "algorithm_key": "no_quantize"})
    return recipe


def _collect_extremes(old: dict, new: dict) -> dict:
    """Calibration update keeping every crop's min and max of a tensor (for ``percentile_ranges``)."""
    if not old:
        return new
    mins, maxs = old.get("mins", [old["min"]]), old.get("maxs", [old["max"]])
    return {"min": np.minimum(old["min"], new["min"]), "max": np.maximum(old["max"], new["max"]),
            "mins": [*mins, new["min"]], "maxs": [*maxs, new["max"]]}  # fmt: skip


def percentile_ranges(qsvs: dict, percentile: float) -> dict:
    """Activation ranges from the ``percentile``-th percentile of the per-crop maxima and the
    (100 - percentile)-th of the minima, instead of the global extremes: a few outlying crops no
    longer widen the grid every other input is rounded on. Ranges still contain 0."""
    out = {}
    for name, qsv in qsvs.items():
        if "maxs" not in qsv:
            out[name] = qsv
            continue
        lo = np.percentile(np.stack(qsv["mins"]), 100.0 - percentile, axis=0)
        hi = np.percentile(np.stack(qsv["maxs"]), percentile, axis=0)
        out[name] = {"min": np.minimum(lo, 0.0).astype(np.float32),
                     "max": np.maximum(hi, 0.0).astype(np.float32)}  # fmt: skip
    return out


def calibration_set(items: np.ndarray, args: argparse.Namespace, what: str) -> np.ndarray:
    """The calibration inputs: ``--crops-cache`` read if it exists (else written from
    ``items``), then ``--augment``'s copies added."""
    if args.crops_cache and args.crops_cache.is_file():
        items = np.load(args.crops_cache)
        print(f"calibration {what}: {len(items)} from {args.crops_cache}")
    elif args.crops_cache:
        np.save(args.crops_cache, items)
    if args.augment:
        items = augment(items, args.augment)
    return items


def _quiet_progress_bars() -> None:
    """ai-edge-quantizer's progress bars pass ``disable=`` to tqdm explicitly, which
    TQDM_DISABLE does not override; they would fill install.sh's log with carriage returns."""
    try:
        from ai_edge_quantizer.utils import progress_utils
    except ImportError:  # another layout: its bars, if any, stay
        return
    shown = progress_utils.ProgressBar.__init__

    def hidden(self, total_steps, description="", disappear_on_finish=False, enable=None):
        shown(self, total_steps, description, disappear_on_finish, enable=False)

    progress_utils.ProgressBar.__init__ = hidden


def run_quantizer(float_model: bytes, crops: np.ndarray, recipe: list[dict], update: str,
                  log=print, kind: str = "landmark") -> bytes:  # fmt: skip
    from ai_edge_quantizer import calibrator, quantizer

    _quiet_progress_bars()

    qt = quantizer.Quantizer(bytearray(float_model), recipe)
    if not qt.need_calibration:
        return bytes(qt.quantize(enable_progress_report=False).quantized_model)
    scale, offset = (np.float32(v) for v in INPUT_RANGES[kind])
    data = {SIGNATURE: [{"input_1": c[None].astype(np.float32) * scale + offset} for c in crops]}
    kwargs = {}
    if update == "minmax":  # global min/max over the whole set instead of a moving average

        def minmax(old, new):
            if not old:
                return new
            return {"min": np.minimum(old["min"], new["min"]),
                    "max": np.maximum(old["max"], new["max"])}  # fmt: skip

        kwargs["qsv_update_func"] = minmax
    elif update.startswith("percentile:"):  # a percentile of the per-crop extremes
        kwargs["qsv_update_func"] = _collect_extremes
    calib = calibrator.Calibrator(bytearray(float_model), num_threads=2, **kwargs)
    t = time.perf_counter()
    calib.calibrate(data, qt._recipe_manager)  # Quantizer.calibrate() with a custom update
    log(f"  calibrated on {len(crops)} crops in {time.perf_counter() - t:.0f} s")
    qsvs = calib.get_model_qsvs()
    if update.startswith("percentile:"):
        qsvs = percentile_ranges(qsvs, float(update.split(":", 1)[1]))
    result = qt.quantize(qsvs, enable_progress_report=False)
    return bytes(result.quantized_model)


def run_stage(float_model: bytes, crops: np.ndarray, recipe: list[dict], update: str,
              qat_epochs: int, log=print, kind: str = "landmark", qat_lr: float = QAT_LR,
              rounding: str = "nearest", rounding_crops: int = 96) -> bytes:  # fmt: skip
    """Quantize; then (``rounding`` not nearest) re-round the int8 weights against float
    (``rounding.py``); then (``qat_epochs`` > 0) distill them against the float model, starting
    from the re-rounded weights when there are some."""
    model = inline_buffers(run_quantizer(float_model, crops, recipe, update, log, kind))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if rounding != "nearest":
        import rounding as optimised

        model = inline_buffers(optimised.optimise_rounding(
            float_model, model, crops, count=rounding_crops,
            sequential=rounding == "gptq-upstream", log=log))  # fmt: skip
    if qat_epochs > 0:
        import qat

        log(f"quantization-aware distillation, {qat_epochs} epochs on {len(crops)} crops, "
            f"learning rate {qat_lr}:")  # fmt: skip
        model = qat.distill(float_model, model, crops, epochs=qat_epochs, lr=qat_lr, log=log,
                            from_int8=rounding != "nearest")  # fmt: skip
    return model


def _quantize_stage(args) -> None:
    """Hidden entry point run under --quantizer-python."""
    crops = np.load(args.crops)
    recipe = json.loads(Path(args.recipe_json).read_text())
    log = lambda m: print(m, flush=True)  # noqa: E731
    out = run_stage(Path(args.float_in).read_bytes(), crops, recipe, args.update,
                    int(args.qat_epochs), log, args.input_kind or "landmark",
                    float(args.qat_lr), args.rounding, int(args.rounding_crops))  # fmt: skip
    Path(args.stage_out).write_bytes(out)


def quantize(float_model: bytes, crops: np.ndarray, recipe: list[dict], update: str,
             quantizer_python: str | None, qat_epochs: int = 0, log=print,
             kind: str = "landmark", qat_lr: float = QAT_LR, rounding: str = "nearest",
             rounding_crops: int = 96) -> bytes:  # fmt: skip
    try:
        import ai_edge_quantizer  # noqa: F401

        if qat_epochs:
            import torch  # noqa: F401
        return run_stage(float_model, crops, recipe, update, qat_epochs, log, kind, qat_lr,
                         rounding, rounding_crops)  # fmt: skip
    except ImportError:
        if not quantizer_python:
            raise BuildError(
                "ai_edge_quantizer is not installed here: pip install ai-edge-quantizer==0.10.0 "
                "(here or in a scratch venv, then pass --quantizer-python VENV/bin/python)"
            ) from None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "float.tflite").write_bytes(float_model)
        np.save(tmp / "crops.npy", crops)
        (tmp / "recipe.json").write_text(json.dumps(recipe))
        cmd = [quantizer_python, str(Path(__file__).resolve()), "--stage", "quantize",
               "--float-in", str(tmp / "float.tflite"), "--crops", str(tmp / "crops.npy"),
               "--recipe-json", str(tmp / "recipe.json"), "--update", update,
               "--qat-epochs", str(qat_epochs), "--qat-lr", repr(qat_lr),
               "--rounding", rounding, "--rounding-crops", str(rounding_crops),
               "--stage-out", str(tmp / "out.tflite"),
               "--input-kind", kind]  # fmt: skip
        done = subprocess.run(cmd, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            raise BuildError(f"the quantization step under {quantizer_python} failed "
                             f"(exit {done.returncode}, see above)")  # fmt: skip
        return (tmp / "out.tflite").read_bytes()


def _logit(p: np.ndarray) -> np.ndarray:
    """The flag's logit; NaN where float32's sigmoid saturated (0 or 1: the logit is lost)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = np.log(p / (1.0 - p))
    return np.where((p > 0.0) & (p < 1.0 - 2.0**-24), out, np.nan)


def correct_head_biases(candidate: bytes, crops: np.ndarray, log=print) -> bytes:
    """Bias correction of the candidate's float heads: over the calibration crops, the mean
    difference between the candidate's and the float model's raw landmarks (195), world
    landmarks (117) and pose-flag logit is subtracted from the bias of the head that produces
    it. The heads are linear in their bias, so a constant shift is removed exactly; int8 features
    leave the landmarks about 0.7 px low and the flag's logit 0.38 lower on average."""
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.models import locate

    schema = _schema()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.tflite"
        path.write_bytes(candidate)
        ref, cand = LandmarkModel(locate("pose_landmark_full"), 2), LandmarkModel(path, 2)
        diffs = {key: [] for key in HEAD_CONVS}
        for crop in crops:
            outs = []
            for model in (ref, cand):
                model.model.input_view()[:] = crop.astype(np.float32) * np.float32(1.0 / 255.0)
                model.infer()
                outs.append((model.model.output("landmarks").astype(np.float64),
                             model.model.output("world").astype(np.float64),
                             _logit(model.model.output("flag"))))  # fmt: skip
            for key, a, b in zip(HEAD_CONVS, outs[0], outs[1], strict=True):
                diffs[key].append(b - a)
        del ref, cand
    shift = {key: np.mean(v, axis=0) for key, v in diffs.items() if key != "conv_poseflag"}
    flag = np.asarray(diffs["conv_poseflag"])
    flag = flag[np.isfinite(flag)]  # crops where neither sigmoid saturated
    shift["conv_poseflag"] = np.array([flag.mean() if len(flag) else 0.0])
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(candidate, 0))
    sg, ops = m.subgraphs[0], _op_names(m)
    done = set()
    for op in sg.operators:
        name = sg.tensors[op.outputs[0]].name.decode()
        key = next((k for k in HEAD_CONVS if k in name), None)
        if ops[op.opcodeIndex] != "CONV_2D" or key is None:
            continue
        bias_t = sg.tensors[op.inputs[2]]
        if bias_t.type != schema.TensorType.FLOAT32:
            raise BuildError(f"head {key} is not float in the candidate; cannot correct its bias")
        bias = np.frombuffer(bytes(bytearray(m.buffers[bias_t.buffer].data)), np.float32)
        if bias.shape != shift[key].shape:
            raise BuildError(f"head {key}: bias {bias.shape} vs outputs {shift[key].shape}")
        corrected = (bias - shift[key]).astype(np.float32)
        m.buffers[bias_t.buffer].data = np.frombuffer(corrected.tobytes(), dtype=np.uint8)
        done.add(key)
    if done != set(HEAD_CONVS):
        raise BuildError(f"heads not found for bias correction: {set(HEAD_CONVS) - done}")
    log(f"  head bias correction on {len(crops)} crops: landmarks mean |shift| "
        f"{np.abs(shift['convld_3d']).mean():.3f} px, world {np.abs(shift['convworld_3d']).mean():.4f} m, "
        f"flag logit {float(shift['conv_poseflag'][0]):+.3f}")  # fmt: skip
    return _pack(m)


# ---------------------------------------------------------------------------------------------
# 4. verification through the pipeline's own decode


def torso(lm: np.ndarray) -> float:
    shoulders = (lm[11, :2] + lm[12, :2]) / 2
    hips = (lm[23, :2] + lm[24, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def landmark_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Mean 2D distance over the 33 landmarks / the reference's torso length."""
    return float(np.linalg.norm(ours[:33, :2] - ref[:33, :2], axis=1).mean()) / torso(ref)


def _presence_is_marginal(model, flag: float, draws: int = 8) -> bool:
    """Whether the float model's own pose/no-pose decision on the crop it just ran flips when
    every pixel of that crop moves by -1, 0 or +1 grey level (a few random draws). Such a photo
    sits on the model's threshold: a variant deciding differently there is reported, not failed."""
    crop = np.rint(model.model.input_view() * 255.0)
    rng = np.random.default_rng(0)
    found = flag > 0.5
    flips = False
    for _ in range(draws):
        noisy = np.clip(crop + rng.integers(-1, 2, size=crop.shape), 0, 255)
        model.model.input_view()[:] = noisy.astype(np.float32) * np.float32(1.0 / 255.0)
        model.infer()
        flips |= (float(model.model.output("flag")[0]) > 0.5) != found
    return bool(flips)


def media_reference(reference: Path = REFERENCE) -> dict:
    """MediaPipe's static-mode landmarks of the test photos, keyed as ``held_out_frames`` names
    them (``images/<file>``)."""
    items = json.loads(reference.read_text())["images"]
    return {f"images/{item['file']}": item["pose"] for item in items}


def evaluate(candidate: Path, media: Path, reference: Path = REFERENCE) -> dict:
    """``evaluate_frames`` on the held-out test photos, with MediaPipe's reference landmarks."""
    import cv2

    ref = {item["file"]: item["pose"] for item in json.loads(reference.read_text())["images"]}
    frames = [(name, cv2.imread(str(media / "images" / name))) for name in sorted(ref)]
    return evaluate_frames(candidate, frames, ref)


def evaluate_frames(
    candidate: Path,
    frames: list[tuple[str, np.ndarray]],
    reference: dict | None = None,
    float_name: str = "pose_landmark_full",
    band: tuple[float, float] | None = None,
) -> dict:
    """Float (``float_name``) vs ``candidate`` estimator on held-out ``frames`` ((name, BGR image)
    pairs), on the same crop (the float detector's ROI), decoded by ``edge.pose.landmarks`` with
    heatmap refinement; also against MediaPipe's landmarks where ``reference`` (name -> pose or
    None) has them. The candidate runs as the pipeline runs it: with ``band`` (the pipeline's
    ``INT8_FALLBACK_BAND``) it is a ``FallbackLandmarkModel`` handing the frames whose flag falls
    in the band to float, and the summary's ``alone`` gives the same figures without the hand-over."""
    from edge.pose.detector import Detector
    from edge.pose.landmarks import FallbackLandmarkModel, LandmarkModel
    from edge.pose.models import locate
    from edge.pose.tracking import roi_from_detection

    ref = reference or {}
    detector = Detector(locate("pose_detection"), 2)
    ref_model = LandmarkModel(locate(float_name), 2)
    alone = LandmarkModel(candidate, 2)
    cand_model = FallbackLandmarkModel(alone, ref_model, band) if band else alone
    rows = []
    for name, frame in frames:
        mp_pose = ref.get(name)
        detections = detector.detect(frame)
        if not detections:
            rows.append({"file": name, "float": False, "int8": False, "mp": mp_pose is not None})
            continue
        rect = roi_from_detection(detections[0])
        a = ref_model.estimate(frame, rect)
        flag_float = float(ref_model.model.output("flag")[0])
        marginal = _presence_is_marginal(ref_model, flag_float)
        # one int8 invoke: the hand-over leaves the int8 outputs in place for the alone figures
        padding = cand_model.preprocess(frame, rect)
        before = getattr(cand_model, "fallbacks", 0)
        cand_model.infer()
        handed_over = getattr(cand_model, "fallbacks", 0) > before
        b = cand_model.postprocess(rect, padding, frame.shape)
        b_alone = alone.postprocess(rect, padding, frame.shape) if handed_over else b
        flag_int8 = float(alone.model.output("flag")[0])
        row = {"file": name, "float": a is not None, "int8": b is not None,
               "int8_alone": b_alone is not None, "mp": mp_pose is not None,
               "flag_float": flag_float, "flag_int8": flag_int8, "marginal": marginal,
               "fallback": handed_over}  # fmt: skip
        if a is not None and b is not None:
            la, lb = a.landmarks, b.landmarks
            side = max(rect.width * frame.shape[1], rect.height * frame.shape[0])
            row["torso_share"] = torso(la) / side
        if row.get("torso_share", 0.0) >= MIN_TORSO_SHARE and b_alone is not None:
            row["vs_float_alone"] = landmark_error(b_alone.landmarks, la)
        if row.get("torso_share", 0.0) >= MIN_TORSO_SHARE:  # else nothing to measure by: reported
            row["vs_float"] = landmark_error(lb, la)
            row["vis"] = float(np.abs(lb[:33, 3] - la[:33, 3]).max())
            row["world_cm"] = float(np.abs(b.world[:33] - a.world[:33]).mean() * 100)
            row["flag"] = abs(a.score - b.score)
            if mp_pose is not None:
                mp = np.array(mp_pose["landmarks"], dtype=np.float64)
                row["vs_mp"] = landmark_error(lb, mp)
                row["float_vs_mp"] = landmark_error(la, mp)
        rows.append(row)
    scored = [r for r in rows if "vs_float" in r]
    if not scored:
        raise BuildError("no held-out image has a person both models find: nothing to judge by")
    with_mp = [r for r in scored if "vs_mp" in r]
    summary = {
        "images": len(rows),
        "compared": len(scored),
        "presence_mismatch": [
            r["file"] for r in rows if r["float"] != r["int8"] and not r.get("marginal")
        ],
        "presence_mismatch_marginal": [
            r["file"] for r in rows if r["float"] != r["int8"] and r.get("marginal")
        ],
        "no_torso": [r["file"] for r in rows if r.get("torso_share", 1.0) < MIN_TORSO_SHARE],
        "mean_vs_float": float(np.mean([r["vs_float"] for r in scored])),
        "median_vs_float": float(np.median([r["vs_float"] for r in scored])),
        "worst_vs_float": max((r["vs_float"], r["file"]) for r in scored),
        "mean_vs_mp": float(np.mean([r["vs_mp"] for r in with_mp])) if with_mp else None,
        "worst_vs_mp": max((r["vs_mp"], r["file"]) for r in with_mp) if with_mp else None,
        "float_mean_vs_mp": (
            float(np.mean([r["float_vs_mp"] for r in with_mp])) if with_mp else None
        ),
        "max_vis": max(r["vis"] for r in scored),
        "mean_world_cm": float(np.mean([r["world_cm"] for r in scored])),
        "max_flag": max(r["flag"] for r in scored),
        "band": list(band) if band else None,
        "fallback_frames": [r["file"] for r in rows if r.get("fallback")],
        "alone": _alone_summary(rows),
    }
    return {"summary": summary, "rows": rows}


def _alone_summary(rows: list[dict]) -> dict:
    """The candidate's figures without the hand-over to float (``evaluate_frames``)."""
    scored = [r for r in rows if "vs_float_alone" in r]
    errors = [r["vs_float_alone"] for r in scored]
    return {
        "compared": len(scored),
        "mean_vs_float": float(np.mean(errors)) if errors else None,
        "median_vs_float": float(np.median(errors)) if errors else None,
        "worst_vs_float": max((r["vs_float_alone"], r["file"]) for r in scored) if scored else None,
        "presence_mismatch": [
            r["file"] for r in rows
            if "int8_alone" in r and r["float"] != r["int8_alone"] and not r.get("marginal")
        ],
    }  # fmt: skip


# The int8 detector's gate: on every held-out frame the same people as float (detections matched
# one to one by box IoU above NMS's 0.3; one left unmatched on either side is a person found
# differently), each matched box with IoU >= DETECTOR_MIN_IOU, and the float estimator's
# static-mode landmarks from the int8 detector's ROIs within the estimator's budget of those from
# float's ROIs (``--tolerance``, ``--worst-tolerance``) with the same pose decisions.
DETECTOR_MIN_IOU = 0.9
MATCH_IOU = 0.3


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes (float64)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    inter = ix * iy if ix > 0 and iy > 0 else 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_detections(
    boxes_a: list[np.ndarray], boxes_b: list[np.ndarray], min_iou: float = MATCH_IOU
) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """One-to-one matching of two detection sets by box IoU, the most overlapping pair first:
    (matched (i, j, iou), unmatched indices of ``boxes_a``, unmatched of ``boxes_b``). Pairs
    overlapping by ``min_iou`` or less are not the same person."""
    pairs = sorted(((box_iou(a, b), i, j) for i, a in enumerate(boxes_a)
                    for j, b in enumerate(boxes_b)), reverse=True)  # fmt: skip
    used_a, used_b, matched = set(), set(), []
    for value, i, j in pairs:
        if value <= min_iou:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            matched.append((i, j, value))
    matched.sort()
    return (matched, [i for i in range(len(boxes_a)) if i not in used_a],
            [j for j in range(len(boxes_b)) if j not in used_b])  # fmt: skip


def _detections_marginal(detector, frame: np.ndarray, draws: int = 8) -> bool:
    """Whether the float detector's own set of people on ``frame`` changes when every input value
    moves by -1, 0 or +1 grey level (a few random draws): a detection sitting on the score
    threshold, which a variant may find or not (reported, not failed)."""
    padding = detector.preprocess(frame)
    size = (frame.shape[1], frame.shape[0])
    clean = detector.postprocess(*detector.infer(), padding, size)
    base = np.rint((detector.model.input_view() + 1.0) * 127.5)
    rng = np.random.default_rng(0)
    for _ in range(draws):
        noisy = np.clip(base + rng.integers(-1, 2, size=base.shape), 0, 255)
        detector.model.input_view()[:] = noisy.astype(np.float32) * np.float32(2 / 255) - 1
        found = detector.postprocess(*detector.infer(), padding, size)
        _, lost, new = match_detections([d.box for d in clean], [d.box for d in found])
        if lost or new:
            return True
    return False


def _detect_noisy(detector, frame: np.ndarray, amplitude: int, rng) -> list:
    """The detections of ``detector`` with every input value moved by up to ``amplitude`` grey
    levels (uniform integers)."""
    padding = detector.preprocess(frame)
    base = np.rint((detector.model.input_view() + 1.0) * 127.5)
    noisy = np.clip(base + rng.integers(-amplitude, amplitude + 1, size=base.shape), 0, 255)
    detector.model.input_view()[:] = noisy.astype(np.float32) * np.float32(2 / 255) - 1
    return detector.postprocess(*detector.infer(), padding, (frame.shape[1], frame.shape[0]))


def evaluate_detector(
    candidate: Path | None,
    frames: list[tuple[str, np.ndarray]],
    reference: dict | None = None,
    estimator: str = "pose_landmark_full",
    noise: int = 0,
) -> dict:
    """Float vs ``candidate`` detector on ``frames`` ((name, BGR image)), both at the pipeline's
    score threshold: the people each finds (matched by ``match_detections``), the IoU of matched
    boxes, their keypoints' distance (share of float's body scale, keypoints 0-1), and the
    static-mode landmarks of the float ``estimator`` on each matched pair's ROIs (share of the
    torso, vs each other and vs MediaPipe's reference for the top detection where it has one).
    With ``candidate`` None, the float detector on its input moved by up to ``noise`` grey
    levels stands in for it: float's own noise floor under the same measure."""
    from edge.pose.detector import Detector
    from edge.pose.landmarks import LandmarkModel
    from edge.pose.models import locate
    from edge.pose.tracking import roi_from_detection

    ref = reference or {}
    float_det = Detector(locate("pose_detection"), 2)
    cand_det = Detector(candidate, 2) if candidate is not None else None
    model = LandmarkModel(locate(estimator), 2)
    rng = np.random.default_rng(0)
    rows = []
    for name, frame in frames:
        a = float_det.detect(frame)
        b = cand_det.detect(frame) if cand_det else _detect_noisy(float_det, frame, noise, rng)
        matched, lost, new = match_detections([d.box for d in a], [d.box for d in b])
        row = {"file": name, "float": len(a), "int8": len(b), "lost": len(lost), "new": len(new),
               "iou": [m[2] for m in matched], "keypoints": [], "landmarks": []}  # fmt: skip
        if lost or new:
            row["marginal"] = _detections_marginal(float_det, frame)
        for i, j, _ in matched:
            da, db = a[i], b[j]
            scale = float(np.linalg.norm(da.keypoints[1] - da.keypoints[0]))
            kp = np.linalg.norm(db.keypoints - da.keypoints, axis=1)
            row["keypoints"].append(float(kp.max() / scale) if scale > 0 else float("inf"))
            ra, rb = roi_from_detection(da), roi_from_detection(db)
            la = model.estimate(frame, ra)
            flag_a = float(model.model.output("flag")[0])
            marginal = _presence_is_marginal(model, flag_a) if la is not None else False
            lb = model.estimate(frame, rb)
            entry = {"float": la is not None, "int8": lb is not None, "marginal": marginal}
            if la is not None and lb is not None:
                side = max(ra.width * frame.shape[1], ra.height * frame.shape[0])
                if torso(la.landmarks) / side >= MIN_TORSO_SHARE:
                    entry["vs_float"] = landmark_error(lb.landmarks, la.landmarks)
                    mp_pose = ref.get(name)
                    if i == 0 and mp_pose is not None:
                        mp = np.array(mp_pose["landmarks"], dtype=np.float64)
                        entry["vs_mp"] = landmark_error(lb.landmarks, mp)
                        entry["float_vs_mp"] = landmark_error(la.landmarks, mp)
            row["landmarks"].append(entry)
        rows.append(row)
    return {"summary": summarize_detector(rows), "rows": rows}


def summarize_detector(rows: list[dict]) -> dict:
    """The gate's figures from ``evaluate_detector``'s rows."""
    ious = [(v, r["file"]) for r in rows for v in r["iou"]]
    kps = [(v, r["file"]) for r in rows for v in r["keypoints"]]
    lms = [(e, r["file"]) for r in rows for e in r["landmarks"]]
    scored = [(e["vs_float"], f) for e, f in lms if "vs_float" in e]
    with_mp = [(e["vs_mp"], f) for e, f in lms if "vs_mp" in e]
    return {
        "frames": len(rows),
        "detections_float": sum(r["float"] for r in rows),
        "detections_int8": sum(r["int8"] for r in rows),
        "matched": len(ious),
        "people_mismatch": [r["file"] for r in rows
                            if (r["lost"] or r["new"]) and not r.get("marginal")],
        "people_mismatch_marginal": [r["file"] for r in rows
                                     if (r["lost"] or r["new"]) and r.get("marginal")],
        "min_iou": min(ious) if ious else None,
        "mean_iou": float(np.mean([v for v, _ in ious])) if ious else None,
        "below_iou": [f for v, f in ious if v < DETECTOR_MIN_IOU],
        "mean_keypoints": float(np.mean([v for v, _ in kps])) if kps else None,
        "worst_keypoints": max(kps) if kps else None,
        "compared": len(scored),
        "presence_mismatch": [f for e, f in lms if e["float"] != e["int8"] and not e["marginal"]],
        "mean_vs_float": float(np.mean([v for v, _ in scored])) if scored else None,
        "median_vs_float": float(np.median([v for v, _ in scored])) if scored else None,
        "worst_vs_float": max(scored) if scored else None,
        "mean_vs_mp": float(np.mean([v for v, _ in with_mp])) if with_mp else None,
        "worst_vs_mp": max(with_mp) if with_mp else None,
    }  # fmt: skip


def detector_gate_passes(s: dict, tolerance: float, worst_tolerance: float,
                         min_iou: float = DETECTOR_MIN_IOU) -> bool:  # fmt: skip
    """The same people as float on every frame, every matched box at IoU >= ``min_iou``, the
    static-mode landmarks within the estimator's budget with the same pose decisions."""
    return bool(
        s["compared"]
        and not s["people_mismatch"]
        and (s["min_iou"] is None or s["min_iou"][0] >= min_iou)
        and s["mean_vs_float"] <= tolerance
        and s["worst_vs_float"][0] <= worst_tolerance
        and not s["presence_mismatch"]
    )


def bench(models: dict[str, Path], threads=(1, 2), runs: int = 200, rounds: int = 5,
          kind: str = "landmark") -> dict:  # fmt: skip
    """Invoke time (ms) of estimators (or detectors: ``kind``), interleaved: for each round, each
    model runs ``runs`` times on the same input; best round's median and the overall minimum per
    model and thread count."""
    from edge.pose.detector import Detector
    from edge.pose.landmarks import LandmarkModel

    rng = np.random.default_rng(0)
    size = 224 if kind == "detector" else 256
    x = rng.random((size, size, 3), dtype=np.float32)
    out = {}
    for n in threads:
        load = Detector if kind == "detector" else LandmarkModel
        loaded = {k: load(p, n) for k, p in models.items()}
        for m in loaded.values():
            m.model.input_view()[:] = x
            for _ in range(20):
                m.model.invoke()
        times = {k: [] for k in loaded}
        for _ in range(rounds):
            for k, m in loaded.items():
                t = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    m.model.invoke()
                    t.append(time.perf_counter() - t0)
                times[k].append(t)
        for k, ts in times.items():
            out[(k, n)] = {"median_ms": min(float(np.median(t)) for t in ts) * 1e3,
                           "min_ms": min(min(t) for t in ts) * 1e3}  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    """Exit 0: built (or already there) and gated; 1: the gate refused the model (install.sh
    says so); 2: it could not be built or evaluated at all (bad arguments, missing files...)."""
    try:
        return _main(argv)
    except BuildError as exc:
        print(f"quantize.py: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        try:
            from edge.pose.models import ModelError
        except ImportError:
            ModelError = OSError  # noqa: N806 - only for the test below
        if not isinstance(exc, ModelError | OSError):
            traceback.print_exc()  # a bug: keep the trace, but never report it as a gate refusal
        print(f"quantize.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _valid_update(update: str) -> bool:
    if update in ("minmax", "ema"):
        return True
    kind, _, value = update.partition(":")
    try:
        return kind == "percentile" and 50.0 < float(value) <= 100.0
    except ValueError:
        return False


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad values before minutes of collecting crops."""
    if args.recipe is None:
        args.recipe = DEFAULT_DETECTOR_RECIPE if args.model == "detector" else DEFAULT_RECIPE
    defaults = DETECTOR_DEFAULTS if args.model == "detector" else LANDMARK_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    recipes = recipes_for(args.model)
    if args.recipe != "dynamic" and args.recipe.split("+")[0] not in recipes:
        raise BuildError(f"--recipe {args.recipe}: one of {', '.join(recipes)} or dynamic "
                         f"(for --model {args.model})")  # fmt: skip
    if args.model != "full" and (args.qat_epochs or args.head_bias_correction):
        raise BuildError("--qat-epochs and --head-bias-correction are for --model full only")
    if args.model == "detector" and args.rounding != "nearest":
        raise BuildError(f"--rounding {args.rounding} is for the landmark models")
    if args.model == "detector" and args.footage:
        raise BuildError("--footage is for the landmark models; the detector is calibrated and "
                         "gated on the test media")  # fmt: skip
    if not _valid_update(args.update):
        raise BuildError(f"--update {args.update}: minmax, ema or percentile:P with 50 < P <= 100")
    for kind in args.augment or []:
        if kind not in AUGMENTATIONS:
            raise BuildError(f"--augment {kind}: one of {', '.join(AUGMENTATIONS)}")
    for name in ("per_video", "rounding_crops"):
        if getattr(args, name) < 1:
            raise BuildError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("qat_epochs", "bench"):
        if getattr(args, name) < 0:
            raise BuildError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not (math.isfinite(args.qat_lr) and args.qat_lr > 0):
        raise BuildError(f"--qat-lr must be a positive number, got {args.qat_lr}")
    for name in ("tolerance", "worst_tolerance"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise BuildError(f"--{name.replace('_', '-')} must be a positive share, got {value}")


def _print_detector(label: str, s: dict) -> None:
    worst_iou = s["min_iou"]
    print(f"{label}: {s['frames']} frames, detections float {s['detections_float']} / int8 "
          f"{s['detections_int8']}, matched {s['matched']}; people found differently: "
          f"{s['people_mismatch'] or 'none'}"
          + (f" (and on {s['people_mismatch_marginal']}, where float's own detections change "
             "under +-1 grey level noise: reported, not failed)"
             if s["people_mismatch_marginal"] else ""))  # fmt: skip
    if worst_iou:
        print(f"  box IoU: mean {s['mean_iou']:.3f}, min {worst_iou[0]:.3f} ({worst_iou[1]}); "
              f"under {DETECTOR_MIN_IOU}: {len(s['below_iou'])}; keypoints mean "
              f"{s['mean_keypoints']:.2%}, worst {s['worst_keypoints'][0]:.2%} "
              f"({s['worst_keypoints'][1]}) of float's body scale")  # fmt: skip
    if s["compared"]:
        print(f"  static-mode landmarks (float estimator) via int8 ROIs vs via float's: mean "
              f"{s['mean_vs_float']:.2%}, median {s['median_vs_float']:.2%}, worst "
              f"{s['worst_vs_float'][0]:.2%} ({s['worst_vs_float'][1]}) of torso over "
              f"{s['compared']} people; pose decided differently: "
              f"{s['presence_mismatch'] or 'none'}")  # fmt: skip
    if s["mean_vs_mp"] is not None:
        print(f"  vs MediaPipe: mean {s['mean_vs_mp']:.2%}, worst {s['worst_vs_mp'][0]:.2%} "
              f"({s['worst_vs_mp'][1]})")  # fmt: skip


def _main_detector(args, target: Target, float_path: Path, media: Path) -> int:
    """Build (or ``--evaluate``) the int8 detector and judge it by ``detector_gate_passes`` on
    the held-out sources; the record is written only if it passes."""
    from edge.pose import models

    if not (media / "images").is_dir():
        raise BuildError(f"test media not found at {media} (set BLAZEPOSE_EDGE_MEDIA): the "
                         "detector is calibrated and gated on them")  # fmt: skip
    print("detector inputs from the licence-clean sources, gate frames from the others:")
    inputs, side, held = collect_detector_inputs(media, args.per_video)
    inputs = calibration_set(inputs, args, "inputs")
    print(f"calibration inputs: {len(inputs)}; calibration-side frames: {len(side)}; "
          f"held-out frames: {len(held)}")  # fmt: skip
    if args.evaluate:
        candidate = args.evaluate
    else:
        float_model = prepare_float(float_path.read_bytes(), target.keep_outputs)
        if args.float_out:
            args.float_out.write_bytes(float_model)
        recipe = build_recipe(args.recipe, args.keep_float, float_model, "detector")
        print(f"quantizing the detector with recipe {args.recipe} (+ float: "
              f"{args.keep_float or 'none'}), activation ranges: {args.update}")  # fmt: skip
        model = quantize(float_model, inputs, recipe, args.update, args.quantizer_python,
                         kind="detector")  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        candidate = args.out.with_suffix(".candidate.tflite")
        candidate.write_bytes(inline_buffers(model))
    reference = media_reference(target.reference)
    side_s = evaluate_detector(candidate, side, reference)["summary"]
    _print_detector(f"calibration side ({len(side)} frames of the calibration sources)", side_s)
    result = evaluate_detector(candidate, held, reference)
    s = result["summary"]
    _print_detector("held-out sources", s)
    floor = evaluate_detector(None, held, reference, noise=1)["summary"]
    _print_detector("for scale, float itself with its input moved by +-1 grey level", floor)
    if not s["compared"]:
        raise BuildError("no held-out frame has a person both detectors find: nothing to judge by")
    timing = {}
    if args.bench:
        timing = bench({"float": float_path, "candidate": candidate}, runs=args.bench,
                       kind="detector")  # fmt: skip
        for (k, n), v in timing.items():
            print(f"  invoke {k:15s} {n} thread(s): median {v['median_ms']:.2f} ms, "
                  f"min {v['min_ms']:.2f} ms")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(
            {"summary": s, "side": side_s, "float_noise_floor": floor, "rows": result["rows"],
             "timing": {f"{k} x{n}": v for (k, n), v in timing.items()},
             "size": candidate.stat().st_size}, indent=1))  # fmt: skip
    ok = detector_gate_passes(s, args.tolerance, args.worst_tolerance)
    if args.evaluate:
        return 0 if ok else 1
    if not ok:
        print(f"REFUSED: not the same people as float, a box under IoU {DETECTOR_MIN_IOU}, or "
              f"static-mode landmarks beyond tolerance (mean <= {args.tolerance:.1%}, worst <= "
              f"{args.worst_tolerance:.1%}, same pose decisions); {args.out} not written (the "
              f"candidate is left at {candidate} for inspection)", file=sys.stderr)  # fmt: skip
        return 1
    os.replace(candidate, args.out)
    split = media_split(media)
    record = {
        "name": args.out.stem,
        "file": args.out.name,
        "size": args.out.stat().st_size,
        "sha256": models.sha256_of(args.out),
        "source_sha256": models.sha256_of(float_path),
        "recipe": f"{args.recipe}" + "".join(f"+float:{r}" for r in args.keep_float)
                  + "".join(f"+augment:{a}" for a in args.augment or [])
                  + f", ranges {args.update}",
        "gate": {"passed": True, "kind": "detector", "min_iou_tolerance": DETECTOR_MIN_IOU,
                 "tolerance": args.tolerance, "worst_tolerance": args.worst_tolerance,
                 "frames": s["frames"], "detections": s["detections_float"],
                 "people_mismatch": s["people_mismatch"],
                 "people_mismatch_marginal": s["people_mismatch_marginal"],
                 "min_iou": s["min_iou"][0] if s["min_iou"] else None,
                 "mean_iou": s["mean_iou"], "mean_keypoints": s["mean_keypoints"],
                 "worst_keypoints": s["worst_keypoints"][0] if s["worst_keypoints"] else None,
                 "mean_vs_float": s["mean_vs_float"], "median_vs_float": s["median_vs_float"],
                 "worst_vs_float": s["worst_vs_float"][0], "worst_frame": s["worst_vs_float"][1],
                 "mean_vs_mediapipe": s["mean_vs_mp"],
                 "worst_vs_mediapipe": s["worst_vs_mp"][0] if s["worst_vs_mp"] else None,
                 "presence_mismatch": s["presence_mismatch"],
                 "held_out": models.HELD_OUT_SOURCES, "sources": sorted(split["held_out"])},
        "calibration": {"sources": sorted(split["calibration"]), "inputs": len(inputs),
                        "augment": args.augment or [],
                        "side": {"frames": side_s["frames"], "min_iou": side_s["min_iou"][0]
                                 if side_s["min_iou"] else None,
                                 "people_mismatch": side_s["people_mismatch"],
                                 "mean_vs_float": side_s["mean_vs_float"],
                                 "worst_vs_float": side_s["worst_vs_float"][0]
                                 if side_s["worst_vs_float"] else None}},
        "timing_ms": {f"{k} x{n}": v["median_ms"] for (k, n), v in timing.items()},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    record_path = args.out.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} ({record['size']} bytes, sha256 {record['sha256'][:12]}...) and "
          f"{record_path.name}")  # fmt: skip
    return 0


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=TARGETS, default="full",
                        help="the model to quantize: a landmark model (full, lite) or the "
                             "person detector (default: full)")  # fmt: skip
    parser.add_argument("--out", type=Path,
                        help="where to write the int8 model (default: the models directory's "
                             "<model>_int8.tflite, e.g. "
                             f"{INT8_NAME}.tflite, with its record {INT8_NAME}.json)")  # fmt: skip
    parser.add_argument("--qat-lr", type=float, default=QAT_LR, metavar="LR",
                        help="the distillation's learning rate (Adam, cosine schedule)")  # fmt: skip
    parser.add_argument("--qat-epochs", type=int, default=QAT_EPOCHS,
                        help="epochs of quantization-aware distillation after quantizing (0: off; "
                             "needs torch beside the quantizer)")  # fmt: skip
    parser.add_argument("--head-bias-correction", action="store_true",
                        help="shift the float heads' biases by the mean int8-vs-float output "
                             "difference (off: it finds the marginal photo and fails the gate; "
                             "see docs/models.md)")  # fmt: skip
    parser.add_argument("--rounding", choices=ROUNDINGS,
                        help="int8 weights (default: gptq; nearest for the detector): the "
                             "quantizer's round-to-nearest; gptq: re-rounded "
                             "layer by layer to minimise each layer's output error on the float "
                             "model's inputs; gptq-upstream: on the int8 model's own inputs, "
                             "towards float's outputs (models/rounding.py)")  # fmt: skip
    parser.add_argument("--rounding-crops", type=int, default=96, metavar="N",
                        help="calibration crops the gptq rounding looks at (evenly spread)")  # fmt: skip
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when a verified, gated int8 model is already there")  # fmt: skip
    parser.add_argument("--recipe",
                        help=f"one of {', '.join(RECIPES)}, or dynamic (default "
                             f"{DEFAULT_RECIPE}); for the detector one of "
                             f"{', '.join(DETECTOR_RECIPES)} (default "
                             f"{DEFAULT_DETECTOR_RECIPE})")  # fmt: skip
    parser.add_argument("--keep-float", action="append", default=[], metavar="REGEX",
                        help="also keep ops whose output tensor name matches REGEX in float")  # fmt: skip
    parser.add_argument("--update", metavar="minmax|ema|percentile:P",
                        help="activation ranges: the quantizer's moving average, global min/max, "
                             "or that percentile of the per-crop extremes (default "
                             "percentile:99.9)")  # fmt: skip
    parser.add_argument("--footage", type=Path, nargs="+", metavar="PATH",
                        help="calibrate and gate on your own videos/photos (files or folders) "
                             "instead of the test media: the end of each video and every 5th "
                             "photo are held out for the gate")  # fmt: skip
    parser.add_argument("--per-video", type=int, default=80, help="calibration crops per video")
    parser.add_argument("--augment", type=lambda v: [k for k in v.split(",") if k],
                        metavar="flip,light,scale,lowres",
                        help="also calibrate on transformed copies of the crops (mirrored, "
                             "relit, rescaled)")  # fmt: skip
    parser.add_argument("--crops-cache", type=Path, help="reuse/save the calibration crops (.npy)")
    parser.add_argument("--tolerance", type=float, default=0.03,
                        help="max mean landmark error vs float, share of torso (0.03 = 3%%)")  # fmt: skip
    parser.add_argument("--worst-tolerance", type=float, default=0.10,
                        help="max error vs float on any one held-out photo")  # fmt: skip
    parser.add_argument("--float-out", type=Path, help="also write the prepared fp32 graph")
    parser.add_argument("--quantizer-python", help="python of a venv with ai-edge-quantizer")
    parser.add_argument("--bench", type=int, default=0, metavar="N",
                        help="also time invoke (N runs x 5 rounds, 1 and 2 threads) vs float")  # fmt: skip
    parser.add_argument("--evaluate", type=Path, metavar="MODEL",
                        help="only evaluate (and --bench) an existing model file")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the evaluation as JSON")
    # hidden: the quantization step run under --quantizer-python
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    for hidden in ("--float-in", "--crops", "--recipe-json", "--stage-out", "--input-kind"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "quantize":
        _quantize_stage(args)
        return 0
    _check_arguments(args)

    sys.path.insert(0, str(ROOT))
    from edge.pose import models

    target = TARGETS[args.model]
    # the float model where the package looks for it ($BLAZEPOSE_EDGE_MODELS too), verified
    float_path = models.locate(target.float_name)

    if not args.evaluate and not args.out:
        args.out = models.models_dir() / f"{target.int8_name}.tflite"
    if target.int8_name not in models.DERIVED:
        print(f"note: {target.int8_name} is not a derived model the pipeline loads "
              "(edge.pose.models.DERIVED): none has passed its gate on held-out sources yet, "
              "so this build is for evaluation")  # fmt: skip
    elif args.if_missing and args.out and args.out.name == f"{target.int8_name}.tflite":
        try:
            record = models.verify_derived(target.int8_name, args.out.parent)
            wanted = models.YOUR_FOOTAGE if args.footage else models.HELD_OUT_SOURCES
            if record["gate"].get("held_out") != wanted:
                raise models.ModelError(f"{args.out} was gated on "
                                        f"{record['gate'].get('held_out', 'the older test photos')}, "
                                        f"not {wanted}")  # fmt: skip
            print(f"{args.out} is there, verified and gated (mean "
                  f"{record['gate']['mean_vs_float']:.2%} of torso): nothing to do")  # fmt: skip
            return 0
        except models.ModelError as exc:
            print(f"building: {exc}")
    if args.evaluate and not args.evaluate.is_file():  # say so before looking for media
        raise BuildError(f"could not load {args.evaluate}: no such file")
    from edge.service.media import media_dir

    media, held, side = media_dir(), None, None
    if target.kind == "detector":
        return _main_detector(args, target, float_path, media)
    if args.footage:
        print("collecting calibration crops and held-out frames from your footage:")
        crops, held = collect_footage(args.footage, args.per_video, model=args.model)
        print(f"calibration crops: {len(crops)}; held-out frames: {len(held)}")
        if args.crops_cache:
            np.save(args.crops_cache, crops)
    elif not (media / "images").is_dir():
        raise BuildError(f"test media not found at {media} (set BLAZEPOSE_EDGE_MEDIA, or "
                         "calibrate on your own videos: --footage PATH here, "
                         "./install.sh --int8-footage=PATH)")  # fmt: skip
    else:
        print("calibration crops from the licence-clean sources, gate frames from the others:")
        crops, side, held_sources = collect_by_source(media, args.per_video, model=args.model)
        crops = calibration_set(crops, args, "crops")
        print(f"calibration crops: {len(crops)}; calibration-side frames: {len(side)}; "
              f"held-out frames: {len(held_sources)}")  # fmt: skip

    if args.evaluate:
        candidate = args.evaluate
    else:
        float_model = prepare_float(float_path.read_bytes())
        if args.float_out:
            args.float_out.write_bytes(float_model)
        recipe = build_recipe(args.recipe, args.keep_float, float_model, args.model)
        print(f"quantizing with recipe {args.recipe} (+ float: {args.keep_float or 'none'}), "
              f"activation ranges: {args.update}")  # fmt: skip
        model = quantize(float_model, crops, recipe, args.update, args.quantizer_python,
                         args.qat_epochs, qat_lr=args.qat_lr, rounding=args.rounding,
                         rounding_crops=args.rounding_crops)  # fmt: skip
        if args.head_bias_correction:
            model = correct_head_biases(inline_buffers(model), crops)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        candidate = args.out.with_suffix(".candidate.tflite")
        candidate.write_bytes(inline_buffers(model))

    # judged as the pipeline runs it: the frames whose flag is in the band go to float
    from edge.pose.landmarks import INT8_FALLBACK_BAND as band

    if held is None:  # the test media: the gate on the held-out sources, MediaPipe where known
        reference = media_reference(target.reference)
        result = evaluate_frames(candidate, held_sources, reference, target.float_name, band)
        side_result = evaluate_frames(candidate, side, reference, target.float_name, band)
        side_result = side_result["summary"]
        print(f"calibration side ({len(side)} frames of the calibration sources): mean "
              f"{side_result['mean_vs_float']:.2%}, worst {side_result['worst_vs_float'][0]:.2%} "
              f"({side_result['worst_vs_float'][1]}), pose found differently: "
              f"{side_result['presence_mismatch'] or 'none'}; handed to float: "
              f"{len(side_result['fallback_frames'])}")  # fmt: skip
    else:
        result = evaluate_frames(candidate, held, None, target.float_name, band)
        side_result = None
    s = result["summary"]
    if held is not None and s["compared"] < MIN_HELD_OUT:
        raise BuildError(f"only {s['compared']} held-out frames of your footage show a person "
                         f"both models find (need {MIN_HELD_OUT}): give more or longer footage")  # fmt: skip
    print(f"held-out {'sources' if held is None else 'frames'}: {s['images']} frames, "
          f"compared {s['compared']}"
          + (f" (not scored, float's torso under {MIN_TORSO_SHARE:.0%} of the crop: "
             f"{s['no_torso']})" if s["no_torso"] else "")
          + "; "
          f"pose found differently: {s['presence_mismatch'] or 'none'}"
          + (f" (and on {s['presence_mismatch_marginal']}, where float itself flips under "
             "+-1 grey level noise: reported, not failed)"
             if s["presence_mismatch_marginal"] else ""))  # fmt: skip
    print(f"  vs float:     mean {s['mean_vs_float']:.2%}  median {s['median_vs_float']:.2%}  "
          f"worst {s['worst_vs_float'][0]:.2%} ({s['worst_vs_float'][1]}) of torso")  # fmt: skip
    alone = s["alone"]
    print(f"  handed to float (pose flag in {band[0]}-{band[1]}): "
          f"{len(s['fallback_frames'])} of {s['images']} frames "
          f"{s['fallback_frames'] or ''}; int8 alone: mean {alone['mean_vs_float']:.2%}, worst "
          f"{alone['worst_vs_float'][0]:.2%} ({alone['worst_vs_float'][1]}), pose found "
          f"differently: {alone['presence_mismatch'] or 'none'}")  # fmt: skip
    if s["mean_vs_mp"] is not None:
        print(f"  vs MediaPipe: mean {s['mean_vs_mp']:.2%}  worst {s['worst_vs_mp'][0]:.2%} "
              f"({s['worst_vs_mp'][1]}); float vs MediaPipe {s['float_mean_vs_mp']:.2%}")  # fmt: skip
    print(f"  visibility max diff {s['max_vis']:.3f}, world mean diff {s['mean_world_cm']:.2f} cm, "
          f"flag max diff {s['max_flag']:.4f}")  # fmt: skip
    timing = {}
    if args.bench:
        timing = bench({"float": float_path, "candidate": candidate}, runs=args.bench)
        for (k, n), v in timing.items():
            print(f"  invoke {k:15s} {n} thread(s): median {v['median_ms']:.2f} ms, "
                  f"min {v['min_ms']:.2f} ms")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(
            {"summary": s, "rows": result["rows"],
             "timing": {f"{k} x{n}": v for (k, n), v in timing.items()},
             "size": candidate.stat().st_size}, indent=1))  # fmt: skip

    ok = (s["mean_vs_float"] <= args.tolerance and s["worst_vs_float"][0] <= args.worst_tolerance
          and not s["presence_mismatch"])  # fmt: skip
    if args.evaluate:
        return 0 if ok else 1
    if not ok:
        print(f"REFUSED: drift beyond tolerance (mean <= {args.tolerance:.1%}, worst <= "
              f"{args.worst_tolerance:.1%}, same presence); {args.out} not written "
              f"(the candidate is left at {candidate} for inspection)", file=sys.stderr)  # fmt: skip
        return 1
    os.replace(candidate, args.out)
    record = {
        "name": args.out.stem,
        "file": args.out.name,
        "size": args.out.stat().st_size,
        "sha256": models.sha256_of(args.out),
        "source_sha256": models.sha256_of(float_path),
        "recipe": f"{args.recipe}" + "".join(f"+float:{r}" for r in args.keep_float)
                  + "".join(f"+augment:{a}" for a in args.augment or [])
                  + f", ranges {args.update}, distillation epochs {args.qat_epochs}"
                  + (f" (learning rate {args.qat_lr})" if args.qat_epochs else "")
                  + (f", rounding {args.rounding} on {args.rounding_crops} crops"
                     if args.rounding != "nearest" else "")
                  + (", head bias correction" if args.head_bias_correction else ""),
        "gate": {"passed": True, "tolerance": args.tolerance,
                 "worst_tolerance": args.worst_tolerance,
                 "mean_vs_float": s["mean_vs_float"], "median_vs_float": s["median_vs_float"],
                 "worst_vs_float": s["worst_vs_float"][0], "mean_vs_mediapipe": s["mean_vs_mp"],
                 "worst_vs_mediapipe": s["worst_vs_mp"][0] if s["worst_vs_mp"] else None,
                 "worst_frame": s["worst_vs_float"][1],
                 "frames": s["compared"], "presence_mismatch": s["presence_mismatch"],
                 "fallback_band": list(band), "fallback_frames": len(s["fallback_frames"]),
                 "alone": {"mean_vs_float": alone["mean_vs_float"],
                           "worst_vs_float": alone["worst_vs_float"][0],
                           "presence_mismatch": alone["presence_mismatch"]},
                 "held_out": models.HELD_OUT_SOURCES if held is None else models.YOUR_FOOTAGE,
                 **({"sources": sorted(media_split(media)["held_out"])} if held is None else {})},
        "calibration": (
            {"sources": sorted(media_split(media)["calibration"]), "crops": len(crops),
             "augment": args.augment or [],
             "side": {"frames": side_result["compared"],
                      "mean_vs_float": side_result["mean_vs_float"],
                      "worst_vs_float": side_result["worst_vs_float"][0],
                      "presence_mismatch": side_result["presence_mismatch"]}}
            if held is None else
            {"footage": [{"file": p.name, "sha256": models.sha256_of(p)}
                         for p in sum(footage_files(args.footage), [])],
             "crops": len(crops), "held_out_frames": len(held)}
        ),
        "timing_ms": {f"{k} x{n}": v["median_ms"] for (k, n), v in timing.items()},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    record_path = args.out.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} ({record['size']} bytes, sha256 {record['sha256'][:12]}...) and "
          f"{record_path.name}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
