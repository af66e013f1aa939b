"""Losses: ``forward(pred, target) -> float`` and ``backward() -> dL/dpred``.

They mirror ``torch.nn.MSELoss``, ``torch.nn.CrossEntropyLoss`` (class-index
targets) and ``torch.nn.BCEWithLogitsLoss``, with ``reduction`` 'mean' (default) or 'sum'.
"""
from __future__ import annotations

import numpy as np

from ._checks import as_float_array, check_labels
from .functional import log_softmax, sigmoid, softmax

__all__ = ["MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss", "log_softmax", "softmax"]


class _Loss:
    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{type(self).__name__}: expected reduction 'mean' or "
                             f"'sum', got {reduction!r}")
        self.reduction = reduction
        self.cache = None

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)

    def _pair(self, pred, target, pred_name: str = "pred"):
        """Both as floating arrays of the same shape, or an error naming the caller."""
        where = f"{type(self).__name__}.forward"
        pred = as_float_array(pred, where, pred_name)
        target = as_float_array(target, where, "target")
        if pred.shape != target.shape:
            raise ValueError(f"{where}: expected target of the same shape as "
                             f"pred {pred.shape}, got {target.shape}")
        return pred, target

    def _check_backward(self, grad: float):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before "
                               "forward: call loss(pred, target) first")
        if not np.isscalar(grad) or not np.isfinite(grad):
            raise ValueError(f"{type(self).__name__}.backward: expected a finite "
                             f"scalar upstream gradient, got {grad!r}")


class MSELoss(_Loss):
    """mean (or sum) over every element of (pred - target)^2.
    ``pred``, ``target``: the same shape ``(...)``; the loss is a float.

    dL/dpred = 2 (pred - target) / n for 'mean' (n = pred.size), 2 (pred - target)
    for 'sum'.
    """

    def forward(self, pred, target) -> float:
        pred, target = self._pair(pred, target)
        diff = pred - target
        self.cache = diff
        total = float(np.sum(diff * diff))
        return total / diff.size if self.reduction == "mean" else total

    def backward(self, grad: float = 1.0) -> np.ndarray:
        self._check_backward(grad)
        diff = self.cache
        scale = 2.0 / diff.size if self.reduction == "mean" else 2.0
        return grad * scale * diff


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from raw scores (logits) and integer class labels.

    ``pred: (N, C)`` logits, ``target: (N,)`` integers in [0, C).
    L_i = -log softmax(z_i)[y_i]; dL_i/dz_i = softmax(z_i) - onehot(y_i)
    (divided by N for 'mean'). Computed through ``log_softmax``, so large logits
    neither overflow nor give log(0).
    """

    def forward(self, pred, target) -> float:
        z = as_float_array(pred, "CrossEntropyLoss.forward", "pred (logits)", ndim=2)
        y = check_labels(target, z.shape[1], z.shape[0], "CrossEntropyLoss.forward")
        logp = log_softmax(z, axis=1)
        self.cache = (logp, y)
        total = -float(logp[np.arange(len(y)), y].sum())
        return total / len(y) if self.reduction == "mean" else total

    def backward(self, grad: float = 1.0) -> np.ndarray:
        self._check_backward(grad)
        logp, y = self.cache
        dz = np.exp(logp)
        dz[np.arange(len(y)), y] -= 1.0
        if self.reduction == "mean":
            dz /= len(y)
        return grad * dz


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy from raw scores (logits) ``z`` and targets ``y`` in [0, 1].

    ``pred`` and ``target``: the same shape, any shape. Per element
    L = -[y log sigma(z) + (1 - y) log(1 - sigma(z))], computed as
    ``max(z, 0) - y z + log(1 + exp(-|z|))`` so that no logit overflows or gives
    log(0); dL/dz = sigma(z) - y (divided by the number of elements for 'mean').
    """

    def forward(self, pred, target) -> float:
        z, y = self._pair(pred, target, "pred (logits)")
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"BCEWithLogitsLoss.forward: expected targets in [0, 1], "
                             f"got values from {y.min():g} to {y.max():g}")
        self.cache = (z, y)
        total = float(np.sum(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))))
        return total / z.size if self.reduction == "mean" else total

    def backward(self, grad: float = 1.0) -> np.ndarray:
        self._check_backward(grad)
        z, y = self.cache
        dz = sigmoid(z) - y
        if self.reduction == "mean":
            dz = dz / z.size
        return grad * dz
