"""Residual connections (He et al., 2016): y = x + block(x).

The identity path is why very deep networks train: backward adds the block's
input gradient to the upstream gradient itself, dL/dx = g + J_block^T g, so
the gradient reaches early layers even when the block's Jacobian is small.
"""
from __future__ import annotations

from ..module import Module
from ._twins import build_twin, register_twin

__all__ = ["Residual"]


class Residual(Module):
    """``y = x + block(x)`` (optionally ``shortcut(x) + block(x)`` when the
    shapes differ, e.g. a 1x1 ``Conv2d`` that changes the channels).

    ``x: (N, ...) -> (N, ...)``, the block's output shape, which must equal the
    shortcut's. Parameters are named ``block.*`` (and ``shortcut.*``)."""

    def __init__(self, block: Module, shortcut: Module | None = None):
        super().__init__()
        for name, m in (("block", block), ("shortcut", shortcut)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"Residual: expected {name} to be a Module, got "
                                f"{type(m).__name__}")
        self.block = block
        if shortcut is not None:
            self.shortcut = shortcut
        self.has_shortcut = shortcut is not None

    def forward(self, x):
        x = self._input(x)
        y = self.block.forward(x)
        skip = self.shortcut.forward(x) if self.has_shortcut else x
        if skip.shape != y.shape:
            raise ValueError(f"Residual.forward: the block returned shape {y.shape} but the "
                             f"shortcut {skip.shape}; they must match to be added (give a "
                             "shortcut that maps the input to the block's output shape)")
        tokens = (self.block._cache_token(),
                  self.shortcut._cache_token() if self.has_shortcut else None)
        self.cache = (y.shape, tokens)
        return skip + y

    def backward(self, grad_out):
        shape, (t_block, t_short) = self._cached()
        g = self._grad_out(grad_out, shape)
        if self.has_shortcut and t_short is not None:
            self.shortcut._expect_token(t_short, "Residual.backward")
            d_short = self.shortcut.backward(g)
        else:
            d_short = g
        if t_block is not None:
            self.block._expect_token(t_block, "Residual.backward")
        return self.block.backward(g) + d_short


def _residual_twin(m, nn):
    class ResidualTwin(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = build_twin(m.block, nn)
            if m.has_shortcut:
                self.shortcut = build_twin(m.shortcut, nn)

        def forward(self, x):
            return (self.shortcut(x) if m.has_shortcut else x) + self.block(x)
    return ResidualTwin()


register_twin(Residual, _residual_twin)
