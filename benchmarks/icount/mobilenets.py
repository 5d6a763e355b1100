"""MobileNet v1 and v2 (1.0, 224x224, float32) as TFLite flatbuffers with random weights.

The networks of XNNPACK's published Raspberry Pi 4 timings (its README: ``end2end-bench`` on
"neural network models with randomized weights and inputs"): the same layers, channel counts,
strides and activations as TensorFlow's ``mobilenet_v1_1.0_224`` and ``mobilenet_v2_1.0_224``
(SAME padding, ReLU6, 1001 classes by a 1x1 convolution after global average pooling, softmax).
Built with LiteRT's own flatbuffer schema; only the instruction counts are wanted, and XNNPACK's
float kernels execute the same instructions whatever the weights are.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s

RELU6 = s.ActivationFunctionType.RELU6
LINEAR = s.ActivationFunctionType.NONE


def _quant(scale, zero_point, dim: int = 0):
    q = s.QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, np.float32))
    q.zeroPoint = np.atleast_1d(np.asarray(zero_point, np.int64))
    q.quantizedDimension = dim
    return q


class _Net:
    """Float32, or with ``int8`` XNNPACK's QS8 scheme: int8 activations (per tensor), int8
    weights per output channel, int32 biases, as in its INT8 timings ("per-channel
    quantization schema")."""

    ACT = (6.0 / 255.0, -128)  # after ReLU6
    LIN = (0.1, 0)  # linear outputs

    def __init__(self, seed: int = 0, int8: bool = False):
        self.int8 = int8
        self.rng = np.random.default_rng(seed)
        self.tensors: list = []
        self.buffers = [s.BufferT()]
        self.ops: list = []
        self.codes: dict[int, int] = {}

    def tensor(self, shape, data=None, quant=None, dtype=np.float32) -> int:
        """A tensor; ``quant`` (scale, zero point[, dim]) makes an activation int8 (when the net
        is int8) or, with ``data``, says how ``data`` is stored."""
        t = s.TensorT()
        t.shape = np.array(shape, np.int32)
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if self.int8 and quant is not None and data is None:
            dtype = np.int8
        if quant is not None and (self.int8 or data is not None):
            t.quantization = _quant(*quant)
        t.type = {
            np.float32: s.TensorType.FLOAT32,
            np.int8: s.TensorType.INT8,
            np.int32: s.TensorType.INT32,
        }[dtype]
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.asarray(data).astype(dtype).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def act(self, t: int):
        """The quantization of activation tensor ``t``."""
        q = self.tensors[t].quantization
        return (float(q.scale[0]), int(q.zeroPoint[0])) if q is not None else self.ACT

    def filters(self, shape, fan_in: int, dim: int, x: int):
        """Weights and bias tensors for ``shape`` (output channels along ``dim``)."""
        out = shape[dim]
        w = self.weights(shape, fan_in)
        if not self.int8:
            return self.tensor(shape, w), self.tensor([out], np.zeros(out))
        axes = tuple(i for i in range(len(shape)) if i != dim)
        scale = np.maximum(np.abs(w).max(axis=axes), 1e-6) / 127.0
        q = np.clip(np.round(w / np.expand_dims(scale, axes)), -127, 127)
        weight = self.tensor(shape, q, (scale, np.zeros(out), dim), np.int8)
        bias_scale = scale * self.act(x)[0]
        bias = self.tensor([out], np.zeros(out), (bias_scale, np.zeros(out)), np.int32)
        return weight, bias

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = s.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs = np.array(inputs, np.int32)
        o.outputs = np.array(outputs, np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.ops.append(o)

    def shape(self, t: int) -> list[int]:
        return [int(d) for d in self.tensors[t].shape]

    def weights(self, shape, fan_in: int) -> np.ndarray:
        return self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)

    def conv(self, x: int, out: int, k: int = 1, stride: int = 1, act=RELU6) -> int:
        _, h, w, c = self.shape(x)
        weight, bias = self.filters([out, k, k, c], k * k * c, 0, x)
        y = self.tensor(
            [1, -(-h // stride), -(-w // stride), out], quant=self.ACT if act == RELU6 else self.LIN
        )
        opt = s.Conv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = s.Padding.SAME, stride, stride
        opt.fusedActivationFunction = act
        opt.dilationWFactor = opt.dilationHFactor = 1
        self.op(
            s.BuiltinOperator.CONV_2D, [x, weight, bias], [y], s.BuiltinOptions.Conv2DOptions, opt
        )
        return y

    def dwconv(self, x: int, stride: int) -> int:
        _, h, w, c = self.shape(x)
        weight, bias = self.filters([1, 3, 3, c], 9, 3, x)
        y = self.tensor([1, -(-h // stride), -(-w // stride), c], quant=self.ACT)
        opt = s.DepthwiseConv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = s.Padding.SAME, stride, stride
        opt.depthMultiplier, opt.fusedActivationFunction = 1, RELU6
        opt.dilationWFactor = opt.dilationHFactor = 1
        self.op(
            s.BuiltinOperator.DEPTHWISE_CONV_2D,
            [x, weight, bias],
            [y],
            s.BuiltinOptions.DepthwiseConv2DOptions,
            opt,
        )
        return y

    def add(self, a: int, b: int) -> int:
        y = self.tensor(self.shape(a), quant=self.LIN)
        opt = s.AddOptionsT()
        opt.fusedActivationFunction = LINEAR
        self.op(s.BuiltinOperator.ADD, [a, b], [y], s.BuiltinOptions.AddOptions, opt)
        return y

    def head(self, x: int) -> int:
        """Global average pooling, 1x1 convolution to 1001 logits, reshape, softmax."""
        _, h, w, c = self.shape(x)
        pooled = self.tensor([1, 1, 1, c], quant=self.act(x))
        opt = s.Pool2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = s.Padding.VALID, 1, 1
        opt.filterWidth, opt.filterHeight, opt.fusedActivationFunction = w, h, LINEAR
        self.op(
            s.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled], s.BuiltinOptions.Pool2DOptions, opt
        )
        logits = self.conv(pooled, 1001, act=LINEAR)
        new_shape = self.tensor([2], np.array([1, 1001]), dtype=np.int32)
        flat = self.tensor([1, 1001], quant=self.LIN)
        ropt = s.ReshapeOptionsT()
        ropt.newShape = np.array([1, 1001], np.int32)
        self.op(
            s.BuiltinOperator.RESHAPE,
            [logits, new_shape],
            [flat],
            s.BuiltinOptions.ReshapeOptions,
            ropt,
        )
        probs = self.tensor([1, 1001], quant=(1.0 / 256.0, -128))
        sopt = s.SoftmaxOptionsT()
        sopt.beta = 1.0
        self.op(s.BuiltinOperator.SOFTMAX, [flat], [probs], s.BuiltinOptions.SoftmaxOptions, sopt)
        return probs

    def finish(self, inp: int, out: int) -> bytes:
        sg = s.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.ops
        sg.inputs, sg.outputs = np.array([inp], np.int32), np.array([out], np.int32)
        sg.name = b"main"
        m = s.ModelT()
        m.version, m.description, m.subgraphs, m.buffers = (
            3,
            b"random-weight MobileNet",
            [sg],
            self.buffers,
        )
        m.operatorCodes = []
        for code in sorted(self.codes, key=self.codes.get):
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            m.operatorCodes.append(oc)
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def v1(int8: bool = False) -> bytes:
    net = _Net(1, int8)
    inp = net.tensor([1, 224, 224, 3], quant=(1.0 / 128.0, 0))
    x = net.conv(inp, 32, k=3, stride=2)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for out, stride in blocks:
        x = net.conv(net.dwconv(x, stride), out)
    return net.finish(inp, net.head(x))


def v2(int8: bool = False) -> bytes:
    net = _Net(2, int8)
    inp = net.tensor([1, 224, 224, 3], quant=(1.0 / 128.0, 0))
    x = net.conv(inp, 32, k=3, stride=2)
    for t, c, n, first_stride in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            stride = first_stride if i == 0 else 1
            cin = net.shape(x)[3]
            y = net.conv(x, cin * t) if t != 1 else x
            y = net.conv(net.dwconv(y, stride), c, act=LINEAR)
            x = net.add(x, y) if stride == 1 and cin == c else y
    x = net.conv(x, 1280)
    return net.finish(inp, net.head(x))
