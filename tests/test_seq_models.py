"""Sequence models of chapter 5b (Bidirectional) against torch in float64, and
the whole-sequence LSTM kernel against the one-step functions."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib
from nnlib.functional import recurrent as Fr
from nnlib.layers.recurrent import Bidirectional

pytestmark = pytest.mark.rnn
PAIRS = [(nnlib.RNN, torch.nn.RNN), (nnlib.LSTM, torch.nn.LSTM),
         (nnlib.GRU, torch.nn.GRU)]
TOL = dict(rtol=1e-8, atol=1e-10)


def _close(ours, theirs, what):
    err = np.abs(ours - theirs).max()
    assert np.allclose(ours, theirs, **TOL), f"{what}: worst |error| {err:.2e}"


def _compare(ours, theirs, to_torch, x, rng):
    theirs.load_state_dict({to_torch(n): torch.tensor(p.data)
                            for n, p in ours.named_parameters()})
    y = ours(x)
    g = rng.standard_normal(y.shape)               # random upstream gradient
    ours.zero_grad()
    dx = ours.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)[0]
    (yt * torch.from_numpy(g)).sum().backward()
    _close(y, yt.detach().numpy(), "output")
    _close(dx, xt.grad.numpy(), "dx")
    tp = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        _close(p.grad, tp[to_torch(n)].grad.numpy(), n)


def _bi_name(n):
    base = n.split(".", 1)[1]
    return base + "_reverse" if n.startswith("bwd.") else base


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
@settings(deadline=None, max_examples=15)
@given(n=st.integers(1, 3), t=st.integers(1, 7), d=st.integers(1, 4),
       h=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_bidirectional_matches_torch(pair, n, t, d, h, seed):
    cls, tcls = pair
    rng = np.random.default_rng(seed)
    bi = Bidirectional(cls(d, h, rng=rng), cls(d, h, rng=rng))
    tb = tcls(d, h, batch_first=True, bidirectional=True).double()
    _compare(bi, tb, _bi_name, rng.standard_normal((n, t, d)), rng)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_stack_is_torch_num_layers_2(pair):
    cls, tcls = pair
    rng = np.random.default_rng(3)
    stack = nnlib.Sequential(cls(3, 4, rng=rng), cls(4, 4, rng=rng))
    ts = tcls(3, 4, num_layers=2, batch_first=True).double()
    _compare(stack, ts, lambda n: n[2:-1] + n[0], rng.standard_normal((2, 5, 3)), rng)


def test_bidirectional_reads_the_future():
    """The backward half at step 0 changes when only the last input changes."""
    rng = np.random.default_rng(0)
    bi = Bidirectional(nnlib.GRU(2, 3, rng=rng), nnlib.GRU(2, 3, rng=rng))
    x = rng.standard_normal((1, 6, 2))
    x2 = x.copy()
    x2[0, -1] += 1.0
    y, y2 = bi(x), bi(x2)
    assert np.allclose(y[0, :5, :3], y2[0, :5, :3])      # forward half: the past only
    assert np.abs(y[0, 0, 3:] - y2[0, 0, 3:]).max() > 1e-3


def test_bidirectional_rejects_bad_layers():
    with pytest.raises(TypeError, match="expected forward_layer to be an nnlib RNN"):
        Bidirectional(nnlib.Linear(2, 3), nnlib.GRU(2, 3))
    with pytest.raises(ValueError, match=r"GRU\(2, 3\) and LSTM\(2, 3\)"):
        Bidirectional(nnlib.GRU(2, 3), nnlib.LSTM(2, 3))
    with pytest.raises(ValueError, match=r"GRU\(2, 3\) and GRU\(2, 4\)"):
        Bidirectional(nnlib.GRU(2, 3), nnlib.GRU(2, 4))


def _packed_torch(theirs, x, lengths):
    """torch's bidirectional layer on a packed batch, padded back with zeros."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    out, _ = pad_packed_sequence(theirs(packed)[0], batch_first=True,
                                 total_length=x.shape[1])
    return xt, out


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
@settings(deadline=None, max_examples=15)
@given(n=st.integers(1, 4), t=st.integers(1, 7), d=st.integers(1, 3),
       h=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_bidirectional_lengths_match_packed_torch(pair, n, t, d, h, seed):
    """With lengths, outputs, dx and every weight gradient equal torch's
    pack_padded_sequence run (padding: output 0, no gradient), float64."""
    cls, tcls = pair
    rng = np.random.default_rng(seed)
    bi = Bidirectional(cls(d, h, rng=rng), cls(d, h, rng=rng))
    tb = tcls(d, h, batch_first=True, bidirectional=True).double()
    tb.load_state_dict({_bi_name(k): torch.tensor(p.data)
                        for k, p in bi.named_parameters()})
    lengths = rng.integers(1, t + 1, n)
    x = rng.standard_normal((n, t, d))
    x[np.arange(t)[None, :] >= lengths[:, None]] = 5.0   # loud padding
    y = bi(x, lengths=lengths)
    g = rng.standard_normal(y.shape)
    bi.zero_grad()
    dx = bi.backward(g)
    xt, yt = _packed_torch(tb, x, lengths)
    (yt * torch.from_numpy(g)).sum().backward()
    _close(y, yt.detach().numpy(), "output")
    _close(dx, xt.grad.numpy(), "dx")
    tp = dict(tb.named_parameters())
    for k, p in bi.named_parameters():
        _close(p.grad, tp[_bi_name(k)].grad.numpy(), k)


def test_bidirectional_full_lengths_is_no_lengths():
    rng = np.random.default_rng(4)
    bi = Bidirectional(nnlib.LSTM(2, 3, rng=rng), nnlib.LSTM(2, 3, rng=rng))
    x = rng.standard_normal((3, 5, 2))
    g = rng.standard_normal((3, 5, 6))
    y0, dx0 = bi(x), bi.backward(g)
    y1, dx1 = bi(x, lengths=np.full(3, 5)), bi.backward(g)
    assert np.array_equal(y0, y1) and np.array_equal(dx0, dx1)


def test_bidirectional_padding_without_lengths_reaches_backward_states():
    """Documented behaviour: without lengths the padding is read, and every
    backward state of the real steps changes; with lengths none does."""
    rng = np.random.default_rng(5)
    bi = Bidirectional(nnlib.GRU(2, 3, rng=rng), nnlib.GRU(2, 3, rng=rng))
    x = rng.standard_normal((1, 4, 2))
    padded = np.concatenate([x, np.ones((1, 3, 2))], axis=1)
    alone = bi(x)
    with_pad = bi(padded)[:, :4]
    masked = bi(padded, lengths=[4])[:, :4]
    assert np.allclose(with_pad[..., :3], alone[..., :3])     # forward half
    assert np.all(np.abs(with_pad[0, :, 3:] - alone[0, :, 3:]).max(1) > 1e-3)
    assert np.allclose(masked, alone, rtol=0, atol=1e-14)


def test_bidirectional_rejects_bad_lengths():
    bi = Bidirectional(nnlib.GRU(2, 3), nnlib.GRU(2, 3))
    x = np.zeros((2, 4, 2))
    with pytest.raises(TypeError, match="expected lengths to be integers"):
        bi(x, lengths=np.array([4.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(2,\).*\(3,\)"):
        bi(x, lengths=[4, 2, 1])
    with pytest.raises(ValueError, match=r"\[1, 4\], got 0"):
        bi(x, lengths=[4, 0])
    with pytest.raises(ValueError, match=r"\[1, 4\], got 5"):
        bi(x, lengths=[5, 1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_sequence_kernel_matches_step_functions(dtype):
    """lstm_forward/backward (time-major loop) against a loop of
    lstm_step_forward/backward, the same algebra written once per step."""
    rng = np.random.default_rng(1)
    n, t_len, d, h = 3, 6, 2, 4
    x = rng.standard_normal((n, t_len, d)).astype(dtype)
    w = [rng.standard_normal(s).astype(dtype) / 2
         for s in [(4 * h, d), (4 * h, h), (4 * h,), (4 * h,)]]
    hs, cache = Fr.lstm_forward(x, *w)
    hp, cp, caches, steps = np.zeros((n, h), dtype), np.zeros((n, h), dtype), [], []
    for t in range(t_len):
        (hp, cp), c = Fr.lstm_step_forward(x[:, t], hp, cp, *w)
        caches.append(c)
        steps.append(hp)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.abs(hs - np.stack(steps, 1)).max() < tol
    g = rng.standard_normal(hs.shape).astype(dtype)
    dx, dwi, dwh, dbi, dbh, _ = Fr.lstm_backward(g, cache)
    dh, dc = np.zeros((n, h), dtype), np.zeros((n, h), dtype)
    acc = [np.zeros_like(v) for v in w]
    dxs = []
    for t in reversed(range(t_len)):
        out = Fr.lstm_step_backward(g[:, t] + dh, dc, caches[t])
        dxs.append(out[0])
        dh, dc = out[1], out[2]
        for a, v in zip(acc, out[3:]):
            a += v
    assert np.abs(dx - np.stack(dxs[::-1], 1)).max() < tol
    for a, b in zip(acc, (dwi, dwh, dbi, dbh)):
        assert np.abs(a - b).max() < 10 * tol
