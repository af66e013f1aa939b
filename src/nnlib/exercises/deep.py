"""The exercises of chapters 4 and 5: a convolution, a pooling layer's
backward pass, the backward passes of batch normalisation of feature maps
and of global average pooling (section 4b), one step of a recurrent cell and of an
LSTM, and one head of attention forward and backward, checked against nnlib's own.

Each function here is the reference of the exercise of the same name; its
docstring is the exercise's contract (arguments, shapes, layouts, what to
return), in nnlib's and PyTorch's conventions: images ``(N, C, H, W)``,
filters ``(F, C, k, k)``, a cross-correlation (the filter is not flipped),
``W_ih: (G H, D)`` and ``W_hh: (G H, H)`` for a recurrent cell (G = 1,
or 4 for the LSTM's gates i, f, g, o), a boolean attention mask with True
where a query may *not* attend, backward functions taking the cache their
forward keeps. Each is registered with
random cases (batch of 1, odd sizes, the edge cases that catch the usual
mistakes) and with the wrong answers the checker recognises.

============================  ===============  ===================================
exercise                      chapter          returns
============================  ===============  ===================================
``conv2d_forward``            04-cnn           ``y``
``maxpool_backward``          04-cnn           ``dx``
``batchnorm2d_backward``      04b-modern-cnns  ``(dx, dgamma, dbeta)``
``global_avg_pool_backward``  04b-modern-cnns  ``dx``
``rnn_step_backward``         05-rnn           ``(dx, dh_prev, dW_ih, dW_hh, db)``
``lstm_step_forward``         05-rnn           ``(h, c)``
``attention_forward``         05c-attention    ``(out, weights)``
``attention_backward``        05c-attention    ``(dQ, dK, dV)``
============================  ===============  ===================================
"""
from __future__ import annotations

from itertools import permutations

import numpy as np

from ..functional import attention as Fa
from ..functional import conv as Fc
from ..functional import norm as Fn
from ..functional import recurrent as Fr
from ..functional.basic import sigmoid
from ._core import ATOL, RTOL, Case, Diagnoser, register

__all__ = ["conv2d_forward", "maxpool_backward", "batchnorm2d_backward",
           "global_avg_pool_backward", "rnn_step_backward", "lstm_step_forward",
           "attention_forward", "attention_backward"]


# --- chapter 4: convolution -----------------------------------------------
def _conv_cases(rng):
    # (N, C, H, W, F, k, stride, padding), note
    settings = [((2, 3, 6, 6, 4, 3, 1, 1), ""),
                ((1, 2, 5, 7, 3, 3, 1, 0), "batch of 1"),
                ((3, 3, 7, 5, 2, 3, 2, 1), "odd sizes with stride 2"),
                ((2, 1, 8, 8, 5, 5, 1, 2), "one input channel and padding 2"),
                ((2, 4, 6, 9, 1, 2, 2, 0), "one filter of even size"),
                ((1, 2, 9, 9, 3, 3, 3, 1), "stride 3"),
                ((3, 5, 4, 4, 2, 1, 1, 0), "1x1 kernel"),
                ((2, 3, 7, 7, 2, 3, 2, 2), "stride 2 and padding 2")]
    out = []
    for (n, c, h, w, f, k, s, p), note in settings:
        x = rng.standard_normal((n, c, h, w))
        W = rng.standard_normal((f, c, k, k))
        b = rng.standard_normal(f)
        out.append(Case((x, W, b, s, p), note))
    return out


