"""Fully connected (affine) layer: y = x W^T + b, PyTorch layout."""
from __future__ import annotations

import math

import numpy as np

from .. import init
from ..functional import linear_backward, linear_forward
from ..module import Module, Parameter
from ._twins import register_twin
from .._checks import positive_int as _positive_int

__all__ = ["Linear"]


class Linear(Module):
    """``x: (N, ..., in_features) -> y: (N, ..., out_features)``, ``y = x @ W.T + b``
    (at least 2 dimensions: a single example is a batch of one, ``x[None]``).

    ``weight`` has shape ``(out_features, in_features)`` and ``bias`` shape
    ``(out_features,)``, as ``torch.nn.Linear``. The default initialisation is
    PyTorch's too: both drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Backward (``nnlib.functional.linear_backward``), with ``g = dL/dy`` and the
    leading dimensions flattened into rows:
    ``dL/dW = g^T x``, ``dL/db = sum_rows g``, ``dL/dx = g W``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float64):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "Linear":
        """U(-1/sqrt(in_features), 1/sqrt(in_features)) for weight and bias."""
        init.fill_uniform((self.weight, self.bias), 1.0 / math.sqrt(self.in_features), rng)
        return self

    def forward(self, x):
        x = self._input(x, min_ndim=2)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear.forward: expected x of shape (..., "
                             f"{self.in_features}) for in_features={self.in_features}, "
                             f"got {x.shape}")
        y, cache = linear_forward(x, self.weight.data,
                                  None if self.bias is None else self.bias.data)
        self.cache = cache
        return y

    def backward(self, grad_out):
        cache = self._cached()
        x = cache[0]
        g = self._grad_out(grad_out, x.shape[:-1] + (self.out_features,))
        dx, dw, db = linear_backward(g, cache)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


register_twin(Linear, lambda m, nn: nn.Linear(m.in_features, m.out_features,
                                              bias=m.bias is not None))
