"""Recurrent layers over whole sequences, with backpropagation through time.

Layouts and names are PyTorch's (single layer, ``batch_first=True``):
``weight_ih_l0: (G H, D)``, ``weight_hh_l0: (G H, H)``, ``bias_ih_l0``,
``bias_hh_l0: (G H,)`` with G = 1 (RNN), 4 (LSTM: gates i, f, g, o) or
3 (GRU: gates r, z, n), so weights copy straight into ``torch.nn.RNN``,
``LSTM`` and ``GRU``. The maths is in ``nnlib.functional.recurrent``.

``forward(x, h0=None)`` (the LSTM: ``forward(x, h0=None, c0=None)``) takes
``x: (N, T, D)`` and the initial state ``h0`` (and cell state ``c0``), each
``(N, H)``, zeros when None, and returns every hidden state, ``(N, T, H)``;
the final state is ``output[:, -1]`` (and ``self.last_cell`` for the LSTM,
whose ``trace`` also holds every gate and cell state). ``backward(grad_out)``
takes dL/d(output) for every step, runs back through time, accumulates the
weight gradients and returns dL/dx; afterwards ``grad_hidden`` holds the total
dL/dh_t at every step, ``(N, T, H)`` (from the output at t and, through the
recurrence, from every later step), and ``grad_h0`` holds dL/dh0, ``(N, H)``
(``grad_c0`` too for the LSTM), whether or not ``h0`` was given. The LSTM's
``backward(grad_out, grad_last_cell=None)`` also takes dL/dc_T, ``(N, H)``,
for a loss that reads the final cell state (an encoder whose ``last_cell``
starts a decoder: pass the decoder's ``grad_c0``; its ``grad_h0`` adds into
``grad_out[:, -1]``). Truncated BPTT passes ``h0=output[:, -1]`` (copied) of
one window to the next and ignores ``grad_h0``: that is the cut.
Gradient clipping is not done here: use ``nnlib.clip_grad_norm`` before the
optimizer step.
"""
from __future__ import annotations

import math

import numpy as np

from .. import init
from .._checks import as_float_array
from ..functional import recurrent as Fr
from ..module import Module, Parameter
from ._twins import register_twin

__all__ = ["RNN", "LSTM", "GRU", "Bidirectional"]