def _windows(x, k, s, p):
    """``(N, C, k, k, H_out, W_out)``: every window of the padded ``x``."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    cols = np.empty((n, c, k, k, ho, wo))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + s * ho:s, j:j + s * wo:s]
    return cols


def _conv(x, W, b, s, p, order="ckk", crop=0, pad=None, reduce=None, mix=False):
    """A cross-correlation by im2col, with a known mistake switched on."""
    if pad is not None:
        x = np.pad(x, ((0, 0), (0, 0), pad, pad))
        p = 0
    f, c, k, _ = W.shape
    cols = _windows(x, k, s, p)
    n, _, _, _, ho, wo = cols.shape
    if reduce == "first":                     # one input channel only
        cols, W = cols[:, :1], W[:, :1]
    axes = (1, 2, 3) if order == "ckk" else (2, 3, 1)
    m = cols.transpose(*axes, 0, 4, 5).reshape(-1, n * ho * wo)
    y = W.reshape(f, -1) @ m
    if reduce == "mean":
        y = y / c
    if mix:      # the (F, N H_out W_out) product reshaped straight to (N, F, ...)
        if b is not None and mix == "bias first":
            y, b = y + b[:, None], None
        y = y.reshape(n, f, ho, wo)
    else:
        y = y.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b[None, :, None, None]
    return y[..., :ho - crop, :wo - crop] if crop else y


def _conv_variant(**kw):
    def variant(x, W, b, stride, padding):
        return _conv(x, W, b, stride, padding, **kw)
    return variant


PAD = ("the padding is off by one: pad p zeros on each side of both image "
       "axes (np.pad with ((0, 0), (0, 0), (p, p), (p, p)))")


@register("conv2d_forward", chapter="04-cnn",
          args=("x", "W", "b", "stride", "padding"), outputs=("y",),
          cases=_conv_cases, diagnosers=[
              Diagnoser("flipped the filter (a true convolution): nnlib and "
                        "PyTorch compute a cross-correlation, each window "
                        "times W as it is, not rotated by 180 degrees",
                        variant=lambda x, W, b, s, p: _conv(
                            x, W[..., ::-1, ::-1], b, s, p)),
              Diagnoser(PAD, variant=lambda x, W, b, s, p: _conv(x, W, b, s, p + 1)),
              Diagnoser(PAD, variant=lambda x, W, b, s, p: _conv(x, W, b, s, p - 1)),
              Diagnoser("padded one side only: pad p zeros before and p after "
                        "each image axis", variant=lambda x, W, b, s, p: _conv(
                            x, W, b, s, p, pad=(p, 0))),
              Diagnoser("padded one side only: pad p zeros before and p after "
                        "each image axis", variant=lambda x, W, b, s, p: _conv(
                            x, W, b, s, p, pad=(0, p))),
              Diagnoser("the output is one row and column short: H_out = (H + "
                        "2p - k) // stride + 1", variant=_conv_variant(crop=1)),
              Diagnoser("ignored the stride: take every stride-th window, so "
                        "H_out = (H + 2p - k) // stride + 1",
                        variant=lambda x, W, b, s, p: _conv(x, W, b, 1, p)),
              Diagnoser("the bias is missing: add b[f] to every pixel of output "
                        "channel f", variant=lambda x, W, b, s, p: _conv(
                            x, W, None, s, p)),
              Diagnoser("the channels are summed wrong: the rows of the window "
                        "matrix must be in W.reshape(F, -1)'s order, channel "
                        "first, then the kernel's rows and columns",
                        variant=_conv_variant(order="kkc")),
              Diagnoser("the channels are summed wrong: only the first input "
                        "channel counted; each output sums over all C input "
                        "channels", variant=_conv_variant(reduce="first")),
              Diagnoser("the channels are summed wrong: averaged over the "
                        "input channels instead of summed",
                        variant=_conv_variant(reduce="mean")),
              *[Diagnoser("the last reshape mixes the examples and the "
                          "filters: W.reshape(F, -1) @ cols has shape (F, N "
                          "H_out W_out), so reshape it to (F, N, H_out, W_out) "
                          "and transpose to (N, F, H_out, W_out); reshaping "
                          "straight to (N, F, H_out, W_out) scrambles them",
                          variant=_conv_variant(mix=m))
                for m in ("bias first", "bias last")],
          ])
def conv2d_forward(x, W, b, stride, padding):
    """Exercise ``conv2d_forward(x, W, b, stride, padding) -> y``: a 2-D
    convolution layer's forward pass, as ``nnlib.Conv2d`` and PyTorch (a
    cross-correlation: the filter is not flipped). ``x: (N, C, H, W)``, ``W:
    (F, C, k, k)``, ``b: (F,)``, ``stride`` and ``padding`` integers (the same
    along both image axes; padding adds zeros on every side) -> ``y: (N, F,
    H_out, W_out)`` with ``H_out = (H + 2 padding - k) // stride + 1`` (and
    the same for ``W_out``). Reference:
    ``nnlib.functional.conv2d_forward(x, W, b, stride, padding)``."""
    return Fc.conv2d_forward(x, W, b, stride, padding)[0]


# --- chapter 4: max pooling -------------------------------------------------
def _pool_cases(rng):
    # (N, C, H, W, kernel, stride), note
    settings = [((2, 3, 6, 6, 2, 2), ""),
                ((1, 2, 4, 6, 2, 2), "batch of 1"),
                ((3, 1, 7, 5, 2, 2), "odd sizes (a row and a column left over)"),
                ((2, 2, 8, 7, 2, 3), "stride larger than the kernel"),
                ((2, 2, 7, 7, 3, 2), "overlapping windows"),
                ((2, 3, 6, 9, 3, 3), "kernel 3"),
                ((2, 2, 6, 6, 2, 2), "ties"),
                ((1, 3, 5, 5, 3, 1), "overlapping windows with ties")]
    out = []
    for (n, c, h, w, k, s), note in settings:
        x = rng.standard_normal((n, c, h, w))
        if "ties" in note:
            x = rng.integers(0, 3, size=(n, c, h, w)).astype(float)
        if note == "overlapping windows":
            x[:, :, 2, 2] = 10.0          # the maximum of four windows
        dout = rng.standard_normal((n, c, (h - k) // s + 1, (w - k) // s + 1))
        out.append(Case((dout, x, k, s), note))
    return out


def _pool_bw(dout, x, k, s, rule="first", step=None, add=True, size=None):
    """Max pooling's backward by loops over the windows, with a known mistake
    switched on: ``rule`` says which entries of a window get its gradient,
    ``step`` where the windows start (``s`` unless given), ``size`` how
    many rows and columns they cover (``k`` unless given), ``add`` whether
    overlapping windows' gradients add up or overwrite each other."""
    step = s if step is None else step
    size = k if size is None else size
    dx = np.zeros_like(x)
    n, c, ho, wo = dout.shape
    for i in range(ho):
        for j in range(wo):
            r, q = i * step, j * step
            win = x[:, :, r:r + size, q:q + size]
            if win.shape[2:] != (size, size):
                raise ValueError("window outside the image")
            flat = win.reshape(n, c, -1)
            g = dout[:, :, i, j][..., None]
            top = flat == flat.max(axis=-1, keepdims=True)
            if rule == "first":
                m = np.arange(size ** 2) == flat.argmax(axis=-1)[..., None]
            elif rule == "last":
                m = np.arange(k * k) == (k * k - 1 - flat[..., ::-1].argmax(
                    axis=-1))[..., None]
            elif rule == "ties":
                m = top
            elif rule == "split":
                m = top / top.sum(axis=-1, keepdims=True)
            elif rule == "mean":
                m = np.full(flat.shape, 1.0 / (k * k))
            else:                            # "every"
                m = np.ones(flat.shape)
            part = (m * g).reshape(win.shape)
            if add:
                dx[:, :, r:r + size, q:q + size] += part
            else:
                dx[:, :, r:r + size, q:q + size] = part
    return dx


def _pool_variant(**kw):
    def variant(dout, x, kernel, stride):
        return _pool_bw(dout, x, kernel, stride, **kw)
    return variant


WINDOW = ("wrong window: window (i, j) covers rows i * stride to i * "
          "stride + kernel - 1 and columns j * stride to j * stride + kernel "
          "- 1")
TIES = ("ties double-counted: when several entries of a window equal its "
        "maximum, the whole gradient goes to the first of them (as "
        "np.argmax picks it, row by row), not to each or shared")


@register("maxpool_backward", chapter="04-cnn", args=("dout", "x", "kernel", "stride"),
          outputs=("dx",), cases=_pool_cases, diagnosers=[
              Diagnoser("spread the gradient evenly over the window (that is "
                        "average pooling's backward): max pooling sends each "
                        "window's gradient to its maximum only",
                        variant=_pool_variant(rule="mean")),
              Diagnoser("sent the gradient to every element of the window: "
                        "only the window's maximum affected the output",
                        variant=_pool_variant(rule="every")),
              Diagnoser(TIES, variant=_pool_variant(rule="ties")),
              Diagnoser(TIES, variant=_pool_variant(rule="split")),
              Diagnoser("a tie went to the last maximum of its window: "
                        "nnlib and PyTorch pick the first (np.argmax's)",
                        variant=_pool_variant(rule="last")),
              *[Diagnoser(WINDOW, variant=v) for v in (
                  lambda d, x, k, s: _pool_bw(d, x, k, s, step=k),
                  lambda d, x, k, s: _pool_bw(d, x, k, s, step=1),
                  lambda d, x, k, s: _pool_bw(d, x, k, s, size=s))],
              Diagnoser("wrong window: overlapping windows overwrote each "
                        "other's gradient; an entry that is the maximum of "
                        "several windows gets the sum of their gradients (+=)",
                        variant=_pool_variant(add=False)),
          ])
