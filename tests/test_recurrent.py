"""RNN, LSTM and GRU with backpropagation through time, against torch in float64."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib.gradcheck import check_module_gradients
from nnlib.twins import torch_twin

from conftest import assert_matches_torch

pytestmark = pytest.mark.rnn
LAYERS = [nnlib.RNN, nnlib.LSTM, nnlib.GRU]


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@given(n=st.integers(1, 4), t=st.integers(1, 8), d=st.integers(1, 5), h=st.integers(1, 5),
       scale=st.sampled_from([0.5, 1.0, 3.0]), seed=st.integers(0, 2**16))
def test_recurrent_layer_matches_torch(cls, n, t, d, h, scale, seed):
    """Outputs at every step, dL/dx at every step and every weight gradient."""
    rng = np.random.default_rng(seed)
    assert_matches_torch(cls(d, h, rng=rng), scale * rng.standard_normal((n, t, d)), rng)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_final_states_match_torch(cls, rng):
    layer = cls(3, 4, rng=rng)
    x = rng.standard_normal((2, 6, 3))
    out = layer(x)
    twin = torch_twin(layer)
    base = type(twin).__mro__[1]           # torch.nn.RNN, LSTM or GRU: returns the state too
    with torch.no_grad():
        t_out, state = base.forward(twin, torch.from_numpy(x))
    h_n = state[0] if cls is nnlib.LSTM else state
    np.testing.assert_allclose(out[:, -1], h_n[0].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-10, atol=1e-12)
    if cls is nnlib.LSTM:
        np.testing.assert_allclose(layer.last_cell, state[1][0].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_bptt_passes_a_numerical_gradient_check(cls, rng):
    report = check_module_gradients(cls(2, 3, rng=rng), rng.standard_normal((2, 4, 2)), rng=rng)
    assert report.worst < 1e-7, str(report)


def test_gradient_through_time_reaches_the_first_input(rng):
    """A loss on the last output only still has a gradient at step 1: BPTT carries it."""
    rnn = nnlib.RNN(2, 3, rng=rng)
    out = rnn(rng.standard_normal((1, 5, 2)))
    g = np.zeros_like(out)
    g[:, -1] = 1.0
    dx = rnn.backward(g)
    assert np.abs(dx[0, 0]).sum() > 0


def test_recurrent_errors():
    lstm = nnlib.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, T, 3\), got \(2, 5, 4\)"):
        lstm.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="3 dimensions"):
        lstm.forward(np.zeros((5, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        nnlib.GRU(3, 4).backward(np.zeros((1, 1, 4)))
    with pytest.raises(ValueError, match="hidden_size to be a positive integer, got 0"):
        nnlib.RNN(3, 0)
    lstm.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 5, 4\)"):
        lstm.backward(np.zeros((2, 4, 4)))


def test_clipping_is_a_separate_step_before_the_optimizer(rng):
    rnn = nnlib.RNN(2, 3, rng=rng)
    out = rnn(rng.standard_normal((4, 30, 2)) * 5)
    rnn.backward(np.ones_like(out) * 100)
    raw = [p.grad.copy() for p in rnn.parameters()]
    norm = nnlib.clip_grad_norm(rnn.parameters(), 1.0)
    clipped = np.sqrt(sum(np.sum(p.grad ** 2) for p in rnn.parameters()))
    assert norm > 1.0 and abs(clipped - 1.0) < 1e-5
    for before, p in zip(raw, rnn.parameters()):   # same direction, shorter
        np.testing.assert_allclose(p.grad, before * (1.0 / (norm + 1e-6)), rtol=1e-10)