class _Recurrent(Module):
    GATES = 1
    _fn = _dfn = None

    def __init__(self, input_size: int, hidden_size: int, rng=None, dtype=np.float64):
        super().__init__()
        name = type(self).__name__
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected {what} to be a positive integer, got {v!r}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        g, h = self.GATES * hidden_size, hidden_size
        self.weight_ih_l0 = Parameter(np.empty((g, input_size), dtype=dtype))
        self.weight_hh_l0 = Parameter(np.empty((g, h), dtype=dtype))
        self.bias_ih_l0 = Parameter(np.empty(g, dtype=dtype))
        self.bias_hh_l0 = Parameter(np.empty(g, dtype=dtype))
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None):
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every weight and
        bias, as PyTorch, drawn in the order weight_ih, weight_hh, bias_ih, bias_hh."""
        init.fill_uniform(self.parameters(), 1.0 / math.sqrt(self.hidden_size), rng)
        return self

    def _weights(self):
        return (self.weight_ih_l0.data, self.weight_hh_l0.data, self.bias_ih_l0.data,
                self.bias_hh_l0.data)

    def forward(self, x, h0=None):
        """``x: (N, T, D)``, ``h0: (N, H)`` or None (zeros) -> ``(N, T, H)``."""
        return self._forward(x, h0=h0)

    def _forward(self, x, **state):
        x = self._input(x, ndim=3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}.forward: expected x of shape (N, T, "
                             f"{self.input_size}), got {x.shape}")
        state = {k: self._state(v, k, x.shape[0]) for k, v in state.items()}
        hs, cache = type(self)._fn(x, *self._weights(), **state)
        self.cache = cache
        self._after_forward(cache)
        return hs

    def _state(self, v, name, n):
        """Validate an initial state: None, or a finite float ``(N, H)`` array."""
        if v is None:
            return None
        v = as_float_array(v, f"{type(self).__name__}.forward", name)
        if v.shape != (n, self.hidden_size):
            raise ValueError(f"{type(self).__name__}.forward: expected {name} of shape "
                             f"(N, H) = ({n}, {self.hidden_size}), got {v.shape}")
        return v

    def _after_forward(self, cache):
        pass

    def backward(self, grad_out):
        """dL/d(output) ``(N, T, H)`` -> dL/dx ``(N, T, D)``; sets ``grad_hidden``
        and ``grad_h0``."""
        cache = self._cached()
        g = self._grad_out(grad_out, cache[0].shape[:2] + (self.hidden_size,))
        out = type(self)._dfn(g, cache, initial_grads=True)
        self._set_grads(cache, out)
        return out[0]

    def _set_grads(self, cache, out):
        dx, dw_ih, dw_hh, db_ih, db_hh, self.grad_hidden, self.grad_h0 = out
        for p, d in zip(self.parameters(), (dw_ih, dw_hh, db_ih, db_hh)):
            p.accumulate(d)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNN(_Recurrent):
    """h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), h_0 = ``h0``
    (zeros unless given to ``forward``).

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (H, D)``, ``weight_hh_l0: (H, H)``, biases ``(H,)``."""
    _fn, _dfn = Fr.rnn_forward, Fr.rnn_backward


class LSTM(_Recurrent):
    """Gates (i, f, g, o) = (sigma, sigma, tanh, sigma)(x_t W_ih^T + b_ih +
    h_{t-1} W_hh^T + b_hh); c_t = f c_{t-1} + i g; h_t = o tanh(c_t); h_0 = ``h0``,
    c_0 = ``c0`` (zeros unless given to ``forward``).

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (4H, D)``, ``weight_hh_l0: (4H, H)``, biases ``(4H,)``.

    After ``forward``, ``last_cell`` is c_T, ``(N, H)``, and ``trace`` is a dict
    of the activated gates and states at every step, each ``(N, T, H)``:
    ``"i"``, ``"f"``, ``"g"``, ``"o"``, ``"c"``, ``"h"`` (to look inside).
    After ``backward``, ``grad_h0`` and ``grad_c0`` are dL/dh0 and dL/dc0.
    """
    GATES = 4
    _fn, _dfn = Fr.lstm_forward, Fr.lstm_backward

    def forward(self, x, h0=None, c0=None):
        """``x: (N, T, D)``, ``h0, c0: (N, H)`` or None (zeros) -> ``(N, T, H)``."""
        return self._forward(x, h0=h0, c0=c0)

    def backward(self, grad_out, grad_last_cell=None):
        """dL/d(output) ``(N, T, H)`` and optionally dL/dc_T ``(N, H)`` ->
        dL/dx ``(N, T, D)``; sets ``grad_hidden``, ``grad_h0`` and ``grad_c0``."""
        cache = self._cached()
        n, t_len = cache[0].shape[:2]
        g = self._grad_out(grad_out, (n, t_len, self.hidden_size))
        if grad_last_cell is not None:
            grad_last_cell = as_float_array(grad_last_cell, "LSTM.backward",
                                            "grad_last_cell")
            if grad_last_cell.shape != (n, self.hidden_size):
                raise ValueError("LSTM.backward: expected grad_last_cell of shape (N, H) "
                                 f"= ({n}, {self.hidden_size}), got {grad_last_cell.shape}")
        out = Fr.lstm_backward(g, cache, grad_last_cell, initial_grads=True)
        self.grad_c0 = out[-1]
        self._set_grads(cache, out[:-1])
        return out[0]

    def _after_forward(self, cache):
        self.trace = Fr.lstm_trace(cache)
        self.last_cell = self.trace["c"][:, -1].copy()


class GRU(_Recurrent):
    """r, z = sigma(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z});
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)); h_t = (1 - z) n + z h_{t-1},
    h_0 = ``h0`` (zeros unless given to ``forward``).

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (3H, D)``, ``weight_hh_l0: (3H, H)``, biases ``(3H,)``,
    gates in the order r, z, n."""
    GATES = 3
    _fn, _dfn = Fr.gru_forward, Fr.gru_backward


# --- two layers in opposite directions (chapter 5b) -------------------------
# Not exported from nnlib.layers (it has no single torch twin by name: torch
# keeps both directions in one module); tests/test_seq_models.py checks it
# against torch.nn.LSTM/GRU/RNN(bidirectional=True) in float64. A stacked RNN
# needs nothing new: Sequential(LSTM(D, H), LSTM(H, H)) is LSTM(D, H, num_layers=2).
class Bidirectional(Module):
    """[h_fwd_t ; h_bwd_t] with h_fwd from ``forward_layer`` reading x_1..x_T
    and h_bwd from ``backward_layer`` reading x_T..x_1 (both start at zero).

    ``forward(x, lengths=None)``: ``x: (N, T, D) -> (N, T, 2 H)``: the first
    H features of step t are the forward state after x_1..x_t, the last H the
    backward state after x_T..x_t. Children are named ``fwd`` and ``bwd``.

    Padded batches: ``lengths`` (N integers in [1, T]) gives the number of
    real steps of each sequence, the padding after them. The backward
    direction of sequence n then starts at its last real step, x_{L_n}, not
    at the padding, and every output at a padding step is 0, as
    ``torch.nn.utils.rnn.pack_padded_sequence`` with a bidirectional torch
    layer followed by ``pad_packed_sequence`` (checked in float64 in
    ``tests/test_seq_models.py``, outputs and gradients). Without
    ``lengths`` every step counts as real: the padding is read, and it
    changes every backward state of the real steps before it. The final
    states of sequence n are ``out[n, L_n - 1, :H]`` (forward) and
    ``out[n, 0, H:]`` (backward). ``backward`` ignores the gradient at
    padding steps and returns 0 there."""

    def __init__(self, forward_layer, backward_layer):
        super().__init__()
        for what, layer in (("forward_layer", forward_layer),
                            ("backward_layer", backward_layer)):
            if not isinstance(layer, _Recurrent):
                raise TypeError(f"Bidirectional: expected {what} to be an nnlib RNN, "
                                f"LSTM or GRU, got {type(layer).__name__}")
        if type(forward_layer) is not type(backward_layer) or (
                forward_layer.input_size, forward_layer.hidden_size) != (
                backward_layer.input_size, backward_layer.hidden_size):
            raise ValueError(
                "Bidirectional: expected two layers of one type and size, got "
                f"{type(forward_layer).__name__}({forward_layer.input_size}, "
                f"{forward_layer.hidden_size}) and {type(backward_layer).__name__}"
                f"({backward_layer.input_size}, {backward_layer.hidden_size})")
        self.fwd, self.bwd = forward_layer, backward_layer
        self.hidden_size = forward_layer.hidden_size

    @staticmethod
    def _lengths(lengths, n, t_len):
        """Validate ``lengths``: N integers in [1, T]."""
        where = "Bidirectional.forward"
        arr = np.asarray(lengths)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{where}: expected lengths to be integers (the real "
                            f"steps of each sequence), got dtype {arr.dtype}")
        if arr.shape != (n,):
            raise ValueError(f"{where}: expected lengths of shape (N,) = ({n},), "
                             f"one per sequence, got shape {arr.shape}")
        if n and (arr.min() < 1 or arr.max() > t_len):
            bad = arr[(arr < 1) | (arr > t_len)][0]
            raise ValueError(f"{where}: expected every length in [1, T] = "
                             f"[1, {t_len}], got {int(bad)}")
        return arr.astype(np.int64)

    @staticmethod
    def _reverse_index(lengths, t_len):
        """idx[n, t] = L_n - 1 - t for t < L_n, else t: reverses the real steps
        of each sequence and leaves the padding at the end (its own inverse)."""
        t = np.arange(t_len)[None, :]
        lens = lengths[:, None]
        return np.where(t < lens, lens - 1 - t, t)

    def forward(self, x, lengths=None):
        x = self._input(x, ndim=3)
        n, t_len = x.shape[:2]
        if lengths is None:
            h_f = self.fwd(x)
            h_b = self.bwd(x[:, ::-1])[:, ::-1]
            self.cache = (x.shape, None, None)
            return np.concatenate([h_f, h_b], axis=2)
        lengths = self._lengths(lengths, n, t_len)
        idx = self._reverse_index(lengths, t_len)
        rows = np.arange(n)[:, None]
        real = (np.arange(t_len)[None, :] < lengths[:, None])[..., None]
        h_f = self.fwd(x)                      # padding comes after: harmless
        h_b = self.bwd(x[rows, idx])[rows, idx]
        self.cache = (x.shape, idx, real)
        return np.concatenate([h_f, h_b], axis=2) * real

    def backward(self, grad_out):
        shape, idx, real = self._cached()
        g = self._grad_out(grad_out, shape[:2] + (2 * self.hidden_size,))
        hsz = self.hidden_size
        if idx is None:
            dx_b = self.bwd.backward(np.ascontiguousarray(g[:, ::-1, hsz:]))
            dx_f = self.fwd.backward(np.ascontiguousarray(g[:, :, :hsz]))
            return dx_f + dx_b[:, ::-1]
        g = g * real                 # no gradient at the padding: it is not read
        rows = np.arange(shape[0])[:, None]
        dx_b = self.bwd.backward(np.ascontiguousarray(g[rows, idx, hsz:]))
        dx_f = self.fwd.backward(np.ascontiguousarray(g[:, :, :hsz]))
        return (dx_f + dx_b[rows, idx]) * real


def _sequence_output(base_name):
    """torch's recurrent layers return (output, state); the twin returns output."""
    def build(m, nn):
        base = getattr(nn, base_name)

        class Twin(base):
            def forward(self, x):
                return super().forward(x)[0]
        Twin.__name__ = base_name
        return Twin(m.input_size, m.hidden_size, batch_first=True)
    return build


for _cls in (RNN, LSTM, GRU):
    register_twin(_cls, _sequence_output(_cls.__name__))
