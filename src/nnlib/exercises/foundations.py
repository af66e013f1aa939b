"""The exercises of chapters 1 to 3: write a piece of the network yourself
and check it against nnlib's own.

Each function here is the reference of the exercise of the same name; its
docstring is the exercise's contract (arguments, shapes, layouts, what to
return), in nnlib's and PyTorch's conventions: a batch in rows, ``Linear``'s
weight ``W`` of shape ``(D_out, D_in)``, losses averaged over the batch,
backward functions taking the cache their forward keeps. Each is registered
with random cases (batch of 1, odd sizes, the edge cases that catch the usual
mistakes) and with the wrong answers the checker recognises.

=========================  ====================  =======================
exercise                   chapter               returns
=========================  ====================  =======================
``log_softmax``            01-concepts           ``logp``
``softmax_cross_entropy``  01-concepts           ``(loss, dz)``
``sigmoid_backward``       01-concepts           ``dx``
``linear_backward``        02-backprop           ``(dx, dW, db)``
``relu_backward``          02-backprop           ``dx``
``tanh_backward``          02-backprop           ``dx``
``softmax_backward``       02-backprop           ``dz``
``momentum_step``          03-training           ``(w, buf)``
``adam_step``              03-training           ``(w, m, v)``
``batchnorm_forward``      03-training           ``y``
``layer_norm_backward``    03b-optimisation      ``(dx, dgamma, dbeta)``
``warmup_cosine_lr``       03b-optimisation      ``lr``
=========================  ====================  =======================
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..losses import CrossEntropyLoss
from ..module import Parameter
from ..optim import SGD, Adam, CosineAnnealingLR, LinearLR, SequentialLR
from ._core import Case, Diagnoser, register

__all__ = ["log_softmax", "softmax_cross_entropy", "sigmoid_backward", "linear_backward",
           "relu_backward", "tanh_backward", "softmax_backward", "momentum_step",
           "adam_step", "batchnorm_forward", "layer_norm_backward", "warmup_cosine_lr"]

LARGE = 500.0          # logits beyond this overflow exp (e^710 is inf)


def _nonfinite(i):
    """A test: output ``i`` of the learner holds NaN or infinity."""
    def test(args, got, expected):
        return got[i] is not None and got[i].shape == expected[i].shape and not \
            np.all(np.isfinite(got[i]))
    return test


def _large(args) -> bool:
    return float(np.max(np.abs(args[0]))) > LARGE


def _wrong_sign(ref):
    def variant(*args):
        out = ref(*args)
        return tuple(-o for o in out) if isinstance(out, tuple) else -out
    return variant


SIGN = "wrong sign: the output has the right size but points the other way"


# --- chapter 1 -------------------------------------------------------------
def _logit_cases(rng):
    def normal(*shape, scale=1.0):
        return rng.standard_normal(shape) * scale

    return [Case((normal(4, 4),)),
            Case((normal(1, 5),), "batch of 1"),
            Case((normal(7, 3, scale=2.0),), "odd sizes"),
            Case((normal(3, 10, scale=3.0),)),
            Case((normal(5, 4, scale=300.0) + 700.0,), "large logits"),
            Case((normal(2, 6) - 1000.0,), "very negative logits"),
            Case((np.full((3, 4), 0.5),), "equal logits"),
            Case((normal(6, 1),), "one class")]


def _neg_inf(args, got, expected):
    """The learner's log-probabilities hold -inf (and no NaN or +inf) where
    the expected ones are finite, each row keeping a finite entry (its
    largest): a probability underflowed to 0, not the sum."""
    g = got[0]
    return (g is not None and g.shape == expected[0].shape and bool(np.isneginf(g).any())
            and not np.isnan(g).any() and not np.isposinf(g).any()
            and bool(np.isfinite(g).any(axis=-1).all()))    # each row's top is finite


def _capped(args, got, expected):
    """Finite, but above the expected log-probabilities on large logits, as
    when log(p + eps) or a clipped p caps log p near log(eps)."""
    g, e = got[0], expected[0]
    return (_large(args) and g is not None and g.shape == e.shape
            and bool(np.all(np.isfinite(g))) and bool(np.any(g > e + 1.0)))


def _lse(z, axis=-1, keepdims=True):
    m = z.max(axis=axis, keepdims=True)
    out = m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


@register("log_softmax", chapter="01-concepts", args=("z",), outputs=("logp",),
          cases=_logit_cases, diagnosers=[
              Diagnoser("computed the log of the softmax: on large or very "
                        "negative logits a probability underflows to 0 and its "
                        "log is -inf; work with the shifted scores and the log "
                        "of their sum, never with the probabilities",
                        test=_neg_inf),
              Diagnoser("adding eps to p (log(p + eps)) or clipping p hides "
                        "the underflow: the log-probabilities come out finite "
                        "but wrong on large logits, capped near log(eps)",
                        test=_capped),
              Diagnoser("exp overflowed (or every exp underflowed to 0, giving "
                        "0/0) on large logits: subtract each row's maximum "
                        "before exp (exercise 3) and add it back outside the log",
                        test=lambda a, g, e: _large(a) and _nonfinite(0)(a, g, e)
                        and not _neg_inf(a, g, e)),
              *[Diagnoser("normalised over the batch (axis 0) instead of over "
                          "the classes of each example (the last axis)",
                          variant=v) for v in (
                  lambda z: F.log_softmax(z, axis=0),
                  lambda z: z - _lse(z, axis=0))],
              Diagnoser("returned the probabilities: the exercise asks for "
                        "their logs", variant=lambda z: F.softmax(z, axis=-1)),
              Diagnoser("forgot the log of the sum of the exponentials: z - "
                        "max is only shifted, not normalised",
                        variant=lambda z: z - z.max(axis=-1, keepdims=True)),
              Diagnoser("subtracted the maximum inside the log but did not "
                        "add it back: log sum exp(z) = max + log sum exp(z - "
                        "max)", variant=lambda z: z - np.log(
                            np.exp(z - z.max(axis=-1, keepdims=True)).sum(
                                axis=-1, keepdims=True))),
              Diagnoser("summed over the whole batch; each row (one example) "
                        "needs its own sum", variant=lambda z: z - _lse(z, axis=None)),
              Diagnoser("the row sums lost their axis: sum with keepdims=True "
                        "(or [:, None]) so that row i gets its own sum",
                        variant=lambda z: z - _lse(z, keepdims=False)),
          ])
def log_softmax(z):
    """Exercise ``log_softmax(z) -> logp``: ``z: (N, C)`` scores (logits),
    one row per example -> ``logp: (N, C)``, the log of each row's softmax
    probabilities, computed so that it stays finite (and exact) for logits
    in the thousands, positive or negative, where a probability underflows
    to 0. Reference: ``nnlib.functional.log_softmax(z, axis=-1)``."""
    return F.log_softmax(z, axis=-1)


def _ce_cases(rng):
    out = []
    for case in _logit_cases(rng):
        z = case.args[0]
        n, c = z.shape
        y = rng.integers(0, c, size=n)
        if case.note == "large logits":
            y[: (n + 1) // 2] = z[: (n + 1) // 2].argmin(axis=1)   # p underflows
        out.append(Case((z, y), case.note))
    return out


def _ce_parts(z, y):
    logp = F.log_softmax(z, axis=1)
    n = len(y)
    onehot = np.zeros_like(z)
    onehot[np.arange(n), y] = 1.0
    return -logp[np.arange(n), y], np.exp(logp), onehot, n


def _capped(i):
    """A test: output ``i`` (a loss) is finite but below the expected one on
    large logits, as when log(p + eps) or a clipped p caps -log p."""
    def test(args, got, expected):
        g, e = got[i], expected[i]
        return (_large(args) and g is not None and g.shape == e.shape
                and bool(np.all(np.isfinite(g))) and float(np.sum(g)) < float(np.sum(e)))
    return test


CAPPED = ("adding eps to p (log(p + eps)) or clipping p hides the underflow: "
          "the loss comes out finite but wrong on large logits, capped near "
          "-log(eps); use log-softmax, log p = z - max - log(sum(exp(z - max)))")


def _ce_variant(loss=None, dz=None):
    def variant(z, y):
        per, p, onehot, n = _ce_parts(z, y)
        ref_loss, ref_dz = per.mean(), (p - onehot) / n
        return (ref_loss if loss is None else loss(per, n),
                ref_dz if dz is None else dz(p, onehot, n))
    return variant


@register("softmax_cross_entropy", chapter="01-concepts", args=("z", "y"),
          outputs=("loss", "dz"), scalar_outputs=("loss",), cases=_ce_cases,
          diagnosers=[
              Diagnoser("summed the examples' losses; the loss is their mean "
                        "(divide by N)", outputs=("loss",),
                        variant=_ce_variant(loss=lambda per, n: per.sum())),
              Diagnoser("returned each example's loss; the loss is one number, "
                        "their mean", outputs=("loss",),
                        variant=_ce_variant(loss=lambda per, n: per)),
              Diagnoser("the loss is minus the log-probability of the true "
                        "class, so it is never negative: the sign is wrong",
                        outputs=("loss",),
                        variant=_ce_variant(loss=lambda per, n: -per.mean())),
              Diagnoser("a probability underflowed to 0 (log 0 = -inf) or exp "
                        "overflowed: compute log p as z - max - log(sum(exp(z - "
                        "max))), not as the log of the softmax",
                        test=lambda a, g, e: _large(a) and (
                            _nonfinite(0)(a, g, e) or _nonfinite(1)(a, g, e))),
              Diagnoser(CAPPED, outputs=("loss",), test=_capped(0)),
              Diagnoser("dz is missing the 1/N of the mean over the batch",
                        outputs=("dz",),
                        variant=_ce_variant(dz=lambda p, oh, n: p - oh)),
              Diagnoser("dz is missing the -1 at the true class: dz is (p - "
                        "onehot(y)) / N", outputs=("dz",),
                        variant=_ce_variant(dz=lambda p, oh, n: p / n)),
              Diagnoser("dz is missing the -1 at the true class and the 1/N",
                        outputs=("dz",),
                        variant=_ce_variant(dz=lambda p, oh, n: p)),
              Diagnoser("dz has the wrong sign: it is p - onehot(y), not "
                        "onehot(y) - p (then divided by N)", outputs=("dz",),
                        variant=_ce_variant(dz=lambda p, oh, n: (oh - p) / n)),
          ])
def softmax_cross_entropy(z, y):
    """Exercise ``softmax_cross_entropy(z, y) -> (loss, dz)``: ``z: (N, C)``
    logits, ``y: (N,)`` integer labels in [0, C) -> ``loss``, a number, the
    mean over the batch of -log softmax(z_i)[y_i], and ``dz: (N, C)``, its
    gradient with respect to ``z``. As ``nnlib.CrossEntropyLoss()`` (and
    ``torch.nn.CrossEntropyLoss``) with the default ``reduction='mean'``;
    finite for logits in the thousands."""
    loss = CrossEntropyLoss()
    value = loss(z, y)
    return value, loss.backward()


def _activation_cases(rng, make_cache, zeros=False):
    shapes = [(4, 3), (1, 5), (7,), (2, 3, 4), (3, 3), (5, 1)]
    out = []
    for i, shape in enumerate(shapes):
        x = rng.standard_normal(shape) * 2.0
        note = {1: "batch of 1", 2: "one dimension", 3: "three dimensions"}.get(i, "")
        out.append(Case((rng.standard_normal(shape), make_cache(x)), note))
    x = rng.standard_normal((4, 5)) * 20.0
    out.append(Case((rng.standard_normal((4, 5)), make_cache(x)), "saturated units"))
    if zeros:
        x = rng.standard_normal((3, 4))
        x[:, ::2] = 0.0
        out.append(Case((rng.standard_normal((3, 4)), make_cache(x)), "x with exact zeros"))
    return out


def _sigmoid_cases(rng):
    return _activation_cases(rng, lambda x: F.sigmoid(x))


@register("sigmoid_backward", chapter="01-concepts", args=("dout", "y"),
          outputs=("dx",), cases=_sigmoid_cases, diagnosers=[
              Diagnoser("applied the sigmoid to y again: y is already sigma(x), "
                        "the forward's output, so the derivative is written in y",
                        variant=lambda d, y: d * F.sigmoid(y) * (1 - F.sigmoid(y))),
              Diagnoser("forgot to multiply by dout (the chain rule: the upstream "
                        "gradient times the local derivative)",
                        variant=lambda d, y: y * (1 - y)),
              Diagnoser("used the derivative of tanh (1 - y^2) instead of the "
                        "sigmoid's", variant=lambda d, y: d * (1 - y * y)),
              Diagnoser("dropped the factor (1 - y)", variant=lambda d, y: d * y),
              Diagnoser(SIGN, variant=lambda d, y: -d * y * (1 - y)),
          ])
def sigmoid_backward(dout, y):
    """Exercise ``sigmoid_backward(dout, y) -> dx``: ``dout: (...)``, the
    gradient of the loss with respect to the sigmoid's output, and ``y:
    (...)``, that output sigma(x) (what nnlib's sigmoid caches) -> ``dx:
    (...)``, the gradient with respect to its input x. Reference:
    ``nnlib.functional.sigmoid_backward``."""
    return F.sigmoid_backward(dout, y)


# --- chapter 2 -------------------------------------------------------------
def _linear_cases(rng):
    sizes = [((4, 3, 3), "square W"), ((1, 5, 3), "batch of 1"), ((6, 3, 2), ""),
             ((7, 4, 5), "odd sizes"), ((2, 1, 5), "one input"),
             ((5, 6, 1), "one output"), ((3, 2, 2), "square W")]
    out = []
    for (n, d_in, d_out), note in sizes:
        x = rng.standard_normal((n, d_in))
        W = rng.standard_normal((d_out, d_in))
        b = rng.standard_normal(d_out)
        _, cache = F.linear_forward(x, W, b)
        out.append(Case((rng.standard_normal((n, d_out)), cache), note))
    return out


def _lin_variant(dx=None, dW=None, db=None):
    def variant(dout, cache):
        x, W, _ = cache
        r = (dout @ W, dout.T @ x, dout.sum(axis=0))
        return (r[0] if dx is None else dx(dout, x, W),
                r[1] if dW is None else dW(dout, x, W),
                r[2] if db is None else db(dout, x, W))
    return variant


@register("linear_backward", chapter="02-backprop", args=("dout", "cache"),
          outputs=("dx", "dW", "db"), cases=_linear_cases, diagnosers=[
              Diagnoser("dW is transposed: W has PyTorch's layout (D_out, D_in), "
                        "and dW has W's shape", outputs=("dW",),
                        variant=_lin_variant(dW=lambda d, x, W: x.T @ d)),
              Diagnoser("dW is averaged over the batch: sum over it (a mean "
                        "loss's 1/N is already in dout)", outputs=("dW",),
                        variant=_lin_variant(dW=lambda d, x, W: d.T @ x / len(x))),
              Diagnoser("db is missing: the bias's gradient is dout summed over "
                        "the batch", outputs=("db",),
                        variant=_lin_variant(db=lambda d, x, W: None)),
              Diagnoser("db is missing: the bias's gradient is dout summed over "
                        "the batch", outputs=("db",),
                        variant=_lin_variant(db=lambda d, x, W: np.zeros(W.shape[0]))),
              Diagnoser("db is averaged over the batch: sum over it",
                        outputs=("db",),
                        variant=_lin_variant(db=lambda d, x, W: d.mean(axis=0))),
              Diagnoser("db is summed over the wrong axis (each example's "
                        "outputs instead of the batch)", outputs=("db",),
                        variant=_lin_variant(db=lambda d, x, W: d.sum(axis=1))),
              Diagnoser("db is not summed over the batch: the bias is shared by "
                        "every example, so their gradients add up",
                        outputs=("db",),
                        variant=_lin_variant(db=lambda d, x, W: d)),
              Diagnoser("dx used W transposed: with W of shape (D_out, D_in), "
                        "y = x W^T, so dx = dout W", outputs=("dx",),
                        variant=_lin_variant(dx=lambda d, x, W: d @ W.T)),
          ])
def linear_backward(dout, cache):
    """Exercise ``linear_backward(dout, cache) -> (dx, dW, db)``: the
    backward of y = x W^T + b. ``cache = (x, W, has_bias)`` exactly as
    ``nnlib.functional.linear_forward(x, W, b)`` returns it, with ``x: (N,
    D_in)``, ``W: (D_out, D_in)`` (PyTorch's layout) and ``has_bias`` True
    here; ``dout: (N, D_out)`` -> ``dx: (N, D_in)``, ``dW: (D_out, D_in)``,
    ``db: (D_out,)``, sums over the batch. Reference:
    ``nnlib.functional.linear_backward``."""
    return F.linear_backward(dout, cache)


def _relu_cases(rng):
    return _activation_cases(rng, lambda x: x, zeros=True)


@register("relu_backward", chapter="02-backprop", args=("dout", "x"),
          outputs=("dx",), cases=_relu_cases, diagnosers=[
              Diagnoser("masked with dout > 0; the mask is x > 0, where the "
                        "forward let its input through",
                        variant=lambda d, x: d * (d > 0)),
              Diagnoser("returned the mask x > 0 without multiplying by dout",
                        variant=lambda d, x: (x > 0).astype(float)),
              Diagnoser("let the gradient through at x = 0: take the derivative "
                        "at 0 as 0 (x > 0, as PyTorch does)",
                        variant=lambda d, x: d * (x >= 0)),
              Diagnoser("multiplied dout by relu(x) instead of by the mask "
                        "(x > 0)", variant=lambda d, x: d * np.maximum(x, 0)),
              Diagnoser(SIGN, variant=lambda d, x: -d * (x > 0)),
          ])
def relu_backward(dout, x):
    """Exercise ``relu_backward(dout, x) -> dx``: ``dout: (...)``, the
    gradient with respect to relu(x), and ``x: (...)``, the forward's input
    (what nnlib's ReLU caches) -> ``dx: (...)``; the derivative at x = 0 is 0,
    as in PyTorch. Reference: ``nnlib.functional.relu_backward``."""
    return F.relu_backward(dout, x)


def _tanh_cases(rng):
    return _activation_cases(rng, np.tanh)


@register("tanh_backward", chapter="02-backprop", args=("dout", "y"),
          outputs=("dx",), cases=_tanh_cases, diagnosers=[
              Diagnoser("applied tanh to y again: y is already tanh(x), the "
                        "forward's output, so the derivative is written in y",
                        variant=lambda d, y: d * (1 - np.tanh(y) ** 2)),
              Diagnoser("forgot to multiply by dout (the chain rule)",
                        variant=lambda d, y: 1 - y * y),
              Diagnoser("used 1 - y; the derivative is 1 - y^2",
                        variant=lambda d, y: d * (1 - y)),
              Diagnoser("used the sigmoid's derivative y (1 - y) instead of "
                        "tanh's", variant=lambda d, y: d * y * (1 - y)),
              Diagnoser(SIGN, variant=lambda d, y: d * (y * y - 1)),
          ])
def tanh_backward(dout, y):
    """Exercise ``tanh_backward(dout, y) -> dx``: ``dout: (...)`` and ``y:
    (...)``, the forward's output tanh(x) (what nnlib caches) -> ``dx:
    (...)``, the gradient with respect to x. Reference:
    ``nnlib.functional.tanh_backward``."""
    return F.tanh_backward(dout, y)


def _softmax_bw_cases(rng):
    out = []
    for case in _logit_cases(rng):
        z = case.args[0]
        out.append(Case((rng.standard_normal(z.shape), F.softmax(z)), case.note))
    return out


@register("softmax_backward", chapter="02-backprop", args=("dout", "p"),
          outputs=("dz",), cases=_softmax_bw_cases, diagnosers=[
              Diagnoser("used only the diagonal of the Jacobian, p (1 - p): "
                        "each p_j depends on every score of its row, so the "
                        "off-diagonal terms -p_j p_k count too",
                        variant=lambda d, p: d * p * (1 - p)),
              Diagnoser("summed over the batch (axis 0); the sum runs over the "
                        "classes of each row",
                        variant=lambda d, p: p * (d - (d * p).sum(axis=0,
                                                                  keepdims=True))),
              Diagnoser("the row sums lost their axis: sum with keepdims=True",
                        variant=lambda d, p: p * (d - (d * p).sum(axis=-1))),
              Diagnoser("forgot the outer factor p",
                        variant=lambda d, p: d - (d * p).sum(axis=-1, keepdims=True)),
              Diagnoser(SIGN, variant=lambda d, p: -F.softmax_backward(d, (p, -1))),
          ])
def softmax_backward(dout, p):
    """Exercise ``softmax_backward(dout, p) -> dz``: ``dout: (N, C)``, the
    gradient with respect to the probabilities, and ``p: (N, C)``, the
    forward's output softmax(z) along the last axis -> ``dz: (N, C)``, the
    vector-Jacobian product with the softmax's Jacobian diag(p) - p p^T of
    each row. Reference: ``nnlib.functional.softmax_backward(dout, (p, -1))``."""
    return F.softmax_backward(dout, (p, -1))


# --- chapter 3 -------------------------------------------------------------
def _momentum_cases(rng):
    settings = [((3,), 0.1, 0.9, True, "first step, buf zero"), ((2, 3), 0.05, 0.9, False, ""),
                ((1,), 0.1, 0.5, False, "one weight"), ((4, 1, 2), 0.01, 0.99, False, ""),
                ((5,), 0.3, 0.8, False, "odd sizes"), ((2, 2), 1.0, 0.9, False, "lr 1")]
    out = []
    for shape, lr, mom, first, note in settings:
        w, g = rng.standard_normal(shape), rng.standard_normal(shape)
        buf = np.zeros(shape) if first else rng.standard_normal(shape)
        out.append(Case((w, g, buf, lr, mom), note))
    return out


def _mom_variant(buf_fn, w_fn):
    def variant(w, g, buf, lr, mom):
        new = buf_fn(g, buf, lr, mom)
        return w_fn(w, g, buf, new, lr), new
    return variant


def _plain_buf(g, buf, lr, mom):
    return mom * buf + g


@register("momentum_step", chapter="03-training",
          args=("w", "g", "buf", "lr", "momentum"), outputs=("w", "buf"),
          cases=_momentum_cases, diagnosers=[
              Diagnoser("moved up the gradient: subtract lr * buf from w",
                        outputs=("w",), variant=_mom_variant(
                            _plain_buf, lambda w, g, b, nb, lr: w + lr * nb)),
              Diagnoser("stepped with the gradient g instead of the new "
                        "velocity buf", outputs=("w",), variant=_mom_variant(
                            _plain_buf, lambda w, g, b, nb, lr: w - lr * g)),
              Diagnoser("stepped with the old velocity: update buf first, then "
                        "step w with the new one", outputs=("w",),
                        variant=_mom_variant(
                            _plain_buf, lambda w, g, b, nb, lr: w - lr * b)),
              Diagnoser("mixed (1 - momentum) g into the buffer: nnlib and "
                        "PyTorch add g itself, buf = momentum buf + g",
                        variant=_mom_variant(
                            lambda g, b, lr, m: m * b + (1 - m) * g,
                            lambda w, g, b, nb, lr: w - lr * nb)),
              Diagnoser("put lr inside the buffer (buf = momentum buf + lr g); "
                        "here, as in PyTorch, buf = momentum buf + g and the "
                        "step is lr buf", variant=_mom_variant(
                            lambda g, b, lr, m: m * b + lr * g,
                            lambda w, g, b, nb, lr: w - nb)),
              Diagnoser("used the other convention, v = momentum v - lr g and "
                        "w + v; here, as in PyTorch, buf is momentum buf + g "
                        "and lr multiplies it outside: w - lr buf",
                        variant=_mom_variant(
                            lambda g, b, lr, m: m * b - lr * g,
                            lambda w, g, b, nb, lr: w + nb)),
              Diagnoser("returned the old buffer: return the updated velocity",
                        outputs=("buf",), variant=lambda w, g, b, lr, m: (
                            w - lr * (m * b + g), b)),
          ])
def momentum_step(w, g, buf, lr, momentum):
    """Exercise ``momentum_step(w, g, buf, lr, momentum) -> (w, buf)``: one
    step of SGD with momentum, as ``nnlib.optim.SGD(..., momentum=...)`` and
    PyTorch (no dampening): ``buf <- momentum * buf + g``, then ``w <- w -
    lr * buf``. ``w``, ``g`` (the gradient) and ``buf`` (the velocity, zeros
    before the first step) have the same shape ``(...)``; ``lr`` and
    ``momentum`` are numbers. Return the new ``w`` and ``buf``."""
    p = Parameter(w.copy())
    p.grad[...] = g
    opt = SGD([p], lr=lr, momentum=momentum)
    opt.state[0]["buf"] = buf.copy()
    opt.step()
    return p.data, opt.state[0]["buf"]


def _adam_cases(rng):
    settings = [((3,), 1, 1e-3, (0.9, 0.999), 1e-8, "first step"),
                ((2, 3), 2, 1e-2, (0.9, 0.999), 1e-8, ""),
                ((1,), 10, 0.1, (0.8, 0.99), 1e-8, "one weight"),
                ((4, 1, 2), 3, 1e-3, (0.9, 0.999), 1e-8, ""),
                ((5,), 4, 1e-2, (0.9, 0.99), 0.1, "large eps"),
                ((2, 2), 1000, 1e-3, (0.9, 0.999), 1e-8, "late step")]
    out = []
    for shape, t, lr, (b1, b2), eps, note in settings:
        w, g = rng.standard_normal(shape), rng.standard_normal(shape)
        if t == 1:
            m, v = np.zeros(shape), np.zeros(shape)
        else:
            m = rng.standard_normal(shape) * 0.3
            v = rng.random(shape) * 0.5 + m * m
        if eps >= 0.1:
            g, m, v = g * 0.05, m * 0.05, v * 0.0025
        out.append(Case((w, g, m, v, t, lr, b1, b2, eps), note))
    return out


def _adam_parts(w, g, m, v, t, lr, b1, b2, eps):
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    return m2, v2, m2 / (1 - b1 ** t), v2 / (1 - b2 ** t)


def _adam_variant(w_fn=None, returned=None, t_shift=0):
    def variant(w, g, m, v, t, lr, b1, b2, eps):
        m2, v2, mh, vh = _adam_parts(w, g, m, v, t + t_shift, lr, b1, b2, eps)
        new_w = (w - lr * mh / (np.sqrt(vh) + eps) if w_fn is None
                 else w_fn(w, lr, eps, m2, v2, mh, vh))
        return (new_w, m2, v2) if returned is None else (new_w, *returned(m2, v2, mh, vh))
    return variant


@register("adam_step", chapter="03-training",
          args=("w", "g", "m", "v", "t", "lr", "beta1", "beta2", "eps"),
          outputs=("w", "m", "v"), cases=_adam_cases, diagnosers=[
              Diagnoser("no bias correction: divide m by (1 - beta1^t) and v by "
                        "(1 - beta2^t) before the step", outputs=("w",),
                        variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w - lr * m / (np.sqrt(v) + eps))),
              Diagnoser("bias-corrected only v: m needs its correction too, "
                        "m_hat = m / (1 - beta1^t)", outputs=("w",),
                        variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w - lr * m / (np.sqrt(vh) + eps))),
              Diagnoser("bias-corrected only m: v needs its correction too, "
                        "v_hat = v / (1 - beta2^t)", outputs=("w",),
                        variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w - lr * mh / (np.sqrt(v) + eps))),
              Diagnoser("eps inside the square root: the step divides by "
                        "sqrt(v_hat) + eps", outputs=("w",), variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w - lr * mh / np.sqrt(vh + eps))),
              Diagnoser("divided by v_hat, not by its square root",
                        outputs=("w",), variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w - lr * mh / (vh + eps))),
              Diagnoser("moved up the gradient: subtract the step from w",
                        outputs=("w",), variant=_adam_variant(
                            lambda w, lr, eps, m, v, mh, vh: w + lr * mh / (np.sqrt(vh) + eps))),
              Diagnoser("t is off by one: it is already this step's number (1 on "
                        "the first step), so do not add 1 to it", outputs=("w",),
                        variant=_adam_variant(t_shift=1)),
              Diagnoser("v averages g, not g^2 (the squared gradient, element "
                        "by element)", outputs=("v",),
                        variant=lambda w, g, m, v, t, lr, b1, b2, eps: (
                            w, b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g)),
              Diagnoser("returned the bias-corrected moments: keep m and v "
                        "uncorrected and correct only the step",
                        outputs=("m", "v"), variant=_adam_variant(
                            returned=lambda m2, v2, mh, vh: (mh, vh))),
          ])
def adam_step(w, g, m, v, t, lr, beta1, beta2, eps):
    """Exercise ``adam_step(w, g, m, v, t, lr, beta1, beta2, eps) -> (w, m,
    v)``: one Adam step with bias correction, as ``nnlib.optim.Adam`` and
    PyTorch: ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2)
    g^2``, ``w <- w - lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 -
    beta1^t)`` and ``v_hat = v / (1 - beta2^t)``. ``w``, ``g``, ``m``, ``v``
    have the same shape ``(...)`` (``m``, ``v`` zeros before the first step);
    ``t`` is this step's number, 1 on the first step. Return the new ``w``
    and the new, uncorrected ``m`` and ``v``."""
    p = Parameter(w.copy())
    p.grad[...] = g
    opt = Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    opt.state[0].update(t=t - 1, m=m.copy(), v=v.copy())
    opt.step()
    return p.data, opt.state[0]["m"], opt.state[0]["v"]


def _bn_cases(rng):
    sizes = [((4, 3), 1e-5, ""), ((2, 5), 1e-5, "batch of 2"), ((7, 1), 1e-5, "one feature"),
             ((5, 4), 0.5, "large eps"), ((3, 6), 1e-5, "a constant feature"),
             ((6, 2), 1e-5, "large offset")]
    out = []
    for (n, d), eps, note in sizes:
        x = rng.standard_normal((n, d)) * 2.0 + rng.standard_normal(d)
        if note == "a constant feature":
            x[:, 1] = 3.0
        if note == "large offset":
            x = x + 100.0
        gamma, beta = rng.standard_normal(d) + 1.0, rng.standard_normal(d)
        out.append(Case((x, gamma, beta, eps), note))
    return out


def _bn_variant(mean_axis=0, ddof=0, fn=None):
    def variant(x, gamma, beta, eps):
        mu = x.mean(axis=mean_axis, keepdims=True)
        var = x.var(axis=mean_axis, ddof=ddof, keepdims=True)
        if fn is not None:
            return fn(x, mu, var, gamma, beta, eps)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
    return variant


@register("batchnorm_forward", chapter="03-training",
          args=("x", "gamma", "beta", "eps"), outputs=("y",), cases=_bn_cases,
          diagnosers=[
              Diagnoser("used the unbiased variance (divided by N - 1); batch "
                        "norm normalises with the biased one (divide by N)",
                        variant=_bn_variant(ddof=1)),
              Diagnoser("normalised each example over its features (axis 1, "
                        "that is layer norm); batch norm averages each feature "
                        "over the batch (axis 0)", variant=_bn_variant(mean_axis=1)),
              Diagnoser("eps outside the square root: divide by sqrt(var + eps)",
                        variant=_bn_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / (np.sqrt(var) + eps) + b)),
              Diagnoser("divided by sqrt(var) without eps: a feature that is "
                        "constant over the batch has variance 0",
                        test=lambda a, g, e: _nonfinite(0)(a, g, e)),
              Diagnoser("divided by sqrt(var) without eps: add eps to the "
                        "variance, inside the square root",
                        variant=_bn_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / np.sqrt(var) + b)),
              Diagnoser("forgot the scale gamma and the shift beta",
                        variant=_bn_variant(fn=lambda x, mu, var, g, b, eps: (
                            x - mu) / np.sqrt(var + eps))),
              Diagnoser("swapped gamma and beta: y = gamma xhat + beta",
                        variant=_bn_variant(fn=lambda x, mu, var, g, b, eps: b * (
                            x - mu) / np.sqrt(var + eps) + g)),
              Diagnoser("divided by the variance, not by the standard deviation",
                        variant=_bn_variant(fn=lambda x, mu, var, g, b, eps: g * (
                            x - mu) / (var + eps) + b)),
          ])
def batchnorm_forward(x, gamma, beta, eps):
    """Exercise ``batchnorm_forward(x, gamma, beta, eps) -> y``: batch
    normalisation in training mode, as ``nnlib.BatchNorm1d`` and PyTorch:
    ``x: (N, D)``, ``gamma, beta: (D,)`` -> ``y: (N, D)``, ``y = gamma (x -
    mean) / sqrt(var + eps) + beta`` with each feature's mean and *biased*
    variance over the batch (axis 0). Reference:
    ``nnlib.functional.batch_norm_forward`` (no running statistics)."""
    return F.batch_norm_forward(x, gamma, beta, None, None, True, eps=eps)[0]


# --- section 3b ------------------------------------------------------------
def _ln_bw_cases(rng):
    # (N, D), eps, note
    sizes = [((4, 5), 1e-5, ""), ((1, 6), 1e-5, "batch of 1"),
             ((4, 4), 1e-5, "N = D"), ((3, 7), 1e-5, "odd sizes"),
             ((5, 1), 1e-5, "one feature (D = 1)"), ((3, 4), 0.5, "large eps"),
             ((4, 6), 1e-5, "a constant example"), ((6, 3), 1e-5, "large offset")]
    out = []
    for (n, d), eps, note in sizes:
        x = rng.standard_normal((n, d)) * 2.0 + rng.standard_normal((n, 1))
        if note == "a constant example":
            x[1] = 3.0
        if note == "large offset":
            x = x + 100.0
        gamma, beta = rng.standard_normal(d) + 1.0, rng.standard_normal(d)
        out.append(Case((rng.standard_normal((n, d)), (x, gamma, beta, eps)), note))
    return out


def _ln_bw_variant(axis=1, ddof=0, dx="right", gamma_in=True, dgamma_of="xhat",
                   reduce=np.sum, with_eps=True):
    """Layer norm's backward with a known mistake: the statistics over
    ``axis``, the variance with ``ddof``, ``dx`` "constant" (the statistics
    as constants), "no var", "no mean", "no 1/D", "gamma outside" (gamma
    factored out of the sums, as batch norm allows), gamma left out,
    dgamma from x, the parameters' gradients reduced by ``reduce``, or no
    eps."""
    def variant(dout, cache):
        x, gamma, _, eps = cache
        mean = lambda a: a.mean(axis=axis, keepdims=True)    # noqa: E731
        inv = 1.0 / np.sqrt(x.var(axis=axis, ddof=ddof, keepdims=True)
                            + (eps if with_eps else 0.0))
        xhat = (x - mean(x)) * inv
        g = dout * gamma if gamma_in else dout
        d = x.shape[axis]
        if dx == "constant":
            out = g * inv
        elif dx == "no var":
            out = inv * (g - mean(g))
        elif dx == "no mean":
            out = inv * (g - xhat * mean(g * xhat))
        elif dx == "no 1/D":
            out = inv * (g - d * mean(g) - d * xhat * mean(g * xhat))
        elif dx == "gamma outside":
            out = gamma * inv * (dout - mean(dout) - xhat * mean(dout * xhat))
        else:
            out = inv * (g - mean(g) - xhat * mean(g * xhat))
        dgamma = reduce(dout * (x if dgamma_of == "x" else xhat), axis=0)
        return out, dgamma, reduce(dout, axis=0)
    return variant


@register("layer_norm_backward", chapter="03b-optimisation", args=("dout", "cache"),
          outputs=("dx", "dgamma", "dbeta"), cases=_ln_bw_cases, diagnosers=[
              Diagnoser("the statistics are over the batch (axis 0), as in "
                        "batch norm: layer norm standardises each example over "
                        "its own D features, axis 1, and the sums in dx run "
                        "over that axis", variant=_ln_bw_variant(axis=0)),
              Diagnoser("forgot the paths through the mean and the variance: "
                        "they depend on every feature of the example, so dx "
                        "has two more terms", outputs=("dx",),
                        variant=_ln_bw_variant(dx="constant")),
              Diagnoser("forgot the path through the variance: dx is missing "
                        "the term with xhat", outputs=("dx",),
                        variant=_ln_bw_variant(dx="no var")),
              Diagnoser("forgot the path through the mean: dx is missing the "
                        "term with the sum over the features", outputs=("dx",),
                        variant=_ln_bw_variant(dx="no mean")),
              Diagnoser("dx is missing the 1/D of the two sums over the "
                        "features: the mean and the variance each average the "
                        "D features", outputs=("dx",),
                        variant=_ln_bw_variant(dx="no 1/D")),
              Diagnoser("took gamma out of the sums over the features: in "
                        "batch norm gamma is the same along the summed axis, "
                        "here it varies along it, so the sums are of dout "
                        "gamma", outputs=("dx",),
                        variant=_ln_bw_variant(dx="gamma outside")),
              Diagnoser("dx is missing the factor gamma: the output is gamma "
                        "xhat + beta, so dL/dxhat = dout gamma", outputs=("dx",),
                        variant=_ln_bw_variant(gamma_in=False)),
              Diagnoser("used the unbiased variance (divided by D - 1); layer "
                        "norm normalises with the biased one (divide by D)",
                        variant=_ln_bw_variant(ddof=1)),
              Diagnoser("dgamma and dbeta are averaged over the batch: sum "
                        "over it (a mean loss's 1/N is already in dout)",
                        outputs=("dgamma", "dbeta"),
                        variant=_ln_bw_variant(reduce=np.mean)),
              Diagnoser("dgamma used x, not xhat: gamma multiplies the "
                        "standardised xhat", outputs=("dgamma",),
                        variant=_ln_bw_variant(dgamma_of="x")),
              Diagnoser("divided by sqrt(var) without eps: an example whose "
                        "features are all equal has variance 0",
                        test=_nonfinite(0)),
              Diagnoser("divided by sqrt(var) without eps: add eps to the "
                        "variance, inside the square root, as the forward does",
                        variant=_ln_bw_variant(with_eps=False)),
          ])
def layer_norm_backward(dout, cache):
    """Exercise ``layer_norm_backward(dout, cache) -> (dx, dgamma, dbeta)``:
    the backward of layer normalisation, as ``nnlib.LayerNorm(D)`` and
    ``torch.nn.functional.layer_norm(x, (D,), gamma, beta, eps)``. ``cache
    = (x, gamma, beta, eps)``, the forward's arguments, with ``x: (N, D)``
    and ``gamma, beta: (D,)``; ``y = gamma (x - mean) / sqrt(var + eps) +
    beta`` with each example's own mean and *biased* variance over its D
    features (axis 1); ``dout: (N, D)``, dL/dy -> ``dx: (N, D)``,
    ``dgamma: (D,)``, ``dbeta: (D,)``, the last two summed over the batch.
    Reference: ``nnlib.functional.layer_norm_backward`` after
    ``layer_norm_forward(x, 1, gamma, beta, eps)``."""
    x, gamma, beta, eps = cache
    _, fcache = F.layer_norm_forward(x, 1, gamma, beta, eps)
    return F.layer_norm_backward(dout, fcache)


def _sched_cases(rng):
    # (step, base_lr, warmup_steps, total_steps, min_lr, start_factor), note
    base = [(2, 0.1, 5, 30, 0.0, 0.1, "in the warm-up"),
            (0, 0.1, 5, 30, 0.0, 0.1, "step 0"),
            (4, 0.1, 5, 30, 0.0, 0.1, "the warm-up's last step"),
            (5, 0.1, 5, 30, 0.0, 0.1, "the first cosine step"),
            (17, 0.1, 5, 30, 0.0, 0.1, ""),
            (30, 0.1, 5, 30, 0.0, 0.1, "the last step"),
            (13, 0.5, 4, 20, 0.01, 0.01, "min_lr > 0"),
            (20, 0.5, 4, 20, 0.01, 0.01, "the last step with min_lr > 0"),
            (3, 1.0, 1, 7, 0.05, 0.5, "warm-up of one step")]
    out = [Case(c[:6], c[6]) for c in base]
    for _ in range(3):
        w = int(rng.integers(2, 40))
        t = w + int(rng.integers(3, 200))
        step = int(rng.integers(0, t + 1))
        lr = float(np.round(10 ** rng.uniform(-3, 0), 4))
        out.append(Case((step, lr, w, t, float(np.round(lr * rng.uniform(0, 0.2), 5)),
                         float(np.round(rng.uniform(0.01, 0.5), 3)))))
    return out


def _sched_variant(warm=None, cos=None, after=lambda s, w: s >= w):
    """The schedule with a known mistake: ``warm(s, w, f)``, the warm-up's
    factor, ``cos(s, w, t, lr, m)``, the cosine phase's rate, ``after`` when
    the cosine phase starts."""
    def variant(step, base_lr, warmup_steps, total_steps, min_lr, start_factor):
        s, w, t, f = step, warmup_steps, total_steps, start_factor
        if after(s, w):
            if cos is not None:
                return cos(s, w, t, base_lr, min_lr)
            half = (1 + np.cos(np.pi * (s - w) / (t - w))) / 2
            return min_lr + (base_lr - min_lr) * half
        return base_lr * (f + (1 - f) * s / w if warm is None else warm(s, w, f))
    return variant


def _in_warmup(variant):
    """The variant, applied to the warm-up's steps only (elsewhere a mistake
    in the warm-up leaves the rate right)."""
    def during(step, base_lr, warmup_steps, *rest):
        if step >= warmup_steps:
            raise ValueError("not in the warm-up")
        return variant(step, base_lr, warmup_steps, *rest)
    return during


def _cosine(phase, amplitude=lambda lr, m: lr - m, floor=lambda m: m):
    return lambda s, w, t, lr, m: floor(m) + amplitude(lr, m) * (
        1 + np.cos(np.pi * phase(s, w, t))) / 2


@register("warmup_cosine_lr", chapter="03b-optimisation",
          args=("step", "base_lr", "warmup_steps", "total_steps", "min_lr",
                "start_factor"),
          outputs=("lr",), scalar_outputs=("lr",), cases=_sched_cases, diagnosers=[
              Diagnoser("the warm-up is one step ahead: at step 0 the rate is "
                        "start_factor base_lr, and it reaches base_lr at step "
                        "warmup_steps, not warmup_steps - 1",
                        variant=_sched_variant(warm=lambda s, w, f: f + (1 - f) * (
                            s + 1) / w)),
              Diagnoser("the warm-up starts from 0: it starts from start_factor "
                        "base_lr and rises linearly to base_lr",
                        variant=_sched_variant(warm=lambda s, w, f: s / w)),
              Diagnoser("the warm-up starts from 0: it starts from start_factor "
                        "base_lr and rises linearly to base_lr",
                        variant=_sched_variant(warm=lambda s, w, f: (s + 1) / w)),
              Diagnoser("the warm-up stays flat at start_factor base_lr: step "
                        "// warmup_steps is 0 for every warm-up step (integer "
                        "division); divide with /",
                        variant=_sched_variant(warm=lambda s, w, f: f + (1 - f) * (
                            s // w))),
              *[Diagnoser("no warm-up: the first warmup_steps steps rise "
                          "linearly from start_factor base_lr to base_lr",
                          variant=_in_warmup(_sched_variant(
                              after=lambda s, w: True, cos=c)))
                for c in (None, _cosine(lambda s, w, t: s / t),
                          _cosine(lambda s, w, t: s / (t - w)))],
              *[Diagnoser("the cosine runs over total_steps; it runs over the "
                          "steps after the warm-up, total_steps - "
                          "warmup_steps, from base_lr at the warm-up's end to "
                          "min_lr at the last step", variant=_sched_variant(cos=c))
                for c in (_cosine(lambda s, w, t: s / t),
                          _cosine(lambda s, w, t: (s - w) / t),
                          _cosine(lambda s, w, t: s / (t - w)))],
              Diagnoser("min_lr is ignored: the cosine falls from base_lr to "
                        "min_lr, not to 0", variant=_sched_variant(
                            cos=_cosine(lambda s, w, t: (s - w) / (t - w),
                                        amplitude=lambda lr, m: lr,
                                        floor=lambda m: 0.0))),
              Diagnoser("min_lr is added on top: the cosine part's height is "
                        "base_lr - min_lr, so that the rate starts at base_lr "
                        "and ends at min_lr", variant=_sched_variant(
                            cos=_cosine(lambda s, w, t: (s - w) / (t - w),
                                        amplitude=lambda lr, m: lr))),
              Diagnoser("the cosine is missing its 1/2: (1 + cos) runs from 2 "
                        "to 0, so halve it", variant=_sched_variant(
                            cos=lambda s, w, t, lr, m: m + (lr - m) * (
                                1 + np.cos(np.pi * (s - w) / (t - w))))),
              Diagnoser("the cosine starts one step late: at step "
                        "warmup_steps it is at its own step 0, where the "
                        "rate is base_lr", variant=_sched_variant(
                            cos=_cosine(lambda s, w, t: (s - w - 1) / (t - w)))),
              Diagnoser("the cosine starts one step early: at step "
                        "warmup_steps it is at its own step 0, where the "
                        "rate is base_lr", variant=_sched_variant(
                            cos=_cosine(lambda s, w, t: (s - w + 1) / (t - w)))),
          ])
def warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr, start_factor):
    """Exercise ``warmup_cosine_lr(step, base_lr, warmup_steps, total_steps,
    min_lr, start_factor) -> lr``: the learning rate of step ``step`` (0 to
    ``total_steps``, integers; ``1 <= warmup_steps < total_steps``) under the
    chapter's schedule, ``SequentialLR`` of a ``LinearLR(start_factor=
    start_factor, total_iters=warmup_steps)`` and a ``CosineAnnealingLR(
    T_max=total_steps - warmup_steps, eta_min=min_lr)`` with the milestone
    ``warmup_steps``, as in nnlib and ``torch.optim.lr_scheduler``: a linear
    rise from ``start_factor * base_lr`` at step 0 to ``base_lr`` at step
    ``warmup_steps``, then a half cosine down to ``min_lr`` at step
    ``total_steps``. Reference: ``nnlib.SequentialLR``'s closed form,
    ``lr_at(step)``."""
    opt = SGD([Parameter(np.zeros(1))], lr=base_lr)
    warm = LinearLR(opt, start_factor=start_factor, total_iters=warmup_steps)
    cos = CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min=min_lr)
    return SequentialLR(opt, [warm, cos], milestones=[warmup_steps]).lr_at(step)