def maxpool_backward(dout, x, kernel, stride):
    """Exercise ``maxpool_backward(dout, x, kernel, stride) -> dx``: the
    backward pass of max pooling without padding, as ``nnlib.MaxPool2d`` and
    PyTorch. ``x: (N, C, H, W)``, the forward's input; ``kernel`` and
    ``stride`` integers (square windows, which may overlap when stride <
    kernel); ``dout: (N, C, H_out, W_out)`` with ``H_out = (H - kernel) //
    stride + 1`` -> ``dx: (N, C, H, W)``. Each window's gradient goes wholly
    to the first entry (in row-major order) that equals the window's
    maximum; an entry that is the maximum of several windows gets the sum.
    Reference: ``nnlib.functional.maxpool2d_backward``."""
    _, cache = Fc.maxpool2d_forward(x, (kernel, kernel), (stride, stride))
    return Fc.maxpool2d_backward(dout, cache)


# --- chapter 5: one step of a recurrent cell ---------------------------------
def _rnn_cases(rng):
    # (N, D, H, weight scale), note
    settings = [((4, 3, 5, 0.5), ""), ((1, 4, 3, 0.5), "batch of 1"),
                ((7, 5, 5, 0.5), "odd sizes with D = H"), ((3, 2, 6, 0.5), ""),
                ((2, 6, 1, 0.5), "one hidden unit"), ((6, 1, 4, 0.5), "one input"),
                ((5, 3, 3, 3.0), "saturated units with D = H")]
    out = []
    for (n, d, h, scale), note in settings:
        x = rng.standard_normal((n, d))
        h_prev = np.tanh(rng.standard_normal((n, h)))
        W_ih = rng.standard_normal((h, d)) * scale
        W_hh = rng.standard_normal((h, h)) * scale
        b_ih, b_hh = rng.standard_normal(h) * 0.5, rng.standard_normal(h) * 0.5
        _, cache = Fr.rnn_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh)
        out.append(Case((rng.standard_normal((n, h)), cache), note))
    return out


def _rnn_variant(local=None, dx=None, dh=None, dWi=None, dWh=None, db=None):
    """The step's backward with one known mistake: ``local(h, h_prev)`` is
    the derivative used in place of 1 - h^2, the others replace one output,
    each a function of (da, x, h_prev, W_ih, W_hh)."""
    def variant(dout, cache):
        x, h_prev, W_ih, W_hh, h = cache
        da = dout * (1 - h ** 2 if local is None else local(h, h_prev))
        a = (da, x, h_prev, W_ih, W_hh)
        return (da @ W_ih if dx is None else dx(*a),
                da @ W_hh if dh is None else dh(*a),
                da.T @ x if dWi is None else dWi(*a),
                da.T @ h_prev if dWh is None else dWh(*a),
                da.sum(axis=0) if db is None else db(*a))
    return variant


@register("rnn_step_backward", chapter="05-rnn", args=("dh", "cache"),
          outputs=("dx", "dh_prev", "dW_ih", "dW_hh", "db"), cases=_rnn_cases,
          diagnosers=[
              Diagnoser("forgot tanh': multiply dh by the derivative of tanh, "
                        "1 - h^2 (h the step's output), before the products",
                        variant=_rnn_variant(local=lambda h, hp: 1.0)),
              Diagnoser("used 1 - h as tanh's derivative; it is 1 - h^2, with "
                        "h = tanh(a) the step's output",
                        variant=_rnn_variant(local=lambda h, hp: 1 - h)),
              Diagnoser("took tanh's derivative at h_prev: it is 1 - h^2 with "
                        "h the new state, the output of this step's tanh",
                        variant=_rnn_variant(local=lambda h, hp: 1 - hp ** 2)),
              Diagnoser("applied tanh to h again: h is already tanh(a), so the "
                        "derivative is 1 - h^2",
                        variant=_rnn_variant(local=lambda h, hp: 1 - np.tanh(h) ** 2)),
              Diagnoser("dW_ih is transposed: W_ih has PyTorch's layout (H, D) "
                        "and dW_ih has W_ih's shape", outputs=("dW_ih",),
                        variant=_rnn_variant(dWi=lambda da, x, hp, Wi, Wh: x.T @ da)),
              Diagnoser("dW_hh is transposed: h = tanh(x W_ih^T + h_prev W_hh^T "
                        "+ b), so dW_hh = da^T h_prev, of shape (H, H) like "
                        "W_hh", outputs=("dW_hh",),
                        variant=_rnn_variant(dWh=lambda da, x, hp, Wi, Wh: hp.T @ da)),
              Diagnoser("dh_prev used W_hh transposed: with h_prev W_hh^T in "
                        "the forward, dh_prev = da W_hh", outputs=("dh_prev",),
                        variant=_rnn_variant(dh=lambda da, x, hp, Wi, Wh: da @ Wh.T)),
              Diagnoser("dx used W_ih transposed: with x W_ih^T in the "
                        "forward, dx = da W_ih", outputs=("dx",),
                        variant=_rnn_variant(dx=lambda da, x, hp, Wi, Wh: da @ Wi.T)),
              Diagnoser("db is not summed over the batch: the bias is shared "
                        "by every example, so their gradients add up",
                        outputs=("db",),
                        variant=_rnn_variant(db=lambda da, x, hp, Wi, Wh: da)),
              Diagnoser("db is averaged over the batch: sum over it (a mean "
                        "loss's 1/N is already in dh)", outputs=("db",),
                        variant=_rnn_variant(
                            db=lambda da, x, hp, Wi, Wh: da.mean(axis=0))),
              Diagnoser("db is summed over the wrong axis (each example's "
                        "units instead of the batch)", outputs=("db",),
                        variant=_rnn_variant(
                            db=lambda da, x, hp, Wi, Wh: da.sum(axis=1))),
              Diagnoser("db is missing: the bias's gradient is da = dh (1 - "
                        "h^2) summed over the batch", outputs=("db",),
                        variant=_rnn_variant(db=lambda da, x, hp, Wi, Wh: None)),
          ])
