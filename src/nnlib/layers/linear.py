"""Fully connected (affine) layer: y = x W^T + b, PyTorch layout."""
from __future__ import annotations

import math

import numpy as np

from .. import init
from ..module import Module, Parameter

__all__ = ["Linear"]


class Linear(Module):
    """``x: (..., in_features) -> y: (..., out_features)``, ``y = x @ W.T + b``.

    ``weight`` has shape ``(out_features, in_features)`` and ``bias`` shape
    ``(out_features,)``, as ``torch.nn.Linear``. The default initialisation is
    PyTorch's too: both drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Backward, with ``g = dL/dy`` and the leading dimensions flattened into rows:
    ``dL/dW = g^T x``, ``dL/db = sum_rows g``, ``dL/dx = g W``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float64):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Linear: expected {name} to be a positive integer, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform((out_features, in_features), -bound, bound,
                                             rng=rng, dtype=dtype))
        self.bias = Parameter(init.uniform((out_features,), -bound, bound, rng=rng,
                                           dtype=dtype)) if bias else None

    def forward(self, x):
        x = self._input(x, min_ndim=2)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear.forward: expected x of shape (..., "
                             f"{self.in_features}) for in_features={self.in_features}, "
                             f"got {x.shape}")
        self.cache = x
        y = x @ self.weight.data.T
        if self.bias is not None:
            y = y + self.bias.data
        return y

    def backward(self, grad_out):
        x = self._cached()
        g = self._grad_out(grad_out, x.shape[:-1] + (self.out_features,))
        g2 = g.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        self.weight.grad += g2.T @ x2
        if self.bias is not None:
            self.bias.grad += g2.sum(axis=0)
        return g @ self.weight.data

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
