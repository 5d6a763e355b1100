"""Optimised rounding of an int8 model's weights (``quantize.py --rounding gptq``; opt-in).

The quantizer rounds every int8 weight to the nearest step of its output channel's scale. Here,
layer by layer in graph order, the int8 weights of each CONV_2D / DEPTHWISE_CONV_2D are chosen
instead to make that layer's output on the calibration crops as close as possible to the float
layer's, by GPTQ (optimal brain quantization: one input at a time, in order of decreasing input
energy, each rounded to nearest after the rounding errors of the inputs before it were spread
onto it through the upper Cholesky factor of the inverse input Hessian ``H^-1``, ``H = X X^T``
over the layer's input windows ``X``), then the int32 bias absorbs the mean output difference
left. Scales, zero points, activation ranges and the graph stay the quantizer's: only the int8
weight values and the int32 biases change, as with ``qat.py``, but without torch, in a minute.

``gptq`` (``sequential=False``) takes ``X`` from the float model. ``gptq-upstream``
(``sequential=True``) minimises ``||W_q X~ - W X||^2`` instead, ``X~`` being the layer's input
in the int8 model as re-rounded so far: ``W* = (W C + l W)(H~ + l I)^-1`` (``C = X X~^T``,
``H~ = X~ X~^T``, a ridge ``l`` towards the float weights), rounded by GPTQ on ``H~``. Each layer
then also undoes part of the int8 activations' error upstream, but on the held-out sources it
was much worse (5.9 % mean instead of 2.3 %; docs/history.md, 2026-11-30): the per-layer
least-squares fit to noisy inputs shrinks the weights, and that compounds over 35 layers.

The numerical parts (``patches``, ``LayerStats``, ``target_weights``, ``gptq``) are pure numpy;
``optimise_rounding`` runs the float and the int8 model through LiteRT (without XNNPACK, which
keeps no intermediate tensors) to collect the layers' inputs; it needs no quantizer.
"""

from __future__ import annotations

import time

import numpy as np

CONV_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D")
SAME, VALID = 0, 1  # tflite Padding


# ---------------------------------------------------------------------------------------------
# pure numpy


