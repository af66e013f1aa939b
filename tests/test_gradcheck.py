"""The checker itself: it must pass a right gradient and fail a wrong one."""
import numpy as np
import pytest

import nnlib
from nnlib.testing import check_module_gradients, numerical_grad, rel_error

pytestmark = pytest.mark.gradcheck


def test_numerical_grad_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    before = x.copy()
    g = numerical_grad(lambda z: np.sum(np.sin(z) * z), x)
    assert rel_error(g, np.cos(before) * before + np.sin(before)) < 1e-9
    np.testing.assert_array_equal(x, before)  # restored after the perturbations


class WrongTanh(nnlib.Tanh):
    """tanh with a plausible mistake: derivative 1 - tanh(x) instead of 1 - tanh(x)^2."""

    def backward(self, grad_out):
        y, _ = self._cached()
        return grad_out * (1.0 - y)


def test_check_fails_a_wrong_backward(rng):
    x = rng.standard_normal((4, 3))
    assert check_module_gradients(nnlib.Tanh(), x, rng=rng).worst < 1e-8
    assert check_module_gradients(WrongTanh(), x, rng=rng).worst > 1e-2


def test_rel_error_is_scale_free_and_symmetric(rng):
    a = rng.standard_normal(10)
    assert rel_error(a, a) == 0.0
    assert rel_error(1e-6 * a, 1e-6 * a * (1 + 1e-9)) < 1e-8
    assert rel_error(a, -a) == 1.0
    assert rel_error(a, 2 * a) == rel_error(2 * a, a)
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(3), np.zeros(4))


def test_float32_is_refused():
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(np.sum, np.zeros(3, dtype=np.float32))
