"""Initial states h0 (and c0) of RNN, LSTM and GRU, and the gradients with
respect to them, against torch.nn.RNN/LSTM/GRU(batch_first=True) in float64.

The loss reads every output, the final state h_T and (LSTM) the final cell
state c_T, each weighted by a random upstream gradient, so that dL/dh0 and
dL/dc0 are not a sum of ones and dL/dc_T enters through ``grad_last_cell``.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib
from nnlib.functional import recurrent as Fr

pytestmark = pytest.mark.rnn
LAYERS = [nnlib.RNN, nnlib.LSTM, nnlib.GRU]
RTOL, ATOL = 1e-8, 1e-10


def _torch_layer(layer):
    """The same weights in torch.nn.RNN/LSTM/GRU(batch_first=True), float64."""
    base = getattr(torch.nn, type(layer).__name__)
    net = base(layer.input_size, layer.hidden_size, batch_first=True).double()
    net.load_state_dict({n: torch.tensor(p.data) for n, p in layer.named_parameters()})
    return net


def _close(name, ours, theirs):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} vs {theirs.shape}"
    err = np.abs(ours - theirs).max() if ours.size else 0.0
    assert np.allclose(ours, theirs, rtol=RTOL, atol=ATOL), \
        f"{name}: largest |nnlib - torch| = {err:.2e}"


def _compare(cls, n, t, d, h, scale, seed):
    rng = np.random.default_rng(seed)
    layer = cls(d, h, rng=rng)
    x = scale * rng.standard_normal((n, t, d))
    h0 = rng.standard_normal((n, h))
    c0 = rng.standard_normal((n, h))
    g_out = rng.standard_normal((n, t, h))      # dL/d(output)
    g_hn = rng.standard_normal((n, h))          # dL/dh_T from outside the outputs
    g_cn = rng.standard_normal((n, h))          # dL/dc_T
    is_lstm = cls is nnlib.LSTM

    # torch
    net = _torch_layer(layer)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    c0t = torch.tensor(c0[None], requires_grad=True)
    out_t, state = net(xt, (h0t, c0t) if is_lstm else h0t)
    h_n = state[0] if is_lstm else state
    loss = (out_t * torch.from_numpy(g_out)).sum() + (h_n[0] * torch.from_numpy(g_hn)).sum()
    if is_lstm:
        loss = loss + (state[1][0] * torch.from_numpy(g_cn)).sum()
    loss.backward()

    # nnlib: h_T is output[:, -1], so dL/dh_T adds into the last step's gradient
    out = layer(x, h0, c0) if is_lstm else layer(x, h0)
    g = g_out.copy()
    g[:, -1] += g_hn
    layer.zero_grad()
    dx = layer.backward(g, g_cn) if is_lstm else layer.backward(g)

    _close("output", out, out_t.detach().numpy())
    _close("h_T", out[:, -1], h_n[0].detach().numpy())
    if is_lstm:
        _close("c_T", layer.last_cell, state[1][0].detach().numpy())
    _close("dL/dx", dx, xt.grad.numpy())
    _close("dL/dh0", layer.grad_h0, h0t.grad[0].numpy())
    if is_lstm:
        _close("dL/dc0", layer.grad_c0, c0t.grad[0].numpy())
    grads = dict(net.named_parameters())
    for name, p in layer.named_parameters():
        _close(f"dL/d{name}", p.grad, grads[name].grad.numpy())


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
@settings(deadline=None, max_examples=25)
@given(n=st.integers(1, 4), t=st.integers(1, 7), d=st.integers(1, 5), h=st.integers(1, 5),
       scale=st.sampled_from([0.5, 1.0, 3.0]), seed=st.integers(0, 2**16))
def test_initial_state_matches_torch(cls, n, t, d, h, scale, seed):
    """Outputs, final states and the gradients w.r.t. x, every weight, h0 and c0."""
    _compare(cls, n, t, d, h, scale, seed)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_default_state_is_zeros_bit_for_bit(cls, rng):
    """h0=None gives the same bits as h0 = c0 = zeros, and as before h0 existed
    (the 6-tuple of the functional backward is unchanged)."""
    layer = cls(3, 4, rng=rng)
    x = rng.standard_normal((2, 5, 3))
    g = rng.standard_normal((2, 5, 4))
    zeros = np.zeros((2, 4))
    a = layer(x)
    dxa = layer.backward(g)
    grads_a = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    b = layer(x, zeros, zeros) if cls is nnlib.LSTM else layer(x, zeros)
    dxb = layer.backward(g)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dxa, dxb)
    for ga, p in zip(grads_a, layer.parameters()):
        np.testing.assert_array_equal(ga, p.grad)
    fwd = {nnlib.RNN: Fr.rnn_forward, nnlib.LSTM: Fr.lstm_forward,
           nnlib.GRU: Fr.gru_forward}[cls]
    bwd = {nnlib.RNN: Fr.rnn_backward, nnlib.LSTM: Fr.lstm_backward,
           nnlib.GRU: Fr.gru_backward}[cls]
    hs, cache = fwd(x, *(p.data for p in layer.parameters()))
    np.testing.assert_array_equal(hs, a)
    assert len(bwd(g, cache)) == 6
    extra = bwd(g, cache, initial_grads=True)[6:]
    assert len(extra) == (2 if cls is nnlib.LSTM else 1)
    np.testing.assert_array_equal(extra[0], layer.grad_h0)


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_two_windows_with_state_passed_on_equal_one_sequence(cls, rng):
    """Carrying h_T (and c_T) into the next call reproduces one call over the
    whole sequence; passing grad_h0 (and grad_c0) back reproduces full BPTT.
    Not passing them back is truncated BPTT: window 1 then gets no gradient
    from window 2's loss."""
    layer = cls(3, 4, rng=rng)
    x = rng.standard_normal((2, 8, 3))
    g = rng.standard_normal((2, 8, 4))
    is_lstm = cls is nnlib.LSTM
    full = layer(x)
    layer.zero_grad()
    dx_full = layer.backward(g)
    grads_full = [p.grad.copy() for p in layer.parameters()]

    layer.zero_grad()
    first = layer(x[:, :5])
    state = (first[:, -1].copy(), layer.last_cell.copy()) if is_lstm else (first[:, -1].copy(),)
    second = layer(x[:, 5:], *state)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, rtol=1e-13, atol=1e-15)
    dx2 = layer.backward(g[:, 5:])
    g1 = g[:, :5].copy()
    g1[:, -1] += layer.grad_h0
    dx1 = layer.backward(g1, layer.grad_c0) if is_lstm else layer.backward(g1)
    np.testing.assert_allclose(np.concatenate([dx1, dx2], 1), dx_full, rtol=1e-11, atol=1e-13)
    for gf, p in zip(grads_full, layer.parameters()):
        np.testing.assert_allclose(p.grad, gf, rtol=1e-11, atol=1e-13)


