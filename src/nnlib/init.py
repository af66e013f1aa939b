"""Weight initialisers with PyTorch's conventions (fans, gains, bounds).

Each returns a new array; pass ``rng`` for a private generator, otherwise the
shared one from ``nnlib.manual_seed`` is used. Fans follow ``torch.nn.init``:
for a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)``.
"""
from __future__ import annotations

import math

import numpy as np

from .random import get_rng

__all__ = ["uniform", "fill_uniform", "normal", "fans", "calculate_gain", "xavier_uniform",
           "xavier_normal", "kaiming_uniform", "kaiming_normal"]

_GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}


def _shape(shape) -> tuple:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ValueError(f"init: expected a shape of positive integers, got {shape}")
    return tuple(int(s) for s in shape)


def uniform(shape, low: float, high: float, rng=None, dtype=np.float64) -> np.ndarray:
    """An array of ``shape`` drawn from U(low, high)."""
    return get_rng(rng).uniform(low, high, size=_shape(shape)).astype(dtype)


def fill_uniform(params, bound: float, rng=None) -> None:
    """Fill each Parameter in ``params`` (None entries skipped), in order, in
    place with U(-bound, bound) in its own dtype: PyTorch's default for Linear,
    Conv2d and the recurrent layers, ``bound = 1/sqrt(fan_in)``."""
    for p in params:
        if p is not None:
            p.data[...] = uniform(p.shape, -bound, bound, rng=rng, dtype=p.data.dtype)


def normal(shape, std: float, rng=None, dtype=np.float64) -> np.ndarray:
    """An array of ``shape`` drawn from N(0, std^2)."""
    return (std * get_rng(rng).standard_normal(_shape(shape))).astype(dtype)


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped ``(out, in, *kernel)``."""
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"init.fans: expected a weight with at least 2 dimensions "
                         f"(out, in, ...), got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain torch.nn.init uses: 1 for linear/sigmoid, 5/3 for tanh, sqrt(2) for
    relu, sqrt(2 / (1 + slope^2)) for leaky_relu."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: expected one of {sorted(_GAINS) + ['leaky_relu']}, "
                         f"got {nonlinearity!r}")
    return _GAINS[nonlinearity]


def xavier_uniform(shape, gain: float = 1.0, rng=None, dtype=np.float64) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
    Returns an array of ``shape``, e.g. ``(out, in)`` or ``(C_out, C_in, kh, kw)``
    (fans as in ``fans``)."""
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, rng, dtype)


def xavier_normal(shape, gain: float = 1.0, rng=None, dtype=np.float64) -> np.ndarray:
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).
    Returns an array of ``shape``, e.g. ``(out, in)`` or ``(C_out, C_in, kh, kw)``."""
    fan_in, fan_out = fans(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def _kaiming_std(shape, a, mode, nonlinearity):
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: expected mode 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(shape, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", rng=None, dtype=np.float64) -> np.ndarray:
    """He et al. (2015): U(-b, b), b = sqrt(3) * gain / sqrt(fan).
    Returns an array of ``shape``, e.g. ``(out, in)`` or ``(C_out, C_in, kh, kw)``."""
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, -bound, bound, rng, dtype)


def kaiming_normal(shape, a: float = 0.0, mode: str = "fan_in",
                   nonlinearity: str = "leaky_relu", rng=None, dtype=np.float64) -> np.ndarray:
    """He et al. (2015): N(0, std^2), std = gain / sqrt(fan).
    Returns an array of ``shape``, e.g. ``(out, in)`` or ``(C_out, C_in, kh, kw)``."""
    return normal(shape, _kaiming_std(shape, a, mode, nonlinearity), rng, dtype)
