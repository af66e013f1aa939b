"""RNN, LSTM and GRU with backpropagation through time, against torch in float64."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib.testing import check_module_gradients
from nnlib.testing import torch_twin

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


@given(vocab=st.integers(1, 12), dim=st.integers(1, 6), shape=st.sampled_from([(5,), (2, 7), (3, 1, 4)]),
       seed=st.integers(0, 2**16))
def test_embedding_matches_torch(vocab, dim, shape, seed):
    """Lookup and the weight gradient, with repeated tokens (their gradients add up)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, vocab, shape)
    assert_matches_torch(nnlib.Embedding(vocab, dim, rng=rng), idx, rng)


def test_embedding_is_one_hot_times_weight(rng):
    emb = nnlib.Embedding(6, 3, rng=rng)
    idx = np.array([[0, 5, 5, 2]])
    one_hot = np.eye(6)[idx]
    np.testing.assert_allclose(emb(idx), one_hot @ emb.weight.data, rtol=0, atol=0)
    assert emb.backward(np.ones((1, 4, 3))) is None
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 0, 1, 0, 0, 2])


def test_embedding_errors():
    emb = nnlib.Embedding(5, 2)
    with pytest.raises(TypeError, match="integer token ids, got dtype float64"):
        emb.forward(np.zeros(3))
    with pytest.raises(IndexError, match=r"ids in \[0, 5\), got 7"):
        emb.forward(np.array([1, 7, 2]))
    with pytest.raises(IndexError, match=r"got -1"):
        emb.forward(np.array([-1]))
    with pytest.raises(ValueError, match="embedding_dim to be a positive integer, got 0"):
        nnlib.Embedding(5, 0)
    emb.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 2, 2\)"):
        emb.backward(np.zeros((1, 2, 3)))


def test_lstm_trace_holds_gates_and_states(rng):
    lstm = nnlib.LSTM(3, 4, rng=rng)
    x = rng.standard_normal((2, 5, 3))
    out = lstm(x)
    tr = lstm.trace
    assert set(tr) == set("ifgohc") and all(v.shape == (2, 5, 4) for v in tr.values())
    np.testing.assert_array_equal(tr["h"], out)
    np.testing.assert_allclose(tr["h"], tr["o"] * np.tanh(tr["c"]), rtol=1e-14)
    c_prev = np.concatenate([np.zeros((2, 1, 4)), tr["c"][:, :-1]], axis=1)
    np.testing.assert_allclose(tr["c"], tr["f"] * c_prev + tr["i"] * tr["g"], rtol=1e-14)
    assert tr["f"].min() > 0 and tr["f"].max() < 1


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_grad_hidden_is_dL_dh_t_from_torch_autograd(cls, rng):
    """Unroll torch's layer one step at a time, keep every h_t, compare dL/dh_t."""
    layer = cls(3, 4, rng=rng)
    x = rng.standard_normal((2, 6, 3))
    grad_out = rng.standard_normal((2, 6, 4))
    layer(x)
    layer.backward(grad_out)
    twin = torch_twin(layer)
    base = type(twin).__mro__[1]
    state, hs = None, []
    for t in range(6):
        _, state = base.forward(twin, torch.from_numpy(x[:, t:t + 1]), state)
        h = state[0] if cls is nnlib.LSTM else state
        h.retain_grad()
        hs.append(h)
    # the output at step t is h_t, so the loss is sum_t <grad_out_t, h_t>
    loss = sum((h[0] * torch.from_numpy(grad_out[:, t])).sum() for t, h in enumerate(hs))
    loss.backward()
    expected = np.stack([h.grad[0].numpy() for h in hs], axis=1)
    np.testing.assert_allclose(layer.grad_hidden, expected, rtol=1e-10, atol=1e-12)


def test_char_lstm_matches_its_torch_twin_and_samples(rng):
    model = nnlib.models.char_lstm(7, embed=3, hidden=5, rng=rng)
    assert [n for n, _ in model.named_parameters()][:2] == ["0.weight", "1.weight_ih_l0"]
    assert_matches_torch(model, rng.integers(0, 7, (2, 6)), rng)
    vocab = nnlib.data.CharVocab("abcdefg")
    a = nnlib.models.sample_chars(model, vocab, "ab", 10, rng=np.random.default_rng(1))
    b = nnlib.models.sample_chars(model, vocab, "ab", 10, rng=np.random.default_rng(1))
    assert a == b and len(a) == 12 and a.startswith("ab") and set(a) <= set("abcdefg")
    with pytest.raises(ValueError, match="temperature > 0, got 0"):
        nnlib.models.sample_chars(model, vocab, "ab", 3, temperature=0)