def test_bad_initial_states_are_rejected():
    rnn, lstm = nnlib.RNN(3, 4), nnlib.LSTM(3, 4)
    x = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"RNN.forward: expected h0 of shape \(N, H\) = "
                                         r"\(2, 4\), got \(3, 4\)"):
        rnn(x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"expected h0 of shape .* got \(1, 2, 4\)"):
        rnn(x, np.zeros((1, 2, 4)))          # torch's (num_layers, N, H) layout
    with pytest.raises(ValueError, match=r"LSTM.forward: expected c0 of shape \(N, H\) = "
                                         r"\(2, 4\), got \(2, 5\)"):
        lstm(x, np.zeros((2, 4)), np.zeros((2, 5)))
    with pytest.raises(TypeError, match="expected h0 with a floating dtype"):
        rnn(x, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(nnlib.errors.NonFiniteError, match="h0"):
        rnn(x, np.full((2, 4), np.nan))
    lstm(x)
    with pytest.raises(ValueError, match=r"LSTM.backward: expected grad_last_cell of shape "
                                         r"\(N, H\) = \(2, 4\), got \(4,\)"):
        lstm.backward(np.zeros((2, 5, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"rnn_forward: expected h0 of shape \(N, H\) = "
                                         r"\(2, 4\), got \(2, 3\)"):
        Fr.rnn_forward(x, *(p.data for p in rnn.parameters()), h0=np.zeros((2, 3)))