def rnn_step_backward(dh, cache):
    """Exercise ``rnn_step_backward(dh, cache) -> (dx, dh_prev, dW_ih, dW_hh,
    db)``: the backward of one step of a plain RNN, h = tanh(x W_ih^T +
    h_prev W_hh^T + b). ``cache = (x, h_prev, W_ih, W_hh, h)`` exactly as
    ``nnlib.functional.rnn_step_forward`` returns it, with ``x: (N, D)``,
    ``h_prev: (N, H)``, ``W_ih: (H, D)`` and ``W_hh: (H, H)`` (PyTorch's
    layouts, as ``nnlib.RNN``'s ``weight_ih_l0`` and ``weight_hh_l0``) and
    ``h: (N, H)``, the step's output; ``dh: (N, H)``, dL/dh -> ``dx: (N,
    D)``, ``dh_prev: (N, H)``, ``dW_ih: (H, D)``, ``dW_hh: (H, H)``, ``db:
    (H,)``, sums over the batch. nnlib and PyTorch keep two biases, ``b =
    b_ih + b_hh``; each gets ``db``. Reference:
    ``nnlib.functional.rnn_step_backward`` (its first five outputs)."""
    return Fr.rnn_step_backward(dh, cache)[:5]


# --- chapter 5: one step of an LSTM -------------------------------------------
def _lstm_cases(rng):
    # (N, D, H, weight scale, input scale, cell-state scale), note
    settings = [((4, 3, 5, 0.5, 1.0, 1.0), ""),
                ((1, 4, 3, 0.5, 1.0, 1.0), "batch of 1"),
                ((3, 5, 1, 0.5, 1.0, 1.0), "one hidden unit"),
                ((7, 2, 6, 0.5, 1.0, 1.0), "odd batch with D < H"),
                ((2, 6, 3, 0.5, 1.0, 1.0), "D > H"),
                ((5, 3, 3, 0.5, 1.0, 3.0), "D = H and a large cell state"),
                ((4, 3, 4, 4.0, 3.0, 1.0), "saturated gates")]
    out = []
    for (n, d, h, scale, xs, cs), note in settings:
        x = rng.standard_normal((n, d)) * xs
        h_prev = np.tanh(rng.standard_normal((n, h)))
        c_prev = rng.standard_normal((n, h)) * cs
        W_ih = rng.standard_normal((4 * h, d)) * scale
        W_hh = rng.standard_normal((4 * h, h)) * scale
        b_ih, b_hh = rng.standard_normal((2, 4 * h)) * 0.5
        out.append(Case((x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh), note))
    return out


def _lstm_variant(order="ifgo", act=(), cell="full", out="full", bias="both",
                  interleaved=False):
    """One LSTM step with a known mistake: ``order`` names the blocks of H
    rows of the weights as the learner read them (``interleaved``: every
    fourth row instead), ``act`` the gates that got the other activation
    (tanh for i, f, o; a sigmoid for g), ``cell`` and ``out`` a wrong
    formula for c or h, ``bias`` a bias left out."""
    def variant(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
        a = x @ W_ih.T + h_prev @ W_hh.T
        a = a + (b_ih if bias != "hh" else 0) + (b_hh if bias != "ih" else 0)
        blocks = (np.moveaxis(a.reshape(len(a), -1, 4), 2, 0) if interleaved
                  else np.split(a, 4, axis=1))
        z = dict(zip(order, blocks))
        gate = {k: (np.tanh if (k == "g") != (k in act) else sigmoid)(z[k])
                for k in "ifgo"}
        i, f, g, o = (gate[k] for k in "ifgo")
        c = {"full": f * c_prev + i * g, "no_i": f * c_prev + g,
             "no_f": c_prev + i * g}[cell]
        h = {"full": o * np.tanh(c), "no_tanh": o * c,
             "c_prev": o * np.tanh(c_prev), "no_o": np.tanh(c)}[out]
        return h, c
    return variant


def _order_diagnoser(order):
    return Diagnoser(
        "the gates are in the wrong order (your output matches the order "
        f"{', '.join(order)}): nnlib and PyTorch stack the rows of W_ih, W_hh "
        "and the biases as i, f, g, o, H rows each",
        variant=_lstm_variant(order="".join(order)))


TANH_GATE = ("used tanh on the gate {}: the gates i, f and o are sigmoids "
             "(between 0 and 1); only the candidate g is a tanh")


@register("lstm_step_forward", chapter="05-rnn",
          args=("x", "h_prev", "c_prev", "W_ih", "W_hh", "b_ih", "b_hh"),
          outputs=("h", "c"), cases=_lstm_cases, diagnosers=[
              *[_order_diagnoser(p) for p in permutations("ifgo")
                if p != tuple("ifgo")],
              Diagnoser("the gates are interleaved: each gate is a block of "
                        "H consecutive rows of W_ih, W_hh and the biases "
                        "(gate k: rows k H to (k + 1) H - 1), not every "
                        "fourth row", variant=_lstm_variant(interleaved=True)),
              *[Diagnoser(TANH_GATE.format(k), variant=_lstm_variant(act=k))
                for k in "ifo"],
              Diagnoser("used tanh on every gate: i, f and o are sigmoids "
                        "(between 0 and 1); only the candidate g is a tanh",
                        variant=_lstm_variant(act="ifo")),
              Diagnoser("used a sigmoid on g: the candidate g is a tanh "
                        "(between -1 and 1); only i, f and o are sigmoids",
                        variant=_lstm_variant(act="g")),
              Diagnoser("forgot the input gate: the new cell state is "
                        "c = f c_prev + i g, the candidate g scaled by i",
                        variant=_lstm_variant(cell="no_i")),
              Diagnoser("forgot the forget gate: the new cell state is "
                        "c = f c_prev + i g, the old state scaled by f",
                        variant=_lstm_variant(cell="no_f")),
              Diagnoser("h = o c, without the tanh: the output is "
                        "h = o tanh(c)", outputs=("h",),
                        variant=_lstm_variant(out="no_tanh")),
              Diagnoser("h from c_prev: h = o tanh(c) uses this step's new "
                        "cell state c, not the previous one", outputs=("h",),
                        variant=_lstm_variant(out="c_prev")),
              Diagnoser("forgot the output gate: h = o tanh(c)",
                        outputs=("h",), variant=_lstm_variant(out="no_o")),
              *[Diagnoser("used one bias only: nnlib and PyTorch keep two, "
                          "b_ih and b_hh, and add both to the gates' input",
                          variant=_lstm_variant(bias=b)) for b in ("ih", "hh")],
          ])
def lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    """Exercise ``lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih,
    b_hh) -> (h, c)``: one step of an LSTM, as ``nnlib.LSTM`` and PyTorch
    (``torch.lstm_cell``). ``x: (N, D)``, ``h_prev, c_prev: (N, H)``,
    ``W_ih: (4H, D)``, ``W_hh: (4H, H)``, ``b_ih, b_hh: (4H,)`` (PyTorch's
    layouts, as ``weight_ih_l0`` and friends), whose blocks of H rows are
    the gates i, f, g, o in this order. With a = x W_ih^T + b_ih + h_prev
    W_hh^T + b_hh split into (a_i, a_f, a_g, a_o): i, f, o = sigmoid(a_i,
    a_f, a_o), g = tanh(a_g), c = f c_prev + i g, h = o tanh(c) -> ``h:
    (N, H)`` and ``c: (N, H)``. Reference:
    ``nnlib.functional.lstm_step_forward`` (its first output)."""
    return Fr.lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh)[0]