def patches(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: int) -> np.ndarray:
    """(N, H, W, C) -> (N * Ho * Wo, kh * kw, C): the input window of every output position of a
    convolution with TFLite's padding (SAME: zeros, the odd pixel at the end; VALID: none)."""
    n, h, w, c = x.shape
    sh, sw = stride
    if padding == SAME:
        ho, wo = -(-h // sh), -(-w // sw)
        ph = max((ho - 1) * sh + kh - h, 0)
        pw = max((wo - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    elif padding == VALID:
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    else:
        raise ValueError(f"padding {padding} not supported")
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N,H',W',C,kh,kw
    win = win[:, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw, c)


class LayerStats:
    """Running sums over a layer's input windows: ``H~ = sum x~ x~^T``, ``C = sum x x~^T`` and
    the means of ``x`` and ``x~``, per group (one group for a CONV_2D, whose vector is the whole
    window; one per channel for a DEPTHWISE_CONV_2D, whose vector is its channel's window)."""

    def __init__(self, depthwise: bool):
        self.depthwise = depthwise
        self.h = self.c = self.sx = self.sq = None
        self.n = 0

    def add(self, x: np.ndarray, xq: np.ndarray) -> None:
        """``x``, ``xq``: (P, K, C) windows of the float and the int8 model's input."""
        x, xq = x.astype(np.float64), xq.astype(np.float64)
        if self.depthwise:  # per channel c: sum_p x[p, :, c] x[p, :, c]^T (plain einsum is fast)
            h = np.einsum("pic,pjc->cij", xq, xq)
            c = np.einsum("pic,pjc->cij", x, xq)
            sx, sq = x.sum(0).T, xq.sum(0).T
        else:  # the whole window, in TFLite's (kh, kw, in) order
            a, b = x.reshape(len(x), -1), xq.reshape(len(xq), -1)
            h, c = (b.T @ b)[None], (a.T @ b)[None]
            sx, sq = a.sum(0)[None], b.sum(0)[None]
        if self.h is None:
            self.h, self.c, self.sx, self.sq = h, c, sx, sq
        else:
            self.h += h
            self.c += c
            self.sx += sx
            self.sq += sq
        self.n += len(x)


def layer_stats(x: np.ndarray, xq: np.ndarray, depthwise: bool) -> LayerStats:
    """``LayerStats`` of one batch of (P, K, C) windows."""
    s = LayerStats(depthwise)
    s.add(x, xq)
    return s


def target_weights(w: np.ndarray, stats: LayerStats, damp: float = 0.01) -> tuple[
        np.ndarray, np.ndarray]:  # fmt: skip
    """``W* = (W C + l W) (H~ + l I)^-1`` per group: the weights that best map the int8 model's
    input to the float layer's output, pulled towards the float weights ``W`` by the ridge term
    ``l ||W* - W||^2`` (``l = damp x`` the mean of ``H~``'s diagonal: an input the crops never
    excite keeps its float weight), and the damped ``H~``. ``w``: (G, O, K)."""
    h = stats.h / stats.n
    c = stats.c / stats.n
    k = h.shape[-1]
    diag = np.einsum("gii->gi", h).mean(-1)
    ridge = (damp * np.maximum(diag, 1e-12))[:, None, None] * np.eye(k)
    h = h + ridge
    # W* H = W (C + ridge)  ->  H W*^T = (C + ridge)^T W^T (H symmetric)
    rhs = np.einsum("gij,goj->gio", (c + ridge).transpose(0, 2, 1), w)
    wstar = np.linalg.solve(h, rhs).transpose(0, 2, 1)
    return wstar, h


def gptq(w: np.ndarray, scale: np.ndarray, h: np.ndarray, qmax: int = 127) -> np.ndarray:
    """Round ``w`` (G groups, O rows, K inputs) to integers in [-qmax, qmax] times ``scale`` (G, O)
    minimising ``(w - q s) H (w - q s)^T`` per row, ``h``: (G, K, K) positive definite, by GPTQ:
    inputs in order of decreasing ``H`` diagonal, each rounded to nearest after the earlier ones'
    errors were spread onto it through the upper Cholesky factor of ``H^-1``. Returns q (int)."""
    g, o, k = w.shape
    order = np.argsort(-np.einsum("gii->gi", h), axis=1, kind="stable")  # (G, K)
    idx = np.arange(g)[:, None]
    hp = h[idx[:, :, None], order[:, :, None], order[:, None, :]]
    wp = np.take_along_axis(w.astype(np.float64), order[:, None, :], axis=2).copy()
    hinv = np.linalg.inv(hp)
    hinv = (hinv + hinv.transpose(0, 2, 1)) / 2
    u = np.linalg.cholesky(hinv).transpose(0, 2, 1)  # upper: hinv = u^T u
    s = scale.astype(np.float64)
    q = np.empty_like(wp)
    for j in range(k):
        col = wp[:, :, j]
        qj = np.clip(np.rint(col / s), -qmax, qmax)
        q[:, :, j] = qj
        err = (col - qj * s) / u[:, j, j][:, None]
        wp[:, :, j + 1 :] -= err[:, :, None] * u[:, None, j, j + 1 :]
    out = np.empty_like(q)
    np.put_along_axis(out, order[:, None, :], q, axis=2)
    return out.astype(np.int64)


def rounding_error(w: np.ndarray, q: np.ndarray, scale: np.ndarray, h: np.ndarray) -> float:
    """Mean over rows of ``(w - q s) H (w - q s)^T``: the layer output's mean squared error for
    inputs whose second moment is ``H``."""
    d = w - q * scale[..., None]
    return float(np.einsum("goi,gij,goj->", d, h, d) / (w.shape[0] * w.shape[1]))


# ---------------------------------------------------------------------------------------------
# the models (LiteRT in the project venv)


def _layout(kind: str, weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """TFLite weights -> (G, O, K) and the kernel size. CONV_2D (O, kh, kw, I) -> (1, O, kh*kw*I);
    DEPTHWISE_CONV_2D (1, kh, kw, C) -> (C, 1, kh*kw)."""
    if kind == "CONV_2D":
        o, kh, kw, i = weight.shape
        return weight.reshape(1, o, kh * kw * i), kh, kw
    _, kh, kw, c = weight.shape
    return weight.reshape(kh * kw, c).T[:, None, :], kh, kw


def _unlayout(kind: str, q: np.ndarray, shape: tuple) -> np.ndarray:
    if kind == "CONV_2D":
        return q.reshape(shape)
    _, kh, kw, c = shape
    return q[:, 0, :].T.reshape(shape)


def _dequant(value: np.ndarray, tensor) -> np.ndarray:
    """A tensor's value as float: int8 activations by their (per-tensor) scale and zero point."""
    if value.dtype == np.float32:
        return value
    qp = tensor.quantization
    return (value.astype(np.float32) - np.float32(qp.zeroPoint[0])) * np.float32(qp.scale[0])


def optimise_rounding(float_model: bytes, int8_model: bytes, crops: np.ndarray, count: int = 128,
                      damp: float = 0.01, sequential: bool = True, block: int = 4,
                      log=print) -> bytes:  # fmt: skip
    """Re-round the int8 conv weights of ``int8_model`` (the quantizer's, built from
    ``float_model``) layer by layer in graph order as the module docstring says, on ``count``
    evenly spread ``crops`` ((N, 256, 256, 3) uint8). Returns the model with new int8 weights and
    int32 biases (scales unchanged). ``sequential`` False: the float model's inputs stand in for
    the int8 model's (``X~ = X``: plain GPTQ of each layer's weights, no upstream correction).
    The int8 model is run again every ``block`` layers (1: after every layer; each run takes the
    crops through the whole graph without XNNPACK, the slow part)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from quantize import _op_names, _pack, _schema

    schema = _schema()
    crops = crops[np.linspace(0, len(crops) - 1, min(count, len(crops))).astype(int)]
    x_in = crops.astype(np.float32) * np.float32(1.0 / 255.0)
    fm = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(float_model, 0))
    qm = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(int8_model, 0))
    fsg, qsg, qnames = fm.subgraphs[0], qm.subgraphs[0], _op_names(qm)
    f_by_out = {fsg.tensors[op.outputs[0]].name.decode(): op for op in fsg.operators}

    layers = []  # (int8 op, float op) of every int8 conv, in graph order
    for op in qsg.operators:
        kind = qnames[op.opcodeIndex]
        if kind in CONV_KINDS and qsg.tensors[op.inputs[1]].type == schema.TensorType.INT8:
            fop = f_by_out.get(qsg.tensors[op.outputs[0]].name.decode())
            if fop is None:
                raise ValueError(f"{qsg.tensors[op.outputs[0]].name!r}: not in the float model")
            layers.append((kind, op, fop))
    log(f"  optimised rounding of {len(layers)} int8 layers on {len(crops)} crops")

    def run(model: bytes, tensors: list[int], sg) -> list[np.ndarray]:
        # no XNNPACK: a delegated graph keeps no intermediate tensors
        interp = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                             num_threads=2,
                             experimental_op_resolver_type=resolver)  # fmt: skip
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]["index"]
        out = [[] for _ in tensors]
        for x in x_in:
            interp.set_tensor(inp, x[None])
            interp.invoke()
            for slot, t in zip(out, tensors, strict=True):
                slot.append(_dequant(interp.get_tensor(t), sg.tensors[t]))
        return [np.concatenate(v) for v in out]

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter()
    float_inputs = run(float_model, [int(fop.inputs[0]) for _, _, fop in layers], fsg)
    before = after = 0.0
    for n, ((kind, op, fop), x) in enumerate(zip(layers, float_inputs, strict=True)):
        if not sequential:
            xq = x
        elif n % block == 0:  # the int8 model's inputs of this block's layers, as re-rounded so far
            ahead = [int(o.inputs[0]) for _, o, _ in layers[n : n + block]]
            pending = dict(zip(range(n, n + len(ahead)), run(_pack(qm), ahead, qsg), strict=True))
        if sequential:
            xq = pending.pop(n)
        wt, bt = qsg.tensors[op.inputs[1]], qsg.tensors[op.inputs[2]]
        wf = np.frombuffer(bytes(bytearray(fm.buffers[fsg.tensors[fop.inputs[1]].buffer].data)),
                           np.float32).reshape(wt.shape)  # fmt: skip
        bf = np.frombuffer(bytes(bytearray(fm.buffers[fsg.tensors[fop.inputs[2]].buffer].data)),
                           np.float32)  # fmt: skip
        q0 = np.frombuffer(bytes(bytearray(qm.buffers[wt.buffer].data)), np.int8).reshape(wt.shape)
        w, kh, kw = _layout(kind, wf)
        wq0, _, _ = _layout(kind, q0.astype(np.float64))
        opts = op.builtinOptions
        stats = LayerStats(kind == "DEPTHWISE_CONV_2D")
        if kind == "DEPTHWISE_CONV_2D" and opts.depthMultiplier != 1:
            raise ValueError(f"depth multiplier {opts.depthMultiplier} not supported")
        for i in range(0, len(x), 8):
            win = patches(x[i : i + 8], kh, kw, (opts.strideH, opts.strideW), opts.padding)
            winq = patches(xq[i : i + 8], kh, kw, (opts.strideH, opts.strideW), opts.padding)
            stats.add(win, winq)
        wscale = np.asarray(wt.quantization.scale, dtype=np.float64)
        scale = wscale.reshape(w.shape[0], w.shape[1])
        wstar, h = target_weights(w.astype(np.float64), stats, damp)
        q = gptq(wstar, scale, h)
        # the output error left, as a share of the float output's power, with the old rounding
        # and the new (same damped H~: comparable)
        hx = np.einsum("gii->", stats.h) / stats.n
        e0 = rounding_error(wstar, wq0, scale, h) / max(hx, 1e-12)
        e1 = rounding_error(wstar, q.astype(np.float64), scale, h) / max(hx, 1e-12)
        before, after = before + e0, after + e1
        # bias: the mean output difference left, W mean(x) - W_q s mean(x~)
        mx, mq = stats.sx / stats.n, stats.sq / stats.n
        shift = np.einsum("gok,gk->go", w, mx) - np.einsum("gok,gk->go", q * scale[..., None], mq)
        bscale = np.asarray(bt.quantization.scale, dtype=np.float64)
        bias = bf.astype(np.float64) + shift.reshape(-1)
        qbias = np.clip(np.rint(bias / bscale), -(2**31), 2**31 - 1).astype(np.int32)
        qnew = _unlayout(kind, q, wt.shape).astype(np.int8)
        qm.buffers[wt.buffer].data = np.frombuffer(qnew.tobytes(), np.uint8)
        qm.buffers[bt.buffer].data = np.frombuffer(qbias.tobytes(), np.uint8)
        changed = float(np.mean(qnew != q0))
        log(f"    {n + 1:2d}/{len(layers)} {kind[:5]} {tuple(wt.shape)}: {changed:.1%} of weights "
            f"moved, error {e0:.2e} -> {e1:.2e} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    log(f"  optimised rounding: summed relative error {before:.3e} -> {after:.3e}")
    return _pack(qm)
