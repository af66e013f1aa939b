"""Every layer against its PyTorch twin in float64, shapes drawn by hypothesis."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib.testing import check_module_gradients

from conftest import assert_matches_torch, away_from_zero

pytestmark = pytest.mark.layers

dims = st.integers(1, 9)


@given(n=dims, fin=dims, fout=dims, bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_matches_torch(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    layer = nnlib.Linear(fin, fout, bias=bias, rng=rng)
    assert_matches_torch(layer, rng.standard_normal((n, fin)), rng)


@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), fin=dims, fout=dims,
       seed=st.integers(0, 2**16))
def test_linear_with_leading_dimensions_matches_torch(lead, fin, fout, seed):
    rng = np.random.default_rng(seed)
    layer = nnlib.Linear(fin, fout, rng=rng)
    assert_matches_torch(layer, rng.standard_normal((*lead, fin)), rng)


ACTIVATIONS = [nnlib.ReLU, nnlib.Sigmoid, nnlib.Tanh, lambda: nnlib.LeakyReLU(0.2),
               nnlib.LeakyReLU]


@pytest.mark.parametrize("make", ACTIVATIONS, ids=["relu", "sigmoid", "tanh", "leaky0.2",
                                                   "leaky_default"])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_activation_matches_torch(make, shape, seed, scale):
    rng = np.random.default_rng(seed)
    x = away_from_zero(scale * rng.standard_normal(shape))
    assert_matches_torch(make(), x, rng)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    y = nnlib.Sigmoid().forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0]],
                               rtol=1e-12, atol=0)


def test_relu_derivative_at_zero_is_zero_like_torch(rng):
    relu = nnlib.ReLU()
    relu.forward(np.zeros((2, 3)))
    assert np.all(relu.backward(np.ones((2, 3))) == 0)
    assert_matches_torch(nnlib.ReLU(), np.array([[0.0, -1.0, 2.0]]), rng)


@given(n=dims, widths=st.lists(st.integers(1, 8), min_size=2, max_size=5),
       act=st.sampled_from(["tanh", "sigmoid", "leaky"]), seed=st.integers(0, 2**16))
def test_mlp_matches_torch(n, widths, act, seed):
    rng = np.random.default_rng(seed)
    make = {"tanh": nnlib.Tanh, "sigmoid": nnlib.Sigmoid, "leaky": nnlib.LeakyReLU}[act]
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nnlib.Linear(a, b, rng=rng), make()]
    assert_matches_torch(nnlib.Sequential(*layers), rng.standard_normal((n, widths[0])), rng)


@pytest.mark.parametrize("make", [lambda r: nnlib.Linear(4, 3, rng=r), lambda r: nnlib.Tanh(),
                                  lambda r: nnlib.Sigmoid(),
                                  lambda r: nnlib.Sequential(nnlib.Linear(4, 5, rng=r),
                                                             nnlib.Tanh(),
                                                             nnlib.Linear(5, 2, rng=r))],
                         ids=["linear", "tanh", "sigmoid", "mlp"])
def test_numerical_gradient_check_passes(make, rng):
    report = check_module_gradients(make(rng), rng.standard_normal((3, 4)), rng=rng)
    assert report.worst < 1e-7, str(report)


def test_backward_accumulates_gradients(rng):
    layer = nnlib.Linear(3, 2, rng=rng)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.forward(x)                   # each backward uses up the cache of one forward
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-12)
    with pytest.raises(RuntimeError, match="once more than forward"):
        layer.backward(g)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_linear_default_init_bound_is_torchs():
    nnlib.manual_seed(0)
    layer = nnlib.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w = layer.weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), p=st.sampled_from([0.0, 0.2, 0.5]),
       seed=st.integers(0, 2**16))
def test_dropout_in_eval_mode_matches_torch(shape, p, seed):
    rng = np.random.default_rng(seed)
    assert_matches_torch(nnlib.Dropout(p).eval(), rng.standard_normal(shape), rng)


def test_dropout_in_training_mode_has_the_right_statistics(rng):
    p = 0.3
    drop = nnlib.Dropout(p, rng=rng)
    x = np.ones((400, 500))
    y = drop.forward(x)
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.005                # fraction kept ~ 1 - p
    np.testing.assert_allclose(y[kept], 1 / (1 - p))         # survivors scaled up
    assert abs(y.mean() - 1.0) < 0.01                        # expectation preserved
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(drop.backward(g), g * y)   # same mask backward
    with pytest.raises(ValueError, match=r"probability p in \[0, 1\), got 1.0"):
        nnlib.Dropout(1.0)


def test_dropout_gradient_check_with_a_fixed_mask(rng):
    """With the mask frozen (same generator state every call), dropout is linear."""
    x = rng.standard_normal((3, 4))

    class Frozen(nnlib.Dropout):
        def forward(self, x):
            self.rng = np.random.default_rng(5)
            return super().forward(x)

    assert check_module_gradients(Frozen(0.5), x, rng=rng).worst < 1e-8
