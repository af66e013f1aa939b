"""Recurrent cells as pure functions: one step, and a whole sequence with
backpropagation through time (CS231n's ``rnn_step_forward`` / ``rnn_forward``).

Layouts are PyTorch's (``batch_first``): ``W_ih: (G H, D)``, ``W_hh: (G H, H)``,
``b_ih, b_hh: (G H,)`` with G = 1 (RNN), 4 (LSTM gates i, f, g, o) or 3 (GRU
gates r, z, n). A sequence ``x: (N, T, D)`` gives every hidden state
``(N, T, H)``; the state starts at ``h0`` (and ``c0`` for the LSTM), each
``(N, H)``, or at zero when they are None. The sequence functions project every
input at once (one matrix product) and then loop over time; the step functions
are the same algebra for a single t, for reading and for exercises.

Each ``*_backward(dhs, cache)`` takes dL/dh_t for every step (from the outputs)
and returns ``(dx, dW_ih, dW_hh, db_ih, db_hh, dh_total)``; ``dh_total`` is the
total dL/dh_t at every step, ``(N, T, H)``: from the output at t and, through
the recurrence, from every later step. With ``initial_grads=True`` they
also return dL/dh0 (and dL/dc0 for the LSTM), each ``(N, H)``, after
``dh_total``: the gradient with respect to the initial state, which truncated
BPTT cuts and an encoder-decoder passes back to its encoder. ``lstm_backward``
takes ``dc_last``, dL/dc_T from outside (a decoder that starts from c_T).
"""
from __future__ import annotations

import numpy as np

from .basic import sigmoid

__all__ = ["rnn_step_forward", "rnn_step_backward", "lstm_step_forward",
           "lstm_step_backward", "gru_step_forward", "gru_step_backward",
           "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward", "lstm_trace"]


