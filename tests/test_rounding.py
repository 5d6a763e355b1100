"""models/rounding.py: the pure numpy parts of the optimised int8 weight rounding (no quantizer, no
model: seconds)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def rounding():
    sys.path.insert(0, str(ROOT / "models"))
    spec = importlib.util.spec_from_file_location("rounding", ROOT / "models" / "rounding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conv_direct(x, w, stride, padding, depthwise):
    """Naive NHWC convolution with TFLite's SAME/VALID padding (reference for ``patches``)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[1:3]
    sh, sw = stride
    if padding == 0:  # SAME
        ho, wo = -(-h // sh), -(-wd // sw)
        ph, pw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, ho, wo, c if depthwise else w.shape[0]))
    for i in range(ho):
        for j in range(wo):
            win = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]  # n, kh, kw, c
            if depthwise:
                out[:, i, j] = np.einsum("nhwc,hwc->nc", win, w[0])
            else:
                out[:, i, j] = np.einsum("nhwc,ohwc->no", win, w)
    return out


@pytest.mark.parametrize(("k", "stride", "padding"), [(1, 1, 0), (3, 1, 0), (5, 2, 0), (3, 2, 1)])
def test_patches_reproduce_tflite_convolutions(rounding, k, stride, padding):
    """Weights in ``_layout`` order times ``patches`` windows = the convolution, for a CONV_2D
    and a DEPTHWISE_CONV_2D, SAME (odd pixel at the end) and VALID, strides 1 and 2."""
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.normal(size=(2, 9, 8, 4))
    win = rounding.patches(x, k, k, (stride, stride), padding)  # (P, K, C)
    w = rng.normal(size=(6, k, k, 4))  # conv (O, kh, kw, I)
    wl, kh, kw = rounding._layout("CONV_2D", w)
    got = win.reshape(win.shape[0], -1) @ wl[0].T
    want = _conv_direct(x, w, (stride, stride), padding, depthwise=False)
    np.testing.assert_allclose(got, want.reshape(-1, 6), atol=1e-10)
    d = rng.normal(size=(1, k, k, 4))  # depthwise (1, kh, kw, C)
    dl, _, _ = rounding._layout("DEPTHWISE_CONV_2D", d)  # (C, 1, K)
    got = np.einsum("pkc,ck->pc", win, dl[:, 0, :])
    want = _conv_direct(x, d, (stride, stride), padding, depthwise=True)
    np.testing.assert_allclose(got, want.reshape(-1, 4), atol=1e-10)
    assert np.array_equal(rounding._unlayout("CONV_2D", wl, w.shape), w)
    assert np.array_equal(rounding._unlayout("DEPTHWISE_CONV_2D", dl, d.shape), d)


def test_stats_group_a_depthwise_layer_by_channel(rounding):
    """A depthwise layer's statistics are one K x K matrix per channel, a conv's one over the
    whole window; the cross term pairs the float input with the int8 one."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 9, 3))
    xq = x + rng.normal(scale=0.1, size=x.shape)
    s = rounding.layer_stats(x, xq, depthwise=True)
    assert s.h.shape == (3, 9, 9) and s.n == 50
    np.testing.assert_allclose(s.h[1], xq[:, :, 1].T @ xq[:, :, 1])
    np.testing.assert_allclose(s.c[2], x[:, :, 2].T @ xq[:, :, 2])
    s = rounding.layer_stats(x, xq, depthwise=False)
    assert s.h.shape == (1, 27, 27)


def test_target_weights_undo_an_input_error(rounding):
    """If the int8 model's input is the float input scaled by 2 (plus nothing), the best weights
    for it are halved; with no input error they are the float weights."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 1, 12))
    w = rng.normal(size=(1, 5, 12))
    same, _ = rounding.target_weights(w, rounding.layer_stats(x, x, False), damp=1e-9)
    np.testing.assert_allclose(same, w, atol=1e-6)
    half, _ = rounding.target_weights(w, rounding.layer_stats(x, 2 * x, False), damp=1e-9)
    np.testing.assert_allclose(half, w / 2, atol=1e-6)


def test_gptq_is_round_to_nearest_for_independent_inputs(rounding):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(2, 4, 10))
    scale = np.full((2, 4), 0.05)
    q = rounding.gptq(w, scale, np.broadcast_to(np.eye(10), (2, 10, 10)).copy())
    assert np.array_equal(q, np.clip(np.rint(w / 0.05), -127, 127))


def test_gptq_beats_round_to_nearest_on_correlated_inputs(rounding):
    """Correlated inputs (as neighbouring pixels and channels are): GPTQ's output error is well
    below round-to-nearest's, and every value stays on the int8 grid."""
    rng = np.random.default_rng(4)
    mix = rng.normal(size=(24, 24))
    x = rng.normal(size=(2000, 24)) @ mix + 0.5
    h = (x.T @ x / len(x))[None]
    w = rng.normal(size=(1, 16, 24))
    scale = np.abs(w).max(-1) / 127 * 8  # a coarse grid, so the rounding matters
    rtn = np.clip(np.rint(w / scale[..., None]), -127, 127)
    q = rounding.gptq(w, scale, h)
    assert q.min() >= -127 and q.max() <= 127
    e_rtn = rounding.rounding_error(w, rtn, scale, h)
    e_gptq = rounding.rounding_error(w, q, scale, h)
    assert e_gptq < 0.5 * e_rtn, (e_gptq, e_rtn)


def test_gptq_clamps_to_the_int8_range(rounding):
    w = np.array([[[300.0, -300.0, 1.0]]])
    q = rounding.gptq(w, np.ones((1, 1)), np.eye(3)[None])
    assert q.tolist() == [[[127, -127, 1]]]


def test_target_weights_keep_the_float_weight_of_an_input_never_excited(rounding):
    """An input channel that is zero on every calibration crop (a dead ReLU there) may not be on
    other footage: its weights stay the float ones instead of being solved to anything."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 1, 6))
    x[:, :, 2] = 0.0
    w = rng.normal(size=(1, 3, 6))
    got, _ = rounding.target_weights(w, rounding.layer_stats(x, x, False), damp=0.01)
    np.testing.assert_allclose(got[0, :, 2], w[0, :, 2])
    np.testing.assert_allclose(got, w, atol=1e-9)
