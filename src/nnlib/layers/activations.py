"""Element-wise activations. Each backward multiplies by the local derivative."""
from __future__ import annotations

import numpy as np

from ..module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "LeakyReLU", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow and with full relative precision in both
    tails: with ``e = exp(-|x|) <= 1``, it is 1 / (1 + e) for x >= 0 and e / (1 + e)
    for x < 0. (The shortcut (1 + tanh(x/2)) / 2 rounds sigma(-50) ~ 2e-22 to 0.)

    ``x: (...) -> (...)``, element-wise."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


class _Elementwise(Module):
    """Shared plumbing: keep what the derivative needs, check grad_out's shape."""

    def forward(self, x):
        x = self._input(x)
        y = self._f(x)
        self.cache = (x, y)
        return y

    def backward(self, grad_out):
        x, y = self._cached()
        g = self._grad_out(grad_out, x.shape)
        return g * self._df(x, y)


class ReLU(_Elementwise):
    """max(0, x); derivative 1 where x > 0 and 0 elsewhere (0 at x = 0, as PyTorch).

    ``x: (...) -> (...)``, element-wise, any shape."""

    def _f(self, x):
        return np.maximum(x, 0.0)

    def _df(self, x, y):
        return (x > 0).astype(x.dtype)


class LeakyReLU(_Elementwise):
    """x for x > 0, ``negative_slope * x`` otherwise.

    ``x: (...) -> (...)``, element-wise, any shape."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _f(self, x):
        return np.where(x > 0, x, self.negative_slope * x)

    def _df(self, x, y):
        return np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    """sigma(x) = 1 / (1 + e^-x); derivative sigma(x) (1 - sigma(x)).

    ``x: (...) -> (...)``, element-wise, any shape."""

    def _f(self, x):
        return sigmoid(x)

    def _df(self, x, y):
        return y * (1.0 - y)


class Tanh(_Elementwise):
    """tanh(x); derivative 1 - tanh(x)^2.

    ``x: (...) -> (...)``, element-wise, any shape."""

    def _f(self, x):
        return np.tanh(x)

    def _df(self, x, y):
        return 1.0 - y * y
