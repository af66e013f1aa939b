"""nnlib.testing: everything that checks a layer, in one place.

* ``torch_twin`` / ``compare_with_torch`` / ``TwinReport`` -- the same module
  in PyTorch with the same weights, and the worst error of the output, the
  input gradient, every parameter gradient and every buffer
  (``nnlib.testing.twins``);
* ``numerical_grad``, ``numerical_vjp``, ``rel_error``,
  ``check_module_gradients`` -- central-difference gradient checks
  (``nnlib.testing.gradcheck``);
* ``assert_matches_torch`` and ``assert_gradients_ok`` -- the two checks as
  assertions with the book's tolerances ``RTOL``, ``ATOL`` and ``GRADCHECK_TOL``;
* ``mean_sd`` and ``paired_t`` -- a measurement over seeds as the book
  reports it (``nnlib.testing.seeds``);
* ``nnlib.testing.strategies`` -- hypothesis strategies that draw a layer and an
  input for every layer in ``nnlib.layers`` (imported on demand: it needs
  hypothesis, a test dependency).

A layer is complete when ``tests/test_registry.py`` finds, for it, a twin
(``register_twin`` beside the layer), a strategy here, agreement with torch,
a passing gradient check and a docstring that states shapes.
"""
from __future__ import annotations

from .gradcheck import (GradCheckReport, check_module_gradients, numerical_grad,
                        numerical_vjp, rel_error)
from .seeds import mean_sd, paired_t
from .twins import TwinReport, compare_with_torch, register_twin, torch_loss_twin, torch_twin

__all__ = ["torch_twin", "torch_loss_twin", "compare_with_torch", "TwinReport",
           "register_twin", "numerical_grad", "numerical_vjp", "rel_error",
           "check_module_gradients", "GradCheckReport", "mean_sd", "paired_t", "assert_matches_torch",
           "assert_gradients_ok", "RTOL", "ATOL", "GRADCHECK_TOL"]

#: nnlib against torch in float64: ``abs(ours - torch) <= ATOL + RTOL * abs(torch)`` everywhere
RTOL, ATOL = 1e-8, 1e-10
#: analytic against central differences (eps 1e-6, float64): rel_error below this
GRADCHECK_TOL = 1e-6


def assert_matches_torch(module, x, rng=None, rtol: float = RTOL, atol: float = ATOL,
                         device: str = "cpu") -> TwinReport:
    """``compare_with_torch`` as an assertion; the message lists the worst
    error of every quantity. ``x: (N, ...)``, an input ``module`` accepts."""
    report = compare_with_torch(module, x, rng=rng, rtol=rtol, atol=atol, device=device)
    assert report.ok(), (f"{type(module).__name__} differs from torch beyond rtol={rtol}, "
                         f"atol={atol} in {sorted(report.violations)}; worst |error| per "
                         f"quantity:\n{report}")
    return report


def assert_gradients_ok(module, x, rng=None, tol: float = GRADCHECK_TOL) -> GradCheckReport:
    """``check_module_gradients`` as an assertion: every relative error below
    ``tol``. ``x: (N, ...)``, an input ``module`` accepts (float64 or token ids)."""
    report = check_module_gradients(module, x, rng=rng)
    bad = {k: v for k, v in report.errors.items() if not v < tol}
    assert not bad, (f"{type(module).__name__}: analytic gradients differ from central "
                     f"differences (rel. error >= {tol}) for {sorted(bad)}:\n{report}")
    return report
