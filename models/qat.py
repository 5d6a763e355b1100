"""Quantization-aware distillation of the int8 estimator (``quantize.py --qat-epochs N``; opt-in).

Round-to-nearest int8 weights cost the landmark model about 3 % of torso on their own and int8
activations another 2 % (docs/history.md). Here the quantized graph is rebuilt in PyTorch exactly as
the quantizer laid it out (the same per-channel weight scales, the same activation scales and zero
points, the same ops kept in float), the int8 rounding of every weight and every activation is
simulated (straight-through gradients), and the weights and biases are fine-tuned so that the
simulated int8 model reproduces the float model's outputs on the calibration crops: refined 2D
landmarks (the 9x9 heatmap window the pipeline uses), raw landmarks, visibility/presence, world
landmarks and the pose flag. No labels are involved: the float model is the teacher.

The learned weights are written back into the quantizer's own int8 model: only the int8 weight
values and the int32 biases change; scales, zero points and the graph stay the quantizer's. Needs
torch (CPU build) and ai-edge-litert in the quantizer venv, not in the project venv.

Measured (docs/history.md): it fixes lost people in weaker recipes but does not beat the shipped
recipe's landmarks, so it is off by default. Its emulation is also a diagnostic: with the float
model's heatmap window the int8 landmarks were 1.4 % off, which located the 5 % drift in the
regression branch.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from ai_edge_litert import schema_py_generated as schema
from quantize import _op_names, _pack  # qat.py is imported by quantize.py, from this folder

ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
SAME = 0
HEATMAP_KERNEL = 9  # edge.pose.landmarks.HEATMAP_KERNEL


def _model(data: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _buffer(m, tensor, dtype) -> np.ndarray:
    data = m.buffers[tensor.buffer].data
    return np.frombuffer(bytes(bytearray(data)), dtype=dtype).reshape(tensor.shape)


class Quant:
    """Per-tensor affine int8 parameters of one activation tensor."""

    def __init__(self, scale: float, zero_point: int):
        self.scale = float(scale)
        self.zero_point = int(zero_point)


def _fake_quant(x: torch.Tensor, q: Quant) -> torch.Tensor:
    """Round to the int8 grid with a straight-through gradient (zero outside the range)."""
    lo = (-128 - q.zero_point) * q.scale
    hi = (127 - q.zero_point) * q.scale
    x = torch.clamp(x, lo, hi)
    return x + (torch.round(x / q.scale) * q.scale - x).detach()


def _act(x: torch.Tensor, code: int) -> torch.Tensor:
    if code == ACT_RELU:
        return F.relu(x)
    if code == ACT_RELU6:
        return torch.clamp(x, 0.0, 6.0)
    if code == ACT_RELU_N1_TO_1:
        return torch.clamp(x, -1.0, 1.0)
    if code != ACT_NONE:
        raise ValueError(f"fused activation {code} not supported")
    return x


def _same_pad(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int]) -> torch.Tensor:
    """TensorFlow SAME padding (extra pixel at the end), NCHW."""
    pads = []
    for size, kk, ss in ((x.shape[3], k[1], s[1]), (x.shape[2], k[0], s[0])):
        total = max((math.ceil(size / ss) - 1) * ss + kk - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class Layer:
    """A CONV_2D / DEPTHWISE_CONV_2D with int8 per-channel weights (or float ones)."""

    def __init__(self, index, kind, weight, bias, options, wscale, bscale, q=None, qb=None):
        self.index, self.kind, self.options = index, kind, options
        self.quantized = wscale is not None
        if kind == "CONV_2D":  # tflite (O, KH, KW, I) -> torch (O, I, KH, KW)
            w = weight.transpose(0, 3, 1, 2)
            self.groups = 1
        else:  # (1, KH, KW, C*m) -> (C*m, 1, KH, KW)
            w = weight[0].transpose(2, 0, 1)[:, None]
            self.groups = w.shape[0] // options.depthMultiplier
        self.kernel = (weight.shape[1], weight.shape[2])
        self.stride = (options.strideH, options.strideW)
        self.w0 = torch.tensor(np.ascontiguousarray(w), dtype=torch.float32)
        self.b0 = torch.tensor(bias, dtype=torch.float32)
        if self.quantized:
            s = torch.tensor(wscale, dtype=torch.float32).reshape(-1, 1, 1, 1)
            self.wscale = s
            # weights are trained in units of their own quantization step
            self.u = torch.nn.Parameter(self.w0 / s if q is None else torch.tensor(q))
            # biases are int32 in steps of (input scale x weight scale): trained in those units
            self.bunit = torch.tensor(bscale, dtype=torch.float32)
            self.v = torch.nn.Parameter(self.b0 / self.bunit if qb is None else torch.tensor(qb))
        else:
            self.u = torch.nn.Parameter(self.w0.clone())
            self.u.requires_grad_(False)
            self.v = None

    def weight(self, quantize: bool) -> torch.Tensor:
        if not self.quantized:
            return self.w0
        if not quantize:
            return self.w0
        u = torch.clamp(self.u, -127.0, 127.0)
        q = u + (torch.round(u) - u).detach()
        return q * self.wscale

    def bias(self, quantize: bool) -> torch.Tensor:
        if self.v is None or not quantize:
            return self.b0
        return (self.v + (torch.round(self.v) - self.v).detach()) * self.bunit

    def __call__(self, x: torch.Tensor, quantize: bool) -> torch.Tensor:
        if self.options.padding == SAME:
            x = _same_pad(x, self.kernel, self.stride)
        y = F.conv2d(x, self.weight(quantize), self.bias(quantize), self.stride,
                     groups=self.groups)  # fmt: skip
        return _act(y, self.options.fusedActivationFunction)


class Graph:
    """The float landmark graph in PyTorch (NCHW), with the int8 model's rounding simulated when
    ``quantize`` is on: activations at every tensor the int8 model stores in int8, weights per
    output channel with the int8 model's scales."""

    def __init__(self, float_model: bytes, int8_model: bytes, from_int8: bool = False):
        fm, qm = _model(float_model), _model(int8_model)
        self.float_model, self.int8_model = fm, qm
        sg = fm.subgraphs[0]
        self.sg, self.names = sg, _op_names(fm)
        qsg = qm.subgraphs[0]
        self.q_by_name = {t.name.decode(): (i, t) for i, t in enumerate(qsg.tensors)}
        self.act_quant: dict[int, Quant] = {}
        for i, t in enumerate(sg.tensors):
            hit = self.q_by_name.get(t.name.decode())
            if hit and hit[1].type == schema.TensorType.INT8 and m_is_activation(fm, t):
                qp = hit[1].quantization
                self.act_quant[i] = Quant(qp.scale[0], qp.zeroPoint[0])
        # the model input is quantized by the int8 graph's first QUANTIZE op
        self.input_quant = self._input_quant()
        self.layers: dict[int, Layer] = {}
        for index, op in enumerate(sg.operators):
            kind = self.names[op.opcodeIndex]
            if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                continue
            wt, bt = sg.tensors[op.inputs[1]], sg.tensors[op.inputs[2]]
            weight = _buffer(fm, wt, np.float32)
            bias = _buffer(fm, bt, np.float32)
            out_name = sg.tensors[op.outputs[0]].name.decode()
            qop = self._int8_op(out_name)
            wscale = bscale = q = qbias = None
            if qop is not None:
                qw, qb = qsg.tensors[qop.inputs[1]], qsg.tensors[qop.inputs[2]]
                if qw.type == schema.TensorType.INT8:
                    wscale = np.asarray(qw.quantization.scale, dtype=np.float32)
                    bscale = np.asarray(qb.quantization.scale, dtype=np.float32)
                    if from_int8:  # start from the int8 model's own values
                        q = _buffer(qm, qw, np.int8).astype(np.float32)
                        q = (
                            q.transpose(0, 3, 1, 2)
                            if kind == "CONV_2D"
                            else q[0].transpose(2, 0, 1)[:, None]
                        )
                        q = np.ascontiguousarray(q)
                        qbias = _buffer(qm, qb, np.int32).astype(np.float32)
            self.layers[index] = Layer(index, kind, weight, bias, op.builtinOptions, wscale,
                                       bscale, q, qbias)  # fmt: skip

    def _int8_op(self, out_name: str):
        qsg = self.int8_model.subgraphs[0]
        for op in qsg.operators:
            if qsg.tensors[op.outputs[0]].name.decode() == out_name:
                return op
        return None

    def _input_quant(self) -> Quant | None:
        qm, qsg = self.int8_model, self.int8_model.subgraphs[0]
        names = _op_names(qm)
        for op in qsg.operators:
            if names[op.opcodeIndex] == "QUANTIZE" and op.inputs[0] == qsg.inputs[0]:
                qp = qsg.tensors[op.outputs[0]].quantization
                return Quant(qp.scale[0], qp.zeroPoint[0])
        return None

    def parameters(self):
        for layer in self.layers.values():
            if layer.quantized:
                yield layer.u
                yield layer.v

    def forward(self, x: torch.Tensor, quantize: bool) -> dict[str, torch.Tensor]:
        """x: (N, 256, 256, 3) float in [0, 1] -> the four outputs, NHWC / flat as tflite."""
        sg = self.sg
        values: dict[int, torch.Tensor] = {}
        x = x.permute(0, 3, 1, 2)
        if quantize and self.input_quant is not None:
            x = _fake_quant(x, self.input_quant)
        values[int(sg.inputs[0])] = x
        for index, op in enumerate(sg.operators):
            kind = self.names[op.opcodeIndex]
            a = values.get(int(op.inputs[0]))
            opts = op.builtinOptions
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                y = self.layers[index](a, quantize)
            elif kind == "PAD":
                p = _buffer(self.float_model, sg.tensors[op.inputs[1]], np.int32)
                y = F.pad(a, [int(p[2, 0]), int(p[2, 1]), int(p[1, 0]), int(p[1, 1])])
            elif kind == "ADD":
                y = _act(a + values[int(op.inputs[1])], opts.fusedActivationFunction)
            elif kind == "MAX_POOL_2D":
                k, s = (opts.filterHeight, opts.filterWidth), (opts.strideH, opts.strideW)
                if opts.padding == SAME:
                    a = _same_pad(a, k, s)  # max pool pads with -inf; inputs here are even-sized
                y = F.max_pool2d(a, k, s)
            elif kind == "RESIZE_BILINEAR":
                size = _buffer(self.float_model, sg.tensors[op.inputs[1]], np.int32)
                if opts.alignCorners or not opts.halfPixelCenters:
                    raise ValueError("only half-pixel-centre bilinear resize is supported")
                y = F.interpolate(a, size=(int(size[0]), int(size[1])), mode="bilinear",
                                  align_corners=False)  # fmt: skip
            elif kind == "RESHAPE":
                shape = [int(d) for d in sg.tensors[op.outputs[0]].shape]
                y = a.permute(0, 2, 3, 1).reshape([-1] + shape[1:]) if a.dim() == 4 else a
                if len(shape) == 4:
                    y = y.permute(0, 3, 1, 2)
            elif kind == "LOGISTIC":
                y = torch.sigmoid(a)
            else:
                raise ValueError(f"op {kind} not supported")
            out = int(op.outputs[0])
            if quantize and out in self.act_quant:
                y = _fake_quant(y, self.act_quant[out])
            values[out] = y
        result = {}
        for role, t in zip(("landmarks", "flag", "heatmap", "world"), sg.outputs, strict=True):
            v = values[int(t)]
            result[role] = v.permute(0, 2, 3, 1) if v.dim() == 4 else v.reshape(v.shape[0], -1)
        return result


