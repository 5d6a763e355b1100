"""Int8 variant of the BlazePose landmark model (issue 4), reproducibly, with an accuracy gate.

    .venv/bin/python models/quantize.py --out models/pose_landmark_full_int8.tflite \
        [--recipe a8w8-keep] [--calib-frames 600] [--tolerance 0.03] [--bench 200] \
        [--quantizer-python /path/to/venv/bin/python]

Steps (see QUANTIZE.md for what was tried and measured):

1. Prepare a float graph the quantizer accepts: the shipped model stores fp16 weights behind
   DEQUANTIZE ops (every quantizer recipe is a no-op on them), so each fp16 constant + DEQUANTIZE
   becomes one fp32 constant (same values, identical outputs); the segmentation head is cut off as
   ``edge/graph.py`` does at run time (outputs: landmarks, flag, heatmap, world); unused tensors
   and buffers are dropped; a ``serving_default`` SignatureDef is added (the static recipes need it).
2. Calibration crops: the pipeline itself (float detector + ROI + bit-exact crop, video mode with
   tracking) runs over the test videos and the annotated photos in ``../shared/media``, and every
   256x256 input it feeds the estimator is kept. The 34 photos in ``media/images`` (the MediaPipe
   reference set) are never used for calibration: they are the held-out evaluation set.
3. Quantize with ai-edge-quantizer (static int8 activations, per-channel int8 weights) keeping
   the listed sensitive ops in float.
4. Verify: on the held-out photos, the float pipeline finds the ROI; the float and the int8
   estimator run on the same crop; landmarks are decoded by ``edge.landmarks`` (heatmap refinement
   included) and compared as mean 2D distance over the 33 body landmarks / torso length, against
   the float model and against MediaPipe's reference. The model is written only if the mean stays
   within ``--tolerance`` (and every image within ``--worst-tolerance``); otherwise exit 1.

ai-edge-quantizer (0.10.0) does not pull TensorFlow, but it does pull scipy, absl-py,
immutabledict and litert-lm-builder (about 150 MB, mostly scipy). It is not a project dependency:
install it in the project venv, or in a scratch venv and pass ``--quantizer-python``; then only
the quantization step runs there (it needs numpy, ai-edge-litert and the quantizer only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FLOAT_MODEL = ROOT / "models" / "pose_landmark_full.tflite"
REFERENCE = ROOT / "tests" / "data" / "mediapipe_reference.json"
SIGNATURE = "serving_default"
# output tensors of pose_landmark_full.tflite kept after pruning (Identity_2 is the mask)
KEEP_OUTPUTS = {"Identity": "landmarks", "Identity_1": "flag", "Identity_3": "heatmap",
                "Identity_4": "world"}  # fmt: skip
CALIB_VIDEOS = (
    "street.avi", "walking_one_by_one_intel.mp4", "synthetic_arms_up_tfjs.mp4",
    "two_people_hug_1080p_mmaction2.mp4", "two_people_handshake_mmhuman3d.mp4",
    "basketball_two_players_lowres_mmaction2.mp4", "hard_upper_body_sign_language_intel.mp4",
    "hard_arm_wrestling_closeup_mmaction2.mp4", "hard_legs_only_pool_mmaction2.mp4",
)  # fmt: skip


def media_dir() -> Path:
    return Path(os.environ.get("BLAZEPOSE_EDGE_MEDIA") or ROOT.parent / "shared" / "media")


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


def prepare_float(model: bytes, keep_outputs=KEEP_OUTPUTS) -> bytes:
    """fp16 weights -> fp32 constants, outputs pruned to ``keep_outputs``, unused tensors and
    buffers dropped, a ``serving_default`` signature added. Same values on the kept outputs."""
    schema = _schema()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise ValueError("expected one subgraph")
    sg = m.subgraphs[0]
    ops = _op_names(m)

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

    # prune to the wanted outputs (as edge/graph.py)
    by_name = {sg.tensors[i].name.decode(): int(i) for i in sg.outputs}
    keep = [by_name[name] for name in keep_outputs]
    producer = {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}
    needed_ops, needed, stack = set(), set(keep), list(keep)
    while stack:
        op = producer.get(stack.pop())
        if op is None or op in needed_ops:
            continue
        needed_ops.add(op)
        for t in sg.operators[op].inputs:
            if t >= 0 and int(t) not in needed:
                needed.add(int(t))
                stack.append(int(t))
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
    sig.outputs = [tensor_map(role, int(t)) for role, t in zip(keep_outputs.values(), sg.outputs)]
    m.signatureDefs = [sig]
    return _pack(m)


def op_table(model: bytes) -> list[tuple[int, str, str]]:
    """(index, op name, name of its first output tensor) for every operator."""
    schema = _schema()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    sg, ops = m.subgraphs[0], _op_names(m)
    return [(i, ops[op.opcodeIndex], sg.tensors[op.outputs[0]].name.decode())
            for i, op in enumerate(sg.operators)]  # fmt: skip
