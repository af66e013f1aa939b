"""One test over every layer nnlib exports: a layer is complete only if it has a
torch twin, agrees with torch in float64 (output, input gradient, every
parameter gradient, every buffer), passes the gradient check, has a
hypothesis strategy and a docstring that states shapes. A layer without any of
these fails here, by name."""
import inspect
import re

import numpy as np
import pytest
from hypothesis import given, settings

import nnlib
from nnlib import layers
from nnlib.layers._twins import twin_builder
from nnlib.testing import assert_gradients_ok, assert_matches_torch
from nnlib.testing.strategies import LAYER_CASES

pytestmark = pytest.mark.layers

LAYERS = [getattr(layers, n) for n in layers.__all__
          if inspect.isclass(getattr(layers, n)) and issubclass(getattr(layers, n), nnlib.Module)]
SHAPES = re.compile(r"\([^()\n]*\)[^\n]*->")       # a shape, then an arrow, on one line


def test_every_layer_is_in_the_registry():
    assert len(LAYERS) >= 23
    missing = [c.__name__ for c in LAYERS if twin_builder(c) is None]
    assert not missing, f"layers without a torch twin (register_twin beside them): {missing}"
    missing = [c.__name__ for c in LAYERS if c not in LAYER_CASES]
    assert not missing, f"layers without a strategy in nnlib.testing.strategies: {missing}"


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_docstring_states_shapes(cls):
    doc = inspect.getdoc(cls) or ""
    assert SHAPES.search(doc), (f"{cls.__name__}: the docstring must state the shapes in "
                                f"and out, as `x: (N, D) -> (N, H)`")


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_layer_matches_torch_and_gradcheck(cls):
    @settings(max_examples=15)
    @given(LAYER_CASES[cls])
    def check(case):
        module, x = case
        rng = np.random.default_rng(0)
        assert_matches_torch(module, x, rng)
        module.clear_cache()
        assert_gradients_ok(module, x, rng)
        stale = [name or "(top)" for name, m in module.named_modules() if m.pending_backward]
        assert not stale, f"caches left behind after matched forward/backward: {stale}"
    check()


class _WrongBackward(nnlib.Linear):
    """Linear whose weight gradient is transposed-and-summed wrong: a negative control."""

    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.weight.grad *= 1.01
        return dx


class _WrongTanh(nnlib.Tanh):
    """tanh with the derivative 1 - tanh(x) instead of 1 - tanh(x)^2."""

    def backward(self, grad_out):
        y, _ = self._cached()
        return grad_out * (1.0 - y)


def test_the_checks_reject_a_wrong_layer(rng):
    """Both checks fail a layer that is 1% wrong in one gradient, and a tanh with a
    wrong derivative (the suite can see a wrong layer; the preface says so)."""
    layers._twins.register_twin(_WrongBackward, twin_builder(nnlib.Linear))
    layers._twins.register_twin(_WrongTanh, twin_builder(nnlib.Tanh))
    x = rng.standard_normal((3, 4))
    with pytest.raises(AssertionError, match="grad weight"):
        assert_matches_torch(_WrongBackward(4, 2, rng=rng), x, rng)
    with pytest.raises(AssertionError, match="weight"):
        assert_gradients_ok(_WrongBackward(4, 2, rng=rng), x, rng)
    with pytest.raises(AssertionError, match="grad input"):
        assert_matches_torch(_WrongTanh(), x, rng)
    with pytest.raises(AssertionError, match="input"):
        assert_gradients_ok(_WrongTanh(), x, rng)