def m_is_activation(m, tensor) -> bool:
    data = m.buffers[tensor.buffer].data
    return data is None or len(data) == 0


# ---------------------------------------------------------------------------------------------
# distillation


def _refined_xy(lm: torch.Tensor, heat: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Heatmap-refined 2D landmarks (pixels of the 256 crop) for the 33 body landmarks: the
    sigmoid-weighted mean position over the 9x9 window at ``centre`` (the teacher's cells), as
    edge.pose.kernels.refine_from_heatmap computes it."""
    n, hh, hw, _ = heat.shape
    half = HEATMAP_KERNEL // 2
    offs = torch.arange(-half, half + 1)
    rows = (centre[..., 1:2] + offs).clamp(0, hh - 1)  # (N, 33, 9)
    cols = (centre[..., 0:1] + offs).clamp(0, hw - 1)
    valid_r = ((centre[..., 1:2] + offs) >= 0) & ((centre[..., 1:2] + offs) < hh)
    valid_c = ((centre[..., 0:1] + offs) >= 0) & ((centre[..., 0:1] + offs) < hw)
    b = torch.arange(n)[:, None, None, None]
    k = torch.arange(33)[None, :, None, None]
    window = heat[b, rows[:, :, :, None], cols[:, :, None, :], k]  # (N, 33, 9, 9)
    conf = torch.sigmoid(window) * (valid_r[:, :, :, None] & valid_c[:, :, None, :])
    total = conf.sum((2, 3)).clamp_min(1e-6)
    x = (conf * cols[:, :, None, :].float()).sum((2, 3)) / total / hw * 256.0
    y = (conf * rows[:, :, :, None].float()).sum((2, 3)) / total / hh * 256.0
    return torch.stack([x, y], -1)


def _targets(graph: Graph, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float model's outputs on a batch, plus its heatmap windows and refined landmarks."""
    with torch.no_grad():
        t = graph.forward(x, quantize=False)
        lm = t["landmarks"].reshape(-1, 39, 5)
        hh, hw = t["heatmap"].shape[1:3]
        centre = torch.stack([(lm[:, :33, 0] / 256.0 * hw).long(),
                              (lm[:, :33, 1] / 256.0 * hh).long()], -1)  # fmt: skip
        t["centre"] = centre
        t["refined"] = _refined_xy(lm, t["heatmap"], centre)
    return t


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Label-free augmentation (the teacher sees the same input): brightness/contrast, a small
    shift with replicated borders, a horizontal flip; kept on the uint8 grid the crops live on."""
    out = np.empty_like(x)
    for i, img in enumerate(x):
        img = img.astype(np.float32)
        if rng.random() < 0.8:
            img = img * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
        if rng.random() < 0.5:
            dy, dx = rng.integers(-16, 17, size=2)
            img = np.pad(img, ((16, 16), (16, 16), (0, 0)), mode="edge")
            img = img[16 + dy : 16 + dy + 256, 16 + dx : 16 + dx + 256]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        out[i] = np.clip(np.rint(img), 0, 255)
    return out


def _loss(out: dict, t: dict) -> tuple[torch.Tensor, dict]:
    lm = out["landmarks"].reshape(-1, 39, 5)
    tl = t["landmarks"].reshape(-1, 39, 5)
    refined = _refined_xy(lm, out["heatmap"], t["centre"])
    torso = (
        ((tl[:, 11, :2] + tl[:, 12, :2]) / 2 - (tl[:, 23, :2] + tl[:, 24, :2]) / 2).norm(dim=-1)
    ).clamp_min(16.0)[:, None]
    # the gate's metric: 2D distance / torso, on refined and raw positions
    parts = {
        "refined": ((refined - t["refined"]).norm(dim=-1) / torso).mean(),
        "raw_xy": ((lm[:, :, :2] - tl[:, :, :2]).norm(dim=-1) / torso).mean(),
        "z": ((lm[:, :33, 2] - tl[:, :33, 2]).abs() / torso).mean(),
        "vis": (torch.sigmoid(lm[:, :33, 3:]) - torch.sigmoid(tl[:, :33, 3:])).abs().mean(),
        "world": (out["world"] - t["world"]).abs().mean() * 10.0,
        "flag": (out["flag"] - t["flag"]).abs().mean(),
    }
    weights = {"refined": 1.0, "raw_xy": 0.5, "z": 0.1, "vis": 0.2, "world": 0.2, "flag": 0.5}
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def distill(float_model: bytes, int8_model: bytes, crops: np.ndarray, epochs: int = 6,
            batch: int = 16, lr: float = 0.01, seed: int = 0, augment: bool = True, log=print,
            on_epoch=None, from_int8: bool = False) -> bytes:  # fmt: skip
    """Fine-tune the int8 weights/biases against the float model; return the int8 model with the
    learned values written in. ``on_epoch(epoch, graph)`` is called after each epoch.
    ``from_int8``: start from the int8 model's own weights and biases (say, re-rounded by
    ``rounding.py``) instead of the float ones."""
    torch.manual_seed(seed)
    graph = Graph(float_model, int8_model, from_int8=from_int8)
    params = list(graph.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    steps = epochs * math.ceil(len(crops) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(crops))
        t0, seen = time.perf_counter(), {}
        for i in range(0, len(order), batch):
            x = crops[order[i : i + batch]]
            if augment:
                x = _augment(x, rng)
            x = torch.from_numpy(x.astype(np.float32) / 255.0)
            targets = _targets(graph, x)
            out = graph.forward(x, quantize=True)
            loss, parts = _loss(out, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for k, v in parts.items():
                seen.setdefault(k, []).append(v)
        log(f"  epoch {epoch + 1}/{epochs} ({time.perf_counter() - t0:.0f} s): "
            + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in seen.items()))  # fmt: skip
        if on_epoch is not None:
            on_epoch(epoch + 1, graph)
    return export(graph)


def export(graph: Graph) -> bytes:
    """Write the learned int8 weights and int32 biases into the int8 model."""
    qm = graph.int8_model
    qsg = qm.subgraphs[0]
    for layer in graph.layers.values():
        if not layer.quantized:
            continue
        out_name = graph.sg.tensors[graph.sg.operators[layer.index].outputs[0]].name.decode()
        qop = graph._int8_op(out_name)
        qw, qb = qsg.tensors[qop.inputs[1]], qsg.tensors[qop.inputs[2]]
        with torch.no_grad():
            q = torch.clamp(torch.round(torch.clamp(layer.u, -127, 127)), -127, 127)
            q = q.numpy().astype(np.int8)
            qbias_learned = torch.round(layer.v).numpy().astype(np.int64)
        # torch (O, I, KH, KW) -> tflite (O, KH, KW, I); depthwise (C, 1, KH, KW) -> (1, KH, KW, C)
        q = q.transpose(0, 2, 3, 1) if layer.kind == "CONV_2D" else q[:, 0].transpose(1, 2, 0)[None]
        if tuple(q.shape) != tuple(qw.shape):
            raise ValueError(f"shape mismatch writing {out_name}")
        if qb.type != schema.TensorType.INT32:
            raise ValueError(f"bias of {out_name} is not int32")
        qbias = np.clip(qbias_learned, -(2**31), 2**31 - 1).astype(np.int32)
        qm.buffers[qw.buffer].data = np.frombuffer(np.ascontiguousarray(q).tobytes(), np.uint8)
        qm.buffers[qb.buffer].data = np.frombuffer(qbias.tobytes(), np.uint8)
    return _pack(qm)
