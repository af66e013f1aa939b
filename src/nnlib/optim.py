"""Optimizers with the update rules of ``torch.optim`` (checked step by step).

SGD, for gradient g of parameter p (PyTorch's formulation):
    g <- g + weight_decay * p
    b <- g on the first step, else momentum * b + (1 - dampening) * g
    g <- g + momentum * b if nesterov else b          (when momentum > 0)
    p <- p - lr * g

Adam (Kingma & Ba, 2015), step t = 1, 2, ...:
    g <- g + weight_decay * p
    m <- beta1 m + (1 - beta1) g,    v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
"""
from __future__ import annotations

import math

import numpy as np

from .module import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm"]


def _as_params(params, where):
    params = list(params)
    if not params:
        raise ValueError(f"{where}: expected a non-empty list of Parameters "
                         "(model.parameters()), got an empty one")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: expected Parameter objects, got "
                            f"{type(p).__name__} at position {i}")
    return params


def _check_hyper(where, **values):
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{where}: expected {name} to be a finite number >= 0, got {v!r}")


class Optimizer:
    """Base of ``SGD`` and ``Adam``: holds the parameters (each with ``.data`` and
    ``.grad`` of the same shape) and one state dict per parameter."""

    def __init__(self, params):
        self.params = _as_params(params, type(self).__name__)
        self.state = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0.0

    def step(self) -> None:
        where = f"{type(self).__name__}.step"
        for i, p in enumerate(self.params):
            if not np.all(np.isfinite(p.grad)):
                raise FloatingPointError(f"{where}: expected finite gradients, got "
                                         f"NaN or infinity in parameter {i} "
                                         f"(shape {p.shape}); lower the learning rate "
                                         "or clip the gradients")
        for p, state in zip(self.params, self.state):
            self._update(p, state)

    def _update(self, p: Parameter, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params)
        _check_hyper("SGD", lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p, state):
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "buf" not in state:
                state["buf"] = g.copy()
            else:
                state["buf"] = self.momentum * state["buf"] + (1 - self.dampening) * g
            g = g + self.momentum * state["buf"] if self.nesterov else state["buf"]
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction; L2 weight decay added to the gradient (not AdamW)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params)
        _check_hyper("Adam", lr=lr, eps=eps, weight_decay=weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: expected betas in [0, 1), got {betas}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, (b1, b2), eps, weight_decay

    def _update(self, p, state):
        b1, b2 = self.betas
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if not state:
            state.update(t=0, m=np.zeros_like(p.data), v=np.zeros_like(p.data))
        state["t"] += 1
        t = state["t"]
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1 ** t)
        v_hat = state["v"] / (1 - b2 ** t)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``.

    Returns the norm before clipping, like ``torch.nn.utils.clip_grad_norm_``
    (which scales by ``max_norm / (norm + 1e-6)`` when that is below 1).
    """
    params = _as_params(params, "clip_grad_norm")
    _check_hyper("clip_grad_norm", max_norm=max_norm)
    total = math.sqrt(sum(float(np.sum(p.grad * p.grad)) for p in params))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            p.grad *= coef
    return total