# --- chapter 5c: one head of attention ----------------------------------------
def _att_cases(rng):
    # (N, T_q, T_k, d, d_v, mask, score scale), note
    settings = [((2, 4, 4, 8, 8, "causal", 1.0), ""),
                ((1, 3, 5, 4, 2, None, 1.0),
                 "batch of 1 with T_q != T_k and no mask"),
                ((3, 5, 5, 7, 3, None, 1.0), "no mask and odd d"),
                ((2, 4, 6, 5, 4, "padding", 1.0),
                 "a padding mask (the last two keys)"),
                ((1, 3, 6, 3, 5, "causal", 1.0), "a causal mask with T_q < T_k"),
                ((2, 5, 3, 6, 2, "scattered", 1.0),
                 "a scattered mask with T_q > T_k"),
                ((2, 1, 7, 1, 3, None, 1.0), "one query, d = 1 and no mask"),
                ((2, 4, 4, 4, 3, None, 30.0), "large scores and no mask")]
    out = []
    for (n, tq, tk, d, dv, kind, scale), note in settings:
        Q = rng.standard_normal((n, tq, d)) * scale
        K = rng.standard_normal((n, tk, d)) * scale
        V = rng.standard_normal((n, tk, dv))
        mask = None
        if kind == "causal":
            mask = Fa.causal_mask(tq, tk)
        elif kind == "padding":
            mask = np.zeros((tq, tk), dtype=bool)
            mask[:, tk - 2:] = True
        elif kind == "scattered":
            mask = rng.random((tq, tk)) < 0.4
            mask[np.arange(tq), rng.integers(0, tk, size=tq)] = False
        out.append(Case((Q, K, V, mask), note))
    return out


def _attend(Q, K, V, mask, scale=None, fill=-np.inf, invert=False, axis=-1,
            stable=True, after=False):
    """Attention with a known mistake: ``scale(d, d_v)`` in place of
    1/sqrt(d), ``fill`` for the masked scores, the mask ``invert``-ed, the
    softmax over ``axis``, without the maximum subtracted (``stable``), or
    the mask applied to the weights ``after`` the softmax."""
    d, dv = Q.shape[-1], V.shape[-1]
    s = Q @ np.swapaxes(K, -1, -2) * (1 / np.sqrt(d) if scale is None else
                                      scale(d, dv))
    m = None if mask is None else (~mask if invert else mask)
    if m is not None and not after:
        s = np.where(m, fill, s)
    e = np.exp(s - s.max(axis=axis, keepdims=True) if stable else s)
    a = e / e.sum(axis=axis, keepdims=True)
    if m is not None and after:
        a = np.where(m, 0.0, a)
    return a @ V, a


def _att_variant(**kw):
    def variant(Q, K, V, mask):
        return _attend(Q, K, V, mask, **kw)
    return variant


def _matches_nonfinite(variant):
    """A test: an output of the learner equals the variant's, NaN for NaN
    (a wrong mask or axis can leave a row with no key, hence NaN)."""
    def test(args, got, expected):
        copies = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        with np.errstate(all="ignore"):
            out = variant(*copies)
        return any(g is not None and g.shape == v.shape and not np.all(
            np.isfinite(v)) and np.allclose(g, v, rtol=RTOL, atol=ATOL,
                                            equal_nan=True)
            for g, v in zip(got, out))
    return test


def _att_diagnoser(cause, **kw):
    v = _att_variant(**kw)
    return Diagnoser(cause, variant=v, test=_matches_nonfinite(v))


def _overflows(args) -> bool:
    Q, K = args[0], args[1]
    s = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    return float(np.max(s)) > 700.0            # e^710 is inf


@register("attention_forward", chapter="05c-attention",
          args=("Q", "K", "V", "mask"), outputs=("out", "weights"),
          cases=_att_cases, diagnosers=[
              _att_diagnoser("the scores are not scaled: divide Q K^T by "
                             "sqrt(d), d the size of a query and a key",
                             scale=lambda d, dv: 1.0),
              _att_diagnoser("the scores are divided by d: the scale is "
                             "1 / sqrt(d), d the size of a query and a key",
                             scale=lambda d, dv: 1.0 / d),
              _att_diagnoser("the scores are scaled with the size of the "
                             "values: the scale is 1 / sqrt(d), d the size "
                             "of a query and a key (Q.shape[-1])",
                             scale=lambda d, dv: 1.0 / np.sqrt(dv)),
              Diagnoser("the scores are scaled with the number of keys "
                        "(K.shape[1], T_k): the scale is 1 / sqrt(d), d the "
                        "size of a query and a key (Q.shape[-1])",
                        variant=lambda Q, K, V, mask: _attend(
                            Q, K, V, mask, scale=lambda d, dv: 1.0 / np.sqrt(K.shape[1]))),
              Diagnoser("the mask is not applied: where mask is True, the "
                        "score becomes -inf before the softmax",
                        variant=lambda Q, K, V, mask: _attend(Q, K, V, None)),
              _att_diagnoser("the mask is inverted: True means may NOT "
                             "attend (torch.nn.MultiheadAttention's "
                             "convention; F.scaled_dot_product_attention "
                             "uses the opposite one)", invert=True),
              _att_diagnoser("the softmax is over the queries (axis -2): "
                             "each query's weights over the keys, the last "
                             "axis, sum to 1", axis=-2),
              _att_diagnoser("the masked scores were set to 0: set them to "
                             "-inf, so that their weights are exactly 0",
                             fill=0.0),
              _att_diagnoser("masked the weights after the softmax: set the "
                             "masked scores to -inf before it, so that each "
                             "row of weights still sums to 1", after=True),
              Diagnoser("exp overflowed on large scores: subtract each row's "
                        "maximum score before exp; the weights do not change "
                        "(chapter 1's softmax)",
                        test=lambda a, g, e: _overflows(a) and any(
                            x is not None and x.shape == y.shape and not
                            np.all(np.isfinite(x)) for x, y in zip(g, e))),
          ])