# --- one step ---------------------------------------------------------------
def rnn_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh).
    ``x: (N, D)``, ``h_prev: (N, H)`` -> ``h: (N, H)``."""
    h = np.tanh(x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)
    return h, (x, h_prev, W_ih, W_hh, h)


def rnn_step_backward(dh, cache):
    """``dh: (N, H)`` -> ``(dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh)``."""
    x, h_prev, W_ih, W_hh, h = cache
    da = dh * (1.0 - h ** 2)
    db = da.sum(axis=0)
    return da @ W_ih, da @ W_hh, da.T @ x, da.T @ h_prev, db, db.copy()


def lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    """a = x W_ih^T + b_ih + h_prev W_hh^T + b_hh split into (i, f, g, o);
    i, f, o = sigma(.), g = tanh(.); c = f c_prev + i g; h = o tanh(c).
    ``x: (N, D)``, ``h_prev, c_prev: (N, H)`` -> ``(h, c)``, each ``(N, H)``."""
    hsz = h_prev.shape[1]
    a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
    act = sigmoid(a)
    act[:, 2 * hsz:3 * hsz] = np.tanh(a[:, 2 * hsz:3 * hsz])
    i, f, g, o = np.split(act, 4, axis=1)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), (x, h_prev, c_prev, W_ih, W_hh, act, c)


def lstm_step_backward(dh, dc, cache):
    """``dh, dc: (N, H)`` (dL/dh and dL/dc from above) ->
    ``(dx, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh)``. With
    dc_total = dc + dh o (1 - tanh^2 c): di = dc_total g, df = dc_total c_prev,
    dg = dc_total i, do = dh tanh c, each times its activation's derivative;
    dc_prev = dc_total f."""
    x, h_prev, c_prev, W_ih, W_hh, act, c = cache
    i, f, g, o = np.split(act, 4, axis=1)
    tanh_c = np.tanh(c)
    dct = dc + dh * o * (1.0 - tanh_c ** 2)
    da = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f),
                         dct * i * (1 - g ** 2), dh * tanh_c * o * (1 - o)], axis=1)
    db = da.sum(axis=0)
    return da @ W_ih, da @ W_hh, dct * f, da.T @ x, da.T @ h_prev, db, db.copy()


def gru_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh):
    """r, z = sigma(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z});
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)); h = (1 - z) n + z h_prev.
    ``x: (N, D)``, ``h_prev: (N, H)`` -> ``h: (N, H)``."""
    hsz = h_prev.shape[1]
    gi, gh = x @ W_ih.T + b_ih, h_prev @ W_hh.T + b_hh
    r = sigmoid(gi[:, :hsz] + gh[:, :hsz])
    z = sigmoid(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
    n = np.tanh(gi[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
    h = (1 - z) * n + z * h_prev
    return h, (x, h_prev, W_ih, W_hh, r, z, n, gh[:, 2 * hsz:])


def gru_step_backward(dh, cache):
    """``dh: (N, H)`` -> ``(dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh)``.
    dn_pre = dh (1 - z)(1 - n^2), dz_pre = dh (h_prev - n) z (1 - z),
    dr_pre = dn_pre (h W_hn^T + b_hn) r (1 - r); the hidden-side gradient of n's
    pre-activation is dn_pre r."""
    x, h_prev, W_ih, W_hh, r, z, n, hn = cache
    dn = dh * (1 - z) * (1 - n ** 2)
    dz = dh * (h_prev - n) * z * (1 - z)
    dr = dn * hn * r * (1 - r)
    d_in = np.concatenate([dr, dz, dn], axis=1)
    d_hid = np.concatenate([dr, dz, dn * r], axis=1)
    return (d_in @ W_ih, dh * z + d_hid @ W_hh, d_in.T @ x, d_hid.T @ h_prev,
            d_in.sum(axis=0), d_hid.sum(axis=0))


# --- whole sequences ----------------------------------------------------------
def _weight_grads(x, h_prev, d_in, d_hid, W_ih):
    """All steps at once: ``d_in, d_hid: (N, T, G H)`` -> dx and the four
    parameter gradients (one GEMM each, not a loop)."""
    g = d_in.shape[2]
    dW_ih = d_in.reshape(-1, g).T @ x.reshape(-1, x.shape[2])
    dW_hh = d_hid.reshape(-1, g).T @ h_prev.reshape(-1, h_prev.shape[2])
    return d_in @ W_ih, dW_ih, dW_hh, d_in.sum(axis=(0, 1)), d_hid.sum(axis=(0, 1))


def _initial_state(h0, n, hsz, dtype, where, name="h0"):
    """``h0`` as the first row of the state array: zeros if None, else an
    ``(N, H)`` floating array (ValueError naming expected and got)."""
    out = np.zeros((n, hsz), dtype=dtype)
    if h0 is None:
        return out
    h0 = np.asarray(h0)
    if h0.dtype.kind != "f":
        raise TypeError(f"{where}: expected {name} with a floating dtype, "
                        f"got dtype {h0.dtype}")
    if h0.shape != (n, hsz):
        raise ValueError(f"{where}: expected {name} of shape (N, H) = ({n}, {hsz}), "
                         f"got {h0.shape}")
    out[...] = h0
    return out


def rnn_forward(x, W_ih, W_hh, b_ih, b_hh, h0=None):
    """Every hidden state of a tanh RNN. ``x: (N, T, D) -> hs: (N, T, H)``;
    ``h0: (N, H)`` is the state before step 1 (None: zeros)."""
    n, t_len, _ = x.shape
    pre_x = x @ W_ih.T + (b_ih + b_hh)                       # all steps at once
    hs = np.zeros((n, t_len + 1, W_hh.shape[0]), dtype=pre_x.dtype)
    hs[:, 0] = _initial_state(h0, n, W_hh.shape[0], pre_x.dtype, "rnn_forward")
    for t in range(t_len):
        hs[:, t + 1] = np.tanh(pre_x[:, t] + hs[:, t] @ W_hh.T)
    return hs[:, 1:].copy(), (x, hs, W_ih, W_hh)


def rnn_backward(dhs, cache, *, initial_grads=False):
    """BPTT: ``dhs: (N, T, H)`` -> ``(dx, dW_ih, dW_hh, db_ih, db_hh, dh_total)``,
    and ``dh0: (N, H)`` after them if ``initial_grads``."""
    x, hs, W_ih, W_hh = cache
    d_pre = np.zeros_like(dhs)
    dh_next = np.zeros_like(dhs[:, 0])
    dh_total = np.zeros_like(dhs)
    for t in reversed(range(x.shape[1])):
        dh = dhs[:, t] + dh_next                            # from the output and from t + 1
        dh_total[:, t] = dh
        d_pre[:, t] = dh * (1.0 - hs[:, t + 1] ** 2)        # through tanh
        dh_next = d_pre[:, t] @ W_hh                        # to h_{t-1}
    out = (*_weight_grads(x, hs[:, :-1], d_pre, d_pre, W_ih), dh_total)
    return (*out, dh_next) if initial_grads else out


def lstm_forward(x, W_ih, W_hh, b_ih, b_hh, h0=None, c0=None):
    """Every hidden state of an LSTM. ``x: (N, T, D) -> hs: (N, T, H)``;
    ``h0, c0: (N, H)`` are the hidden and cell states before step 1 (None:
    zeros). The cache holds every cell state and activated gate
    (``lstm_trace`` reads them)."""
    n, t_len, _ = x.shape
    hsz = W_hh.shape[1]
    pre_x = x @ W_ih.T + (b_ih + b_hh)
    hs = np.zeros((n, t_len + 1, hsz), dtype=pre_x.dtype)
    cs = np.zeros_like(hs)
    hs[:, 0] = _initial_state(h0, n, hsz, pre_x.dtype, "lstm_forward")
    cs[:, 0] = _initial_state(c0, n, hsz, pre_x.dtype, "lstm_forward", "c0")
    gates = np.zeros((n, t_len, 4 * hsz), dtype=pre_x.dtype)  # activated i, f, g, o
    w_hh_t = np.ascontiguousarray(W_hh.T)
    for t in range(t_len):
        a = pre_x[:, t] + hs[:, t] @ w_hh_t
        act = sigmoid(a)                                     # i, f, o (g replaced below)
        act[:, 2 * hsz:3 * hsz] = np.tanh(a[:, 2 * hsz:3 * hsz])
        i, f, gg, o = np.split(act, 4, axis=1)
        cs[:, t + 1] = f * cs[:, t] + i * gg
        hs[:, t + 1] = o * np.tanh(cs[:, t + 1])
        gates[:, t] = act
    return hs[:, 1:].copy(), (x, hs, cs, gates, W_ih, W_hh)


def lstm_trace(cache) -> dict:
    """The activated gates and states at every step of an ``lstm_forward``,
    each ``(N, T, H)``: keys ``"i"``, ``"f"``, ``"g"``, ``"o"``, ``"c"``, ``"h"``."""
    _, hs, cs, gates, _, W_hh = cache
    hsz = W_hh.shape[1]
    trace = {k: gates[:, :, j * hsz:(j + 1) * hsz] for j, k in enumerate("ifgo")}
    trace.update(c=cs[:, 1:], h=hs[:, 1:])
    return trace


def lstm_backward(dhs, cache, dc_last=None, *, initial_grads=False):
    """BPTT through the LSTM: ``dhs: (N, T, H)`` ->
    ``(dx, dW_ih, dW_hh, db_ih, db_hh, dh_total)``, and ``(dh0, dc0)``, each
    ``(N, H)``, after them if ``initial_grads``. ``dc_last: (N, H)`` is
    dL/dc_T from outside the outputs (None: zero)."""
    x, hs, cs, gates, W_ih, W_hh = cache
    hsz = W_hh.shape[1]
    d_pre = np.zeros_like(gates)
    dh_next = np.zeros_like(dhs[:, 0])
    dc_next = _initial_state(dc_last, x.shape[0], hsz, dhs.dtype, "lstm_backward",
                             "dc_last")
    dh_total = np.zeros_like(dhs)
    for t in reversed(range(x.shape[1])):
        i, f = gates[:, t, :hsz], gates[:, t, hsz:2 * hsz]
        gg, o = gates[:, t, 2 * hsz:3 * hsz], gates[:, t, 3 * hsz:]
        tanh_c = np.tanh(cs[:, t + 1])
        dh = dhs[:, t] + dh_next
        dh_total[:, t] = dh
        dc = dc_next + dh * o * (1.0 - tanh_c ** 2)
        d_pre[:, t] = np.concatenate([dc * gg * i * (1 - i),            # i
                                      dc * cs[:, t] * f * (1 - f),      # f
                                      dc * i * (1 - gg ** 2),           # g
                                      dh * tanh_c * o * (1 - o)],       # o
                                     axis=1)
        dc_next = dc * f
        dh_next = d_pre[:, t] @ W_hh
    out = (*_weight_grads(x, hs[:, :-1], d_pre, d_pre, W_ih), dh_total)
    return (*out, dh_next, dc_next) if initial_grads else out


def gru_forward(x, W_ih, W_hh, b_ih, b_hh, h0=None):
    """Every hidden state of a GRU. ``x: (N, T, D) -> hs: (N, T, H)``;
    ``h0: (N, H)`` is the state before step 1 (None: zeros)."""
    n, t_len, _ = x.shape
    hsz = W_hh.shape[1]
    gi_all = x @ W_ih.T + b_ih
    hs = np.zeros((n, t_len + 1, hsz), dtype=gi_all.dtype)
    hs[:, 0] = _initial_state(h0, n, hsz, gi_all.dtype, "gru_forward")
    keep = np.zeros((n, t_len, 4 * hsz), dtype=gi_all.dtype)    # r, z, n, h W_hn + b_hn
    for t in range(t_len):
        gi, gh = gi_all[:, t], hs[:, t] @ W_hh.T + b_hh
        r = sigmoid(gi[:, :hsz] + gh[:, :hsz])
        z = sigmoid(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
        nn_ = np.tanh(gi[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
        hs[:, t + 1] = (1 - z) * nn_ + z * hs[:, t]
        keep[:, t] = np.concatenate([r, z, nn_, gh[:, 2 * hsz:]], axis=1)
    return hs[:, 1:].copy(), (x, hs, keep, W_ih, W_hh)


def gru_backward(dhs, cache, *, initial_grads=False):
    """BPTT through the GRU: ``dhs: (N, T, H)`` ->
    ``(dx, dW_ih, dW_hh, db_ih, db_hh, dh_total)``, and ``dh0: (N, H)`` after
    them if ``initial_grads``."""
    x, hs, keep, W_ih, W_hh = cache
    hsz = W_hh.shape[1]
    n, t_len = x.shape[:2]
    d_in = np.zeros((n, t_len, 3 * hsz), dtype=dhs.dtype)
    d_hid = np.zeros_like(d_in)
    dh_next = np.zeros_like(dhs[:, 0])
    dh_total = np.zeros_like(dhs)
    for t in reversed(range(t_len)):
        r, z = keep[:, t, :hsz], keep[:, t, hsz:2 * hsz]
        nn_, hn = keep[:, t, 2 * hsz:3 * hsz], keep[:, t, 3 * hsz:]
        h_prev = hs[:, t]
        dh = dhs[:, t] + dh_next
        dh_total[:, t] = dh
        dn_pre = dh * (1 - z) * (1 - nn_ ** 2)
        dz_pre = dh * (h_prev - nn_) * z * (1 - z)
        dr_pre = dn_pre * hn * r * (1 - r)
        d_in[:, t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
        d_hid[:, t] = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
        dh_next = dh * z + d_hid[:, t] @ W_hh
    out = (*_weight_grads(x, hs[:, :-1], d_in, d_hid, W_ih), dh_total)
    return (*out, dh_next) if initial_grads else out
