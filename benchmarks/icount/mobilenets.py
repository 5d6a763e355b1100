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


class _Net:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.tensors: list = []
        self.buffers = [s.BufferT()]
        self.ops: list = []
        self.codes: dict[int, int] = {}

    def tensor(self, shape, data: np.ndarray | None = None) -> int:
        t = s.TensorT()
        t.shape = np.array(shape, np.int32)
        t.type = s.TensorType.FLOAT32
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(data.astype(np.float32).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

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
        weight = self.tensor([out, k, k, c], self.weights([out, k, k, c], k * k * c))
        bias = self.tensor([out], np.zeros(out))
        y = self.tensor([1, -(-h // stride), -(-w // stride), out])
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
        weight = self.tensor([1, 3, 3, c], self.weights([1, 3, 3, c], 9))
        bias = self.tensor([c], np.zeros(c))
        y = self.tensor([1, -(-h // stride), -(-w // stride), c])
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
        y = self.tensor(self.shape(a))
        opt = s.AddOptionsT()
        opt.fusedActivationFunction = LINEAR
        self.op(s.BuiltinOperator.ADD, [a, b], [y], s.BuiltinOptions.AddOptions, opt)
        return y

    def head(self, x: int) -> int:
        """Global average pooling, 1x1 convolution to 1001 logits, reshape, softmax."""
        _, h, w, c = self.shape(x)
        pooled = self.tensor([1, 1, 1, c])
        opt = s.Pool2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = s.Padding.VALID, 1, 1
        opt.filterWidth, opt.filterHeight, opt.fusedActivationFunction = w, h, LINEAR
        self.op(
            s.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled], s.BuiltinOptions.Pool2DOptions, opt
        )
        logits = self.conv(pooled, 1001, act=LINEAR)
        new_shape = self.tensor([2], None)
        self.tensors[new_shape].type = s.TensorType.INT32
        b = s.BufferT()
        b.data = np.frombuffer(np.array([1, 1001], np.int32).tobytes(), np.uint8)
        self.buffers.append(b)
        self.tensors[new_shape].buffer = len(self.buffers) - 1
        flat = self.tensor([1, 1001])
        ropt = s.ReshapeOptionsT()
        ropt.newShape = np.array([1, 1001], np.int32)
        self.op(
            s.BuiltinOperator.RESHAPE,
            [logits, new_shape],
            [flat],
            s.BuiltinOptions.ReshapeOptions,
            ropt,
        )
        probs = self.tensor([1, 1001])
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


def v1() -> bytes:
    net = _Net(1)
    inp = net.tensor([1, 224, 224, 3])
    x = net.conv(inp, 32, k=3, stride=2)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for out, stride in blocks:
        x = net.conv(net.dwconv(x, stride), out)
    return net.finish(inp, net.head(x))


def v2() -> bytes:
    net = _Net(2)
    inp = net.tensor([1, 224, 224, 3])
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