def attention_forward(Q, K, V, mask):
    """Exercise ``attention_forward(Q, K, V, mask) -> (out, weights)``: one
    head of scaled dot-product attention, as nnlib and PyTorch. ``Q: (N,
    T_q, d)``, ``K: (N, T_k, d)``, ``V: (N, T_k, d_v)``; ``mask`` None or a
    bool array ``(T_q, T_k)``, the same for every example, True where query
    i may NOT attend to key j (``torch.nn.MultiheadAttention``'s
    ``attn_mask`` convention; ``F.scaled_dot_product_attention`` takes the
    opposite one, ``~mask``). Scores S = Q K^T / sqrt(d), -inf where
    masked; ``weights: (N, T_q, T_k)`` = softmax(S) over the keys (the last
    axis; a masked pair gets exactly 0), finite for scores in the
    thousands; ``out: (N, T_q, d_v)`` = weights V. Every case leaves each
    query at least one key. Reference:
    ``nnlib.functional.scaled_dot_product_attention_forward`` (its output
    and its cache's ``weights``)."""
    out, cache = Fa.scaled_dot_product_attention_forward(Q, K, V, mask)
    return out, cache.weights


def _att_bw_cases(rng):
    """The forward's cases, each with an upstream gradient ``dout`` and the
    forward's weights (exactly 0 where masked). The first is square
    (T_q = T_k), where a transposed product has the right shape and the
    wrong values."""
    out = []
    for case in _att_cases(rng):
        Q, K, V, mask = case.args
        o, cache = Fa.scaled_dot_product_attention_forward(Q, K, V, mask)
        out.append(Case((rng.standard_normal(o.shape), Q, K, V, cache.weights),
                        case.note))
    return out


def _att_bw_variant(scale="sqrt", ds="full", rowsum_axis=-1, dv="A^T",
                    dk="dS^T Q", dq="dS K", dv_scaled=False, recompute=False):
    """The backward of one head with a known mistake: the scale
    (``"sqrt"``: 1/sqrt(d); ``"none"``; ``"d"``: 1/d; ``"dv"``:
    1/sqrt(d_v)), also on dV (``dv_scaled``); dS from dA (``"full"``;
    ``"dA"``: the softmax's Jacobian left out; ``"A*dA"``: its row-sum
    term left out; ``"mean"``: the plain row mean of dA subtracted;
    ``"diag"``: the Jacobian's diagonal A (1 - A) only) with the row sum
    over ``rowsum_axis``; the products for dV, dK and dQ (transposed or
    not); the weights recomputed from Q and K without the mask
    (``recompute``)."""
    def variant(dout, Q, K, V, A):
        d = Q.shape[-1]
        c = {"sqrt": 1 / np.sqrt(d), "none": 1.0, "d": 1 / d,
             "dv": 1 / np.sqrt(V.shape[-1]), "times": np.sqrt(d)}[scale]
        T = lambda a: np.swapaxes(a, -1, -2)                  # noqa: E731
        if recompute:
            if (A > 0).all():
                raise ValueError("no mask here: the same weights")
            s = Q @ T(K) / np.sqrt(d)
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            A = e / e.sum(axis=-1, keepdims=True)
        dV = T(A) @ dout if dv == "A^T" else A @ dout
        dV = dV * c if dv_scaled else dV
        dA = dout @ T(V)
        dS = {"full": A * (dA - (dA * A).sum(axis=rowsum_axis, keepdims=True)),
              "dA": dA, "A*dA": A * dA, "mean": A * (dA - dA.mean(axis=-1, keepdims=True)),
              "diag": A * (1 - A) * dA, "minus": -A * (dA - (dA * A).sum(axis=-1, keepdims=True)),
              "no A": dA - (dA * A).sum(axis=-1, keepdims=True)}[ds]
        dQ = (dS @ K if dq == "dS K" else T(dS) @ K) * c
        dK = (T(dS) @ Q if dk == "dS^T Q" else dS @ Q) * c
        return dQ, dK, dV
    return variant


@register("attention_backward", chapter="05c-attention",
          args=("dout", "Q", "K", "V", "weights"), outputs=("dQ", "dK", "dV"),
          cases=_att_bw_cases, diagnosers=[
              Diagnoser("the scale is left out: S = Q K^T / sqrt(d), so dQ "
                        "and dK each carry the factor 1 / sqrt(d)",
                        outputs=("dQ", "dK"), variant=_att_bw_variant(scale="none")),
              Diagnoser("divided by d: the scale is 1 / sqrt(d), d the size "
                        "of a query and a key", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(scale="d")),
              Diagnoser("went from dA to dS without the softmax's Jacobian: "
                        "dS = A * (dA - rowsum(dA * A)), the vector-Jacobian "
                        "product of each row's softmax", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(ds="dA")),
              Diagnoser("left out the softmax's row-sum term: dS = A * (dA - "
                        "rowsum(dA * A)); A * dA alone ignores that the "
                        "weights of a row sum to 1", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(ds="A*dA")),
              Diagnoser("the softmax's row sum runs over the queries (axis "
                        "-2): each query's weights are a softmax over the "
                        "keys, so sum dA * A over the last axis",
                        outputs=("dQ", "dK"),
                        variant=_att_bw_variant(rowsum_axis=-2)),
              Diagnoser("dV is not transposed: out = A V, so dV = A^T dout "
                        "(shape (N, T_k, d_v))", outputs=("dV",),
                        variant=_att_bw_variant(dv="A")),
              Diagnoser("dK is not transposed: S = Q K^T, so dK = dS^T Q "
                        "(times the scale), of the shape of K", outputs=("dK",),
                        variant=_att_bw_variant(dk="dS Q")),
              Diagnoser("dQ uses dS transposed: S = Q K^T, so dQ = dS K "
                        "(times the scale), of the shape of Q", outputs=("dQ",),
                        variant=_att_bw_variant(dq="dS^T K")),
              Diagnoser("subtracted the plain mean of each row of dA: the "
                        "softmax's vector-Jacobian product subtracts the "
                        "weighted sum rowsum(dA * A), weighted by the row's "
                        "own weights", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(ds="mean")),
              Diagnoser("used only the diagonal of the softmax's Jacobian, "
                        "A (1 - A): each weight of a row depends on every "
                        "score of the row, so dS = A * (dA - rowsum(dA * A))",
                        outputs=("dQ", "dK"), variant=_att_bw_variant(ds="diag")),
              Diagnoser("scaled dV too: the scale 1 / sqrt(d) is inside the "
                        "scores S, so it reaches dQ and dK; out = A V has no "
                        "scale, so dV = A^T dout", outputs=("dV",),
                        variant=_att_bw_variant(dv_scaled=True)),
              Diagnoser("scaled by 1 / sqrt(d_v), the size of a value: the "
                        "scale is 1 / sqrt(d), d the size of a query and a "
                        "key (Q.shape[-1])", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(scale="dv")),
              Diagnoser("multiplied by sqrt(d): S = Q K^T / sqrt(d), so dQ and "
                        "dK are divided by it", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(scale="times")),
              Diagnoser("dS has the wrong sign: dS = A * (dA - rowsum(dA * A)), "
                        "the weight times (its gradient minus the row's "
                        "weighted mean)", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(ds="minus")),
              Diagnoser("left out the factor A in dS: dS = A * (dA - rowsum(dA "
                        "* A)); a weight's score moves it in proportion to the "
                        "weight itself", outputs=("dQ", "dK"),
                        variant=_att_bw_variant(ds="no A")),
              Diagnoser("recomputed the weights from Q and K without the "
                        "mask: use the forward's weights, 0 where a pair was "
                        "masked (or apply the mask again before the softmax)",
                        variant=_att_bw_variant(recompute=True)),
          ])
