"""Inverted dropout, as ``torch.nn.Dropout``."""
from __future__ import annotations

import numpy as np

from ..functional import dropout_backward, dropout_forward
from ..module import Module
from ..random import get_rng
from ._twins import register_twin

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the
    survivors by ``1 / (1 - p)``, so the expected output equals the input; in
    evaluation mode (``model.eval()``), the identity.

    ``x: (...) -> (...)``. Backward multiplies by the same mask and scale.
    The mask is drawn in ``forward`` from ``rng`` (or nnlib's shared generator).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        if not (isinstance(p, (int, float)) and 0 <= p < 1):
            raise ValueError(f"Dropout: expected a probability p in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = rng

    def forward(self, x):
        x = self._input(x)
        active = self.training and self.p != 0
        y, scale = dropout_forward(x, self.p, get_rng(self.rng) if active else None,
                                   training=active)
        self.cache = scale, x.shape
        return y

    def backward(self, grad_out):
        scale, shape = self._cached()
        return dropout_backward(self._grad_out(grad_out, shape), scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


register_twin(Dropout, lambda m, nn: nn.Dropout(m.p))
