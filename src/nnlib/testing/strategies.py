"""Hypothesis strategies: for every layer in ``nnlib.layers``, one strategy
that draws a layer (sizes, options) and an input for it, including the edge
cases (batch 1, width 1, odd sizes).

``LAYER_CASES[cls]`` is a strategy of ``(module, x)``. Inputs are float64 and
kept away from the kinks of ReLU-like layers and from pooling ties, where a
derivative does not exist and central differences disagree with any
implementation. ``tests/test_registry.py`` runs every entry against torch and
the gradient checker. Adding a layer: one file in ``nnlib/layers`` (with its
``register_twin``), one export in ``nnlib/layers/__init__.py``, one entry here.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .. import layers as L
from ..module import Sequential

__all__ = ["LAYER_CASES", "away_from_zero", "arrays"]

LAYER_CASES: dict = {}


def away_from_zero(x, margin: float = 0.05):
    """Move values at least ``margin`` from 0, away from ReLU-like kinks.
    ``x: (...) -> (...)``."""
    return np.where(x >= 0, x + margin, x - margin)


def arrays(draw, shape, scale: float = 1.0):
    """A float64 array of ``shape`` from a drawn seed (hypothesis shrinks the seed)."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return scale * np.random.default_rng(seed).standard_normal(shape)


def _rng(draw):
    return np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))


def case(cls):
    """Register a composite strategy as the case of ``cls``."""
    def deco(fn):
        LAYER_CASES[cls] = st.composite(fn)()
        return fn
    return deco


dims = st.integers(1, 6)
batch = st.integers(1, 5)


@case(L.Linear)
def _linear(draw):
    n, fin, fout = draw(batch), draw(dims), draw(dims)
    lead = draw(st.sampled_from([(), (2,)]))
    m = L.Linear(fin, fout, bias=draw(st.booleans()), rng=_rng(draw))
    return m, arrays(draw, (n, *lead, fin))


def _elementwise(make, kink=False):
    def draw_case(draw):
        shape = draw(st.sampled_from([(3,), (2, 5), (1, 3, 4), (2, 1, 3, 3)]))
        x = arrays(draw, shape, 2.0)
        return make(draw), (away_from_zero(x) if kink else x)
    return draw_case


case(L.ReLU)(_elementwise(lambda d: L.ReLU(), kink=True))
case(L.LeakyReLU)(_elementwise(lambda d: L.LeakyReLU(d(st.sampled_from([0.01, 0.2]))),
                               kink=True))
case(L.Sigmoid)(_elementwise(lambda d: L.Sigmoid()))
case(L.Tanh)(_elementwise(lambda d: L.Tanh()))
case(L.GELU)(_elementwise(lambda d: L.GELU(d(st.sampled_from(["none", "tanh"])))))
case(L.Softmax)(_elementwise(lambda d: L.Softmax(d(st.sampled_from([-1, 0])))))
case(L.LogSoftmax)(_elementwise(lambda d: L.LogSoftmax(d(st.sampled_from([-1, 0])))))


@case(L.Dropout)
def _dropout(draw):          # in evaluation mode: the identity, deterministic
    return L.Dropout(draw(st.sampled_from([0.0, 0.3]))).eval(), arrays(draw, (3, 4))


@case(L.Embedding)
def _embedding(draw):
    vocab, dim = draw(st.integers(1, 7)), draw(dims)
    idx = np.random.default_rng(draw(st.integers(0, 99))).integers(0, vocab, (2, 3))
    return L.Embedding(vocab, dim, rng=_rng(draw)), idx


@case(L.Conv2d)
def _conv(draw):
    cin, cout, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad, dil = draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
    h = draw(st.integers(dil * (k - 1) + 1, 7))
    m = L.Conv2d(cin, cout, k, stride, pad, dil, bias=draw(st.booleans()), rng=_rng(draw))
    return m, arrays(draw, (draw(batch), cin, h, h + 1))


def _pool(cls):
    def draw_case(draw):
        k = draw(st.integers(1, 3))
        stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, k // 2))
        h = draw(st.integers(k, 7))
        x = arrays(draw, (draw(batch), draw(st.integers(1, 3)), h, h + 1))
        return cls(k, stride, pad), x
    return draw_case


case(L.MaxPool2d)(_pool(L.MaxPool2d))    # continuous random values: no ties
case(L.AvgPool2d)(_pool(L.AvgPool2d))


@case(L.AdaptiveAvgPool2d)
def _adaptive(draw):
    out = draw(st.sampled_from([1, 2, 3, (2, 3)]))
    h = draw(st.integers(3, 7))
    return L.AdaptiveAvgPool2d(out), arrays(draw, (draw(batch), 2, h, h + 2))


@case(L.Flatten)
def _flatten(draw):
    return L.Flatten(), arrays(draw, (draw(batch), 2, 3))


def _recurrent(cls):
    def draw_case(draw):
        d, h, t = draw(dims), draw(dims), draw(st.integers(1, 5))
        return cls(d, h, rng=_rng(draw)), arrays(draw, (draw(batch), t, d))
    return draw_case