def attention_backward(dout, Q, K, V, weights):
    """Exercise ``attention_backward(dout, Q, K, V, weights) -> (dQ, dK,
    dV)``: the backward pass of one head of scaled dot-product attention,
    out = A V with A = softmax(S) over the keys and S = Q K^T / sqrt(d)
    (-inf where masked). ``dout: (N, T_q, d_v)`` is dL/dout; ``Q: (N, T_q,
    d)``, ``K: (N, T_k, d)``, ``V: (N, T_k, d_v)``; ``weights: (N, T_q,
    T_k)`` is the forward's A, exactly 0 where a pair was masked (so no
    mask is needed: its pairs get no gradient through the weights). Return
    dL/dQ, dL/dK and dL/dV, of the shapes of Q, K and V: dV = A^T dout, dA
    = dout V^T, dS = A * (dA - rowsum(dA * A)), dQ = dS K / sqrt(d), dK =
    dS^T Q / sqrt(d). Reference:
    ``nnlib.functional.scaled_dot_product_attention_backward``."""
    cache = Fa.AttentionCache(Q, K, V, weights, 1.0 / np.sqrt(Q.shape[-1]))
    return Fa.scaled_dot_product_attention_backward(dout, cache)


# --- section 4b: batch normalisation for feature maps -------------------------
def _bn2d_cases(rng):
    # (N, C, H, W), eps, note
    settings = [((2, 3, 4, 3), 1e-5, "W = C"),
                ((4, 3, 5, 5), 1e-5, ""),
                ((1, 2, 4, 4), 1e-5, "batch of 1"),
                ((3, 5, 3, 7), 1e-5, "odd sizes"),
                ((5, 2, 1, 1), 1e-5, "1x1 maps"),
                ((2, 4, 3, 3), 0.5, "large eps"),
                ((3, 3, 4, 4), 1e-5, "a constant channel"),
                ((2, 2, 3, 5), 1e-5, "large offset")]
    out = []
    for (n, c, h, w), eps, note in settings:
        x = rng.standard_normal((n, c, h, w)) * 2.0 + rng.standard_normal(c)[:, None, None]
        if note == "a constant channel":
            x[:, 1] = 3.0
        if note == "large offset":
            x = x + 100.0
        gamma, beta = rng.standard_normal(c) + 1.0, rng.standard_normal(c)
        out.append(Case((x, gamma, beta, eps), note))
    return out


def _bn2d_bw_cases(rng):
    """The forward's cases with an upstream gradient ``dy`` each."""
    out = []
    for case in _bn2d_cases(rng):
        x, gamma, beta, eps = case.args
        out.append(Case((rng.standard_normal(x.shape), x, gamma, eps), case.note))
    return out


def _bn2d_bw_variant(axes=(0, 2, 3), ddof=0, dx_kind="full", dgamma_of="xhat",
                     gamma_axis="channel", gamma_in_dx=True, with_eps=True):
    """The backward of batch norm with a known mistake: the statistics
    over ``axes``, the variance with ``ddof``, ``dx_kind`` "constant stats"
    (the mean and variance treated as constants) or "mean only" (the
    variance's path left out), dgamma from ``x`` in place of xhat, gamma
    broadcast along the last axis, gamma left out of dx, or eps left out
    (``with_eps``)."""
    def variant(dy, x, gamma, eps):
        mu = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, ddof=ddof, keepdims=True)
        inv = 1.0 / np.sqrt(var + (eps if with_eps else 0.0))
        xhat = (x - mu) * inv
        if not gamma_in_dx:
            g = dy
        elif gamma_axis == "last":
            g = dy * gamma
        else:
            g = dy * gamma[:, None, None]
        mean = lambda a: a.mean(axis=axes, keepdims=True)   # noqa: E731
        if dx_kind == "constant stats":
            dx = g * inv
        elif dx_kind == "mean only":
            dx = (g - mean(g)) * inv
        else:
            dx = (g - mean(g) - xhat * mean(g * xhat)) * inv
        red = (0, 2, 3)
        dgamma = (dy * (x if dgamma_of == "x" else xhat)).sum(axis=red)
        return dx, dgamma, dy.sum(axis=red)
    return variant


