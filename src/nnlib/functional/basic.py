"""Affine maps, element-wise activations, softmax, dropout and embeddings as
pure functions: ``out, cache = f_forward(...)`` and ``grads = f_backward(dout, cache)``.

Nothing here keeps state or checks its inputs: the layers in ``nnlib.layers``
validate, own the parameters and keep the caches. Each backward returns the
gradient with respect to every array input of its forward, in order.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["linear_forward", "linear_backward", "sigmoid", "relu_forward", "relu_backward",
           "leaky_relu_forward", "leaky_relu_backward", "sigmoid_forward",
           "sigmoid_backward", "tanh_forward", "tanh_backward", "gelu_forward",
           "gelu_backward", "softmax", "log_softmax", "softmax_forward", "softmax_backward",
           "log_softmax_forward", "log_softmax_backward", "dropout_forward",
           "dropout_backward", "embedding_forward", "embedding_backward"]


# --- affine ---------------------------------------------------------------
def linear_forward(x, W, b=None):
    """y = x W^T + b.  ``x: (..., D_in)``, ``W: (D_out, D_in)``, ``b: (D_out,)``
    or None -> ``y: (..., D_out)``; the cache is ``(x, W, has_bias)``."""
    y = x @ W.T
    if b is not None:
        y = y + b
    return y, (x, W, b is not None)


def linear_backward(dout, cache):
    """``dout: (..., D_out)`` -> ``(dx, dW, db)``, with the leading dimensions
    flattened into rows r: dW = sum_r dout_r^T x_r, db = sum_r dout_r,
    dx = dout W. ``db`` is None when the forward had no bias."""
    x, W, has_bias = cache
    d_out, d_in = W.shape
    g2 = dout.reshape(-1, d_out)
    dW = g2.T @ x.reshape(-1, d_in)
    db = g2.sum(axis=0) if has_bias else None
    return dout @ W, dW, db


# --- activations ----------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow and with full relative precision in both
    tails: with ``e = exp(-|x|) <= 1``, it is 1 / (1 + e) for x >= 0 and e / (1 + e)
    for x < 0. (The shortcut (1 + tanh(x/2)) / 2 rounds sigma(-50) ~ 2e-22 to 0.)

    ``x: (...) -> (...)``, element-wise."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def relu_forward(x):
    """max(0, x). ``x: (...) -> (...)``; cache ``x``."""
    return np.maximum(x, 0.0), x


def relu_backward(dout, cache):
    """dout * [x > 0] (0 at x = 0, as PyTorch). ``dout: (...) -> dx: (...)``."""
    return dout * (cache > 0).astype(cache.dtype)


def leaky_relu_forward(x, negative_slope: float = 0.01):
    """x for x > 0, ``negative_slope * x`` otherwise. ``x: (...) -> (...)``."""
    return np.where(x > 0, x, negative_slope * x), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    """dout * (1 if x > 0 else negative_slope). ``dout: (...) -> dx: (...)``."""
    x, slope = cache
    return dout * np.where(x > 0, 1.0, slope).astype(x.dtype)


def sigmoid_forward(x):
    """sigma(x). ``x: (...) -> (...)``; cache the output y."""
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dout, cache):
    """dout * y (1 - y). ``dout: (...) -> dx: (...)``."""
    return dout * (cache * (1.0 - cache))


def tanh_forward(x):
    """tanh(x). ``x: (...) -> (...)``; cache the output y."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dout, cache):
    """dout * (1 - y^2). ``dout: (...) -> dx: (...)``."""
    return dout * (1.0 - cache * cache)


def _erf(x):
    from scipy.special import erf
    return erf(x)


def gelu_forward(x, approximate: str = "none"):
    """GELU(x) = x Phi(x), Phi the standard normal CDF: ``0.5 x (1 + erf(x/sqrt 2))``
    (``approximate="none"``, torch's default) or the tanh approximation
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``"tanh"``).
    ``x: (...) -> (...)``."""
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        t = np.tanh(k * (x + 0.044715 * x ** 3))
        return 0.5 * x * (1.0 + t), (x, approximate, t)
    phi_cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    return x * phi_cdf, (x, approximate, phi_cdf)


def gelu_backward(dout, cache):
    """d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the normal density (or the
    derivative of the tanh form). ``dout: (...) -> dx: (...)``."""
    x, approximate, aux = cache
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        d = 0.5 * (1.0 + aux) + 0.5 * x * (1.0 - aux ** 2) * k * (1.0 + 3 * 0.044715 * x ** 2)
        return dout * d
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return dout * (aux + x * pdf)


# --- softmax --------------------------------------------------------------
def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """z - logsumexp(z), with the maximum subtracted first so exp never overflows.
    ``z: (...) -> (...)``, same shape, normalised along ``axis``."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(log_softmax(z)): probabilities that sum to 1 along ``axis``.
    ``z: (...) -> (...)``, same shape."""
    return np.exp(log_softmax(z, axis))


def softmax_forward(z, axis: int = -1):
    """p = softmax(z) along ``axis``. ``z: (...) -> p: (...)``; cache ``(p, axis)``."""
    p = softmax(z, axis)
    return p, (p, axis)


def softmax_backward(dout, cache):
    """The softmax's Jacobian is diag(p) - p p^T, so the vector-Jacobian product
    is dz = p * (dout - sum(dout * p)) along ``axis``. ``dout: (...) -> dz: (...)``."""
    p, axis = cache
    return p * (dout - (dout * p).sum(axis=axis, keepdims=True))


def log_softmax_forward(z, axis: int = -1):
    """s = log_softmax(z) along ``axis``. ``z: (...) -> s: (...)``."""
    s = log_softmax(z, axis)
    return s, (s, axis)


def log_softmax_backward(dout, cache):
    """ds_i/dz_j = [i = j] - p_j, so dz = dout - p * sum(dout) along ``axis``.
    ``dout: (...) -> dz: (...)``."""
    s, axis = cache
    return dout - np.exp(s) * dout.sum(axis=axis, keepdims=True)


# --- dropout and embeddings -----------------------------------------------
def dropout_forward(x, p: float, rng, training: bool = True):
    """Inverted dropout: zero each element with probability ``p`` and scale the
    rest by 1 / (1 - p); the identity when not training or p = 0.
    ``x: (...) -> (...)``; cache the scale array (0 or 1/(1-p) per element)."""
    if not training or p == 0:
        return x, np.ones((), dtype=x.dtype)
    keep = rng.random(x.shape) >= p
    scale = (keep / (1.0 - p)).astype(x.dtype)
    return x * scale, scale


def dropout_backward(dout, cache):
    """dout times the same scale. ``dout: (...) -> dx: (...)``."""
    return dout * cache


def embedding_forward(idx, W):
    """Row lookup: ``idx: (...)`` integers, ``W: (V, E)`` -> ``(..., E)``."""
    return W[idx], (idx, W.shape)


def embedding_backward(dout, cache):
    """dW: each upstream row added into the row it came from (``np.add.at``,
    since an id can repeat). ``dout: (..., E)`` -> ``dW: (V, E)``; there is no
    gradient with respect to integer ids."""
    idx, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, idx.reshape(-1), dout.reshape(-1, shape[1]))
    return dW