for _cls in (L.RNN, L.LSTM, L.GRU):
    case(_cls)(_recurrent(_cls))


def _batchnorm(cls, spatial):
    def draw_case(draw):
        c = draw(st.integers(1, 4))
        m = cls(c, momentum=draw(st.sampled_from([0.1, 0.5])), affine=draw(st.booleans()),
                track_running_stats=draw(st.booleans()))
        m.train(draw(st.booleans()))
        # training: >= 3 values per statistic (with 2, each output is +-1 whatever
        # the input, a gradient of ~eps that no relative check can resolve);
        # evaluation: batch 1 too
        batch_stats = m.training or not m.track_running_stats
        shape = (draw(st.integers(3 if batch_stats else 1, 5)), c) + \
            draw(st.sampled_from(spatial))
        if not m.training and m.track_running_stats:   # statistics not at their defaults
            g = _rng(draw)
            m.running_mean[...] = g.standard_normal(c)
            m.running_var[...] = g.uniform(0.5, 2.0, c)
        if m.affine:
            g = _rng(draw)
            m.weight.data[...] = g.uniform(0.5, 1.5, c)
            m.bias.data[...] = g.standard_normal(c)
        return m, 2.0 * arrays(draw, shape) + 1.0
    return draw_case


case(L.BatchNorm1d)(_batchnorm(L.BatchNorm1d, [(), (1,), (3,)]))
case(L.BatchNorm2d)(_batchnorm(L.BatchNorm2d, [(1, 1), (2, 3), (3, 3)]))


@case(L.LayerNorm)
def _layernorm(draw):
    shape = draw(st.sampled_from([(3,), (5,), (2, 3)]))    # not 2: see batch norm
    m = L.LayerNorm(shape, elementwise_affine=draw(st.booleans()))
    if m.elementwise_affine:
        g = _rng(draw)
        m.weight.data[...] = g.uniform(0.5, 1.5, shape)
        m.bias.data[...] = g.standard_normal(shape)
    lead = draw(st.sampled_from([(1,), (3,), (2, 2)]))
    return m, arrays(draw, lead + shape)


@case(L.Residual)
def _residual(draw):
    d = draw(dims)
    g = _rng(draw)
    block = draw(st.sampled_from(["mlp", "linear"]))
    inner = (L.Linear(d, d, rng=g) if block == "linear" else
             Sequential(L.Linear(d, 4, rng=g), L.Tanh(), L.Linear(4, d, rng=g)))
    if draw(st.booleans()):
        out = draw(dims)
        inner = Sequential(inner, L.Linear(d, out, rng=g))
        return L.Residual(inner, shortcut=L.Linear(d, out, bias=False, rng=g)), \
            arrays(draw, (draw(batch), d))
    return L.Residual(inner), arrays(draw, (draw(batch), d))


@case(L.LoRALinear)
def _lora(draw):
    fin, fout, r = draw(dims), draw(dims), draw(st.integers(1, 3))
    g = _rng(draw)
    m = L.LoRALinear(L.Linear(fin, fout, bias=draw(st.booleans()), rng=g), r=r,
                     alpha=draw(st.sampled_from([1.0, 8.0])), rng=g)
    m.lora_B.data[...] = g.standard_normal(m.lora_B.shape)   # not the zero start
    return m, arrays(draw, (draw(batch), fin))


# --- attention layers (nnlib.layers.attention) --------------------------------


def _randomize_biases(module, g):
    """Non-zero biases and norm shifts (the defaults are 0 and 1, which would
    leave those terms of the forward untested)."""
    for name, p in module.named_parameters():
        if name.endswith("bias") or name.startswith("norm"):
            p.data[...] = (g.uniform(0.5, 1.5, p.shape) if name.endswith("weight")
                           else 0.5 * g.standard_normal(p.shape))


@case(L.MultiheadAttention)
def _mha(draw):              # self-attention; masks and cross-attention: test_attention.py
    heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    g = _rng(draw)
    m = L.MultiheadAttention(heads * head_dim, heads, bias=draw(st.booleans()), rng=g)
    _randomize_biases(m, g)
    return m, arrays(draw, (draw(batch), draw(st.integers(1, 5)), heads * head_dim))


@case(L.TransformerEncoderLayer)
def _encoder_layer(draw):
    # d_model 3, 4 or 6, never 2: layer norm over 2 features outputs +-1 (see batch norm)
    d_model, heads = draw(st.sampled_from([(3, 1), (3, 3), (4, 2), (4, 4), (6, 3)]))
    g = _rng(draw)
    m = L.TransformerEncoderLayer(d_model, heads, dim_feedforward=draw(st.integers(1, 5)),
                                  activation=draw(st.sampled_from(["relu", "gelu"])),
                                  norm_first=draw(st.booleans()), bias=draw(st.booleans()),
                                  rng=g)
    _randomize_biases(m, g)
    return m, arrays(draw, (draw(batch), draw(st.integers(1, 5)), d_model))