@register("batchnorm2d_backward", chapter="04b-modern-cnns",
          args=("dy", "x", "gamma", "eps"), outputs=("dx", "dgamma", "dbeta"),
          cases=_bn2d_bw_cases, diagnosers=[
              Diagnoser("treated the mean and the variance as constants: "
                        "they depend on every x of the channel, so dx has two "
                        "more terms, through the mean and through the variance",
                        outputs=("dx",),
                        variant=_bn2d_bw_variant(dx_kind="constant stats")),
              Diagnoser("left out the path through the variance: dx also "
                        "depends on x through var_c, the term in xhat",
                        outputs=("dx",), variant=_bn2d_bw_variant(dx_kind="mean only")),
              Diagnoser("the statistics are per image (over H and W only): "
                        "each channel's mean and variance are over the batch "
                        "and the pixels, axes (0, 2, 3), m = N H W values, and "
                        "so are the means in dx", outputs=("dx",),
                        variant=_bn2d_bw_variant(axes=(2, 3))),
              Diagnoser("the sums in dx are over the batch (axis 0) only, as in "
                        "BatchNorm1d: for feature maps every pixel of a channel "
                        "shares its statistics, so the means are over axes "
                        "(0, 2, 3), m = N H W", outputs=("dx",),
                        variant=_bn2d_bw_variant(axes=(0,))),
              Diagnoser("used the unbiased variance (divided by m - 1); batch "
                        "norm normalises with the biased one (divide by m = "
                        "N H W)", variant=_bn2d_bw_variant(ddof=1)),
              Diagnoser("dgamma is the sum of dy times the normalised xhat, "
                        "not times x", outputs=("dgamma",),
                        variant=_bn2d_bw_variant(dgamma_of="x")),
              Diagnoser("gamma was broadcast along the last axis (W): it is "
                        "per channel, so reshape it to (C, 1, 1) or (1, C, 1, 1)",
                        outputs=("dx",), variant=_bn2d_bw_variant(gamma_axis="last")),
              Diagnoser("forgot gamma in dx: y = gamma xhat + beta, so the "
                        "gradient reaching xhat is dy times gamma",
                        outputs=("dx",), variant=_bn2d_bw_variant(gamma_in_dx=False)),
              Diagnoser("divided by sqrt(var) without eps: a channel that is "
                        "constant over the batch has variance 0",
                        test=lambda a, g, e: g[0] is not None and g[0].shape ==
                        e[0].shape and not np.all(np.isfinite(g[0]))),
              Diagnoser("divided by sqrt(var) without eps: add eps to the "
                        "variance, inside the square root, as the forward pass "
                        "does", variant=_bn2d_bw_variant(with_eps=False)),
          ])
def batchnorm2d_backward(dy, x, gamma, eps):
    """Exercise ``batchnorm2d_backward(dy, x, gamma, eps) -> (dx, dgamma,
    dbeta)``: the backward pass of batch normalisation of feature maps in
    training mode, as ``nnlib.BatchNorm2d`` and PyTorch: ``dy, x: (N, C,
    H, W)``, ``gamma: (C,)`` -> ``dx`` of ``x``'s shape and ``dgamma,
    dbeta: (C,)``, for ``y = gamma_c (x - mean_c) / sqrt(var_c + eps) +
    beta_c`` with each channel's mean and *biased* variance over its ``m =
    N H W`` values (axes 0, 2 and 3), the statistics depending on x.
    Reference: ``nnlib.functional.batch_norm_forward`` and
    ``batch_norm_backward`` (no running statistics)."""
    beta = np.zeros_like(gamma)
    _, cache = Fn.batch_norm_forward(x, gamma, beta, None, None, True, eps=eps)
    return Fn.batch_norm_backward(dy, cache)


# --- section 4b: global average pooling ---------------------------------------
def _gap_cases(rng):
    # (N, C, H, W), note
    settings = [((4, 5, 4, 5), "H = N and W = C"), ((2, 3, 4, 4), ""),
                ((1, 5, 3, 3), "batch of 1"), ((3, 2, 5, 7), "odd sizes, H != W"),
                ((2, 4, 1, 1), "1x1 maps"), ((2, 1, 6, 2), "one channel"),
                ((1, 1, 7, 3), "one image of one channel")]
    return [Case((rng.standard_normal((n, c, 1, 1)), (n, c, h, w)), note)
            for (n, c, h, w), note in settings]


def _gap_variant(divide=lambda n, c, h, w: h * w, spread=None):
    """GAP's backward with a known mistake: ``divide``, what each gradient is
    divided by; ``spread(dout, shape)``, how it is broadcast."""
    def variant(dout, x_shape):
        n, c, h, w = x_shape
        if spread is not None:
            return spread(dout, x_shape) / divide(n, c, h, w)
        return np.broadcast_to(dout, x_shape) / divide(n, c, h, w)
    return variant


def _corner(dout, x_shape):
    """dout on pixel (0, 0) of each map, times H W (undone by the variant's
    division): the whole gradient on one pixel."""
    h, w = x_shape[2:]
    return np.pad(dout, ((0, 0), (0, 0), (0, h - 1), (0, w - 1))) * h * w


@register("global_avg_pool_backward", chapter="04b-modern-cnns",
          args=("dout", "x_shape"), outputs=("dx",), cases=_gap_cases,
          diagnosers=[
              Diagnoser("forgot to divide by H W: each pixel enters the mean "
                        "with weight 1 / (H W), so it gets that share of the "
                        "gradient", variant=_gap_variant(divide=lambda n, c, h, w: 1)),
              *[Diagnoser("divided by H or by W only: the mean runs over all "
                          "H W pixels of the map", variant=_gap_variant(divide=d))
                for d in (lambda n, c, h, w: h, lambda n, c, h, w: w)],
              Diagnoser("divided by N H W as well: the mean is over the pixels "
                        "of each map, not over the batch; each image keeps its "
                        "own gradient", variant=_gap_variant(
                            divide=lambda n, c, h, w: n * h * w)),
              Diagnoser("divided by C H W as well: the mean is over the pixels "
                        "of each channel, not over the channels",
                        variant=_gap_variant(divide=lambda n, c, h, w: c * h * w)),
              Diagnoser("broadcast along the wrong axes: dout (N, C) was lined "
                        "up with the image axes (H, W); keep its trailing 1 x 1 "
                        "axes (or add them) so that it spreads over H and W",
                        variant=_gap_variant(spread=lambda d, s: np.ones(s) * d.reshape(
                            d.shape[:2]))),
              Diagnoser("the image axes are swapped: x_shape is (N, C, H, W)",
                        variant=_gap_variant(spread=lambda d, s: np.broadcast_to(
                            d, s[:2] + s[:1:-1]).copy())),
              Diagnoser("put the whole gradient on one pixel of each map: the "
                        "mean depends on every pixel equally",
                        variant=_gap_variant(spread=_corner)),
          ])
def global_avg_pool_backward(dout, x_shape):
    """Exercise ``global_avg_pool_backward(dout, x_shape) -> dx``: the
    backward of global average pooling, as ``nnlib.AdaptiveAvgPool2d(1)``
    and PyTorch's ``adaptive_avg_pool2d(x, 1)``. ``x_shape = (N, C, H,
    W)``, the forward's input's shape (a tuple of integers); ``dout: (N, C,
    1, 1)``, dL/dy for the output ``y[n, c] = mean of x[n, c]`` over its
    H W pixels -> ``dx: (N, C, H, W)``. Reference:
    ``nnlib.functional.adaptive_avg_pool2d_backward``."""
    _, cache = Fc.adaptive_avg_pool2d_forward(np.zeros(x_shape), (1, 1))
    return Fc.adaptive_avg_pool2d_backward(dout, cache)
