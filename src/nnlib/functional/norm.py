"""Batch and layer normalisation as pure functions.

Both standardise over some axes and then scale and shift:
``xhat = (x - mean) / sqrt(var + eps)``, ``y = gamma xhat + beta``, with the
*biased* variance (divide by m, the number of values averaged). They differ in
the axes: batch norm averages each channel over the batch (and the pixels),
layer norm averages each example over its features.

Backward, with m values per statistic and ``g = dL/dxhat = dL/dy * gamma``
(derived in the training chapter): since the mean and the variance depend on
every x in their group,

    dx = (1 / sqrt(var + eps)) * (g - mean(g) - xhat * mean(g * xhat))

where the means run over the same axes as the statistics. In evaluation mode
batch norm uses fixed running statistics, so it is an affine map and
``dx = g / sqrt(running_var + eps)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["batch_norm_forward", "batch_norm_backward", "layer_norm_forward",
           "layer_norm_backward"]


def _standardize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mean) * inv_std, mean, var, inv_std


def _standardize_backward(g, xhat, inv_std, axes):
    return inv_std * (g - g.mean(axis=axes, keepdims=True)
                      - xhat * (g * xhat).mean(axis=axes, keepdims=True))


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training: bool,
                       momentum: float = 0.1, eps: float = 1e-5):
    """``x: (N, C)`` or ``(N, C, L)`` or ``(N, C, H, W)``; ``gamma, beta,
    running_mean, running_var: (C,)`` (gamma/beta may be None: no affine) ->
    ``y`` of ``x``'s shape.

    Training: statistics of this batch per channel (over every axis but 1);
    ``running_mean`` and ``running_var`` are updated **in place** as torch does,
    ``r <- (1 - momentum) r + momentum * stat``, with the *unbiased* batch
    variance (m / (m - 1) times the biased one) for ``running_var``.
    Evaluation: the running statistics, unchanged."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        xhat, mean, var, inv_std = _standardize(x, axes, eps)
        m = x.size // x.shape[1]
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean.reshape(-1)
            running_var *= 1.0 - momentum
            running_var += momentum * var.reshape(-1) * (m / max(m - 1, 1))
    else:
        inv_std = 1.0 / np.sqrt(running_var.reshape(shape) + eps)
        xhat = (x - running_mean.reshape(shape)) * inv_std
    y = xhat if gamma is None else xhat * gamma.reshape(shape) + beta.reshape(shape)
    return y, (xhat, inv_std, gamma, axes, shape, training)


def batch_norm_backward(dy, cache):
    """``dy`` of ``x``'s shape -> ``(dx, dgamma, dbeta)`` (the last two None
    without affine parameters)."""
    xhat, inv_std, gamma, axes, shape, training = cache
    g = dy if gamma is None else dy * gamma.reshape(shape)
    dx = _standardize_backward(g, xhat, inv_std, axes) if training else g * inv_std
    if gamma is None:
        return dx, None, None
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def layer_norm_forward(x, normalized_ndim: int, gamma=None, beta=None, eps: float = 1e-5):
    """Standardise each example over its last ``normalized_ndim`` axes, then
    ``gamma * xhat + beta`` (gamma, beta of those axes' shape, or None).
    ``x: (..., *normalized_shape) -> y`` of the same shape."""
    axes = tuple(range(x.ndim - normalized_ndim, x.ndim))
    xhat, _, _, inv_std = _standardize(x, axes, eps)
    y = xhat if gamma is None else xhat * gamma + beta
    return y, (xhat, inv_std, gamma, axes)


def layer_norm_backward(dy, cache):
    """``dy`` of ``x``'s shape -> ``(dx, dgamma, dbeta)``; dgamma and dbeta sum
    over the leading (batch, time) axes."""
    xhat, inv_std, gamma, axes = cache
    g = dy if gamma is None else dy * gamma
    dx = _standardize_backward(g, xhat, inv_std, axes)
    if gamma is None:
        return dx, None, None
    lead = tuple(range(dy.ndim - len(axes)))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
