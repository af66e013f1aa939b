"""Numerical gradient checks by central differences.

``numerical_grad(f, x)`` perturbs **every** entry of ``x`` (not a sample)::

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

whose error is O(eps^2) plus round-off O(machine_eps / eps); in float64 with
eps = 1e-6 the two balance near 1e-10 relative error for smooth functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import as_float_array
from ..module import Module, no_grad
from ..random import get_rng

__all__ = ["numerical_grad", "numerical_vjp", "rel_error", "check_module_gradients",
           "GradCheckReport"]


def rel_error(a, b) -> float:
    """||a - b|| / (||a|| + ||b||) in the Euclidean norm: 0 when equal, 1 when
    opposite, about 1e-10 for a correct float64 gradient against central
    differences and 1e-2 or more for a wrong one. Scale-free, and unlike an
    entry-by-entry ratio it is not thrown by entries that are nearly zero.
    ``a``, ``b``: arrays of the same shape ``(...)``; returns a float."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: expected arrays of the same shape, got {a.shape} "
                         f"and {b.shape}")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar function ``f`` at ``x`` by central differences.

    ``x`` is modified in place during the call and restored afterwards, so ``f``
    may close over it (as when ``x`` is a layer's weight).
    ``x: (...)`` float64 ``-> (...)``, the same shape; ``f(x)`` is a float.
    """
    x = as_float_array(x, "numerical_grad", "x")
    if x.dtype != np.float64:
        raise TypeError(f"numerical_grad: expected float64 x (float32 round-off "
                        f"swamps the differences), got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        f_plus = float(f(x))
        x[i] = old - eps
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_vjp(f, x: np.ndarray, grad_out: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Vector-Jacobian product grad_out^T (df/dx), as the gradient of sum(f(x) * grad_out).
    ``x: (...)``, ``grad_out``: the shape of ``f(x)``; returns ``x``'s shape."""
    return numerical_grad(lambda z: np.sum(f(z) * grad_out), x, eps)


@dataclass
class GradCheckReport:
    """Relative errors of a module's analytic gradients against numerical ones:
    one float for the input and one per parameter name (``rel_error`` of
    arrays of the checked tensor's shape)."""
    errors: dict = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    def __str__(self) -> str:
        return "\n".join(f"{name:>20s}: rel. error {err:.2e}"
                         for name, err in self.errors.items())


def check_module_gradients(module: Module, x: np.ndarray, rng=None,
                           eps: float = 1e-6) -> GradCheckReport:
    """Compare ``module.backward`` with central differences, for the input and
    for every parameter, using a random upstream gradient (not ones, which would
    hide errors that cancel in a sum). ``x``: any input ``module`` accepts,
    float64 (or integer token ids, whose gradient is not checked); the upstream
    gradient has the shape of ``module(x)``. Frozen parameters are skipped.
    Run it in evaluation mode for layers that draw randomness (dropout).
    Every forward runs in the module's mode: in training mode a BatchNorm's
    running statistics are updated by each of the thousands of forwards;
    save and restore its ``state_dict`` around the check if they matter."""
    rng = get_rng(rng)
    integer_input = isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer)
    if not integer_input:       # token ids have no gradient: only the parameters are checked
        x = as_float_array(x, "check_module_gradients", "x").astype(np.float64, copy=True)
    y = module.forward(x)
    grad_out = rng.standard_normal(y.shape)
    module.zero_grad()
    dx = module.backward(grad_out)
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    analytic = {n: p.grad.copy() for n, p in trainable}

    def loss(_):
        with no_grad():                    # thousands of forwards, no backward
            return np.sum(module.forward(x) * grad_out)

    report = GradCheckReport()
    if not integer_input:
        report.errors["input"] = rel_error(dx, numerical_grad(loss, x, eps))
    for name, p in trainable:
        report.errors[name] = rel_error(analytic[name], numerical_grad(loss, p.data, eps))
    return report
