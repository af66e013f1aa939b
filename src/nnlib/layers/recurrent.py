"""Recurrent layers over whole sequences, with backpropagation through time.

Layouts and names are PyTorch's (single layer, ``batch_first=True``):
``weight_ih_l0: (G H, D)``, ``weight_hh_l0: (G H, H)``, ``bias_ih_l0``,
``bias_hh_l0: (G H,)`` with G = 1 (RNN), 4 (LSTM: gates i, f, g, o) or
3 (GRU: gates r, z, n), so weights copy straight into ``torch.nn.RNN``,
``LSTM`` and ``GRU``.

``forward(x)`` takes ``x: (N, T, D)`` and returns every hidden state,
``(N, T, H)``; the final state is ``output[:, -1]`` (and ``self.last_cell`` for
the LSTM, whose ``trace`` also holds every gate and cell state). ``backward(grad_out)`` takes dL/d(output) for every step, runs back
through time, accumulates the weight gradients and returns dL/dx; afterwards
``grad_hidden`` holds the total dL/dh_t at every step, ``(N, T, H)`` (from the
output at t and, through the recurrence, from every later step). Gradient
clipping is not done here: use ``nnlib.clip_grad_norm`` before the optimizer step.
"""
from __future__ import annotations

import math

import numpy as np

from .. import init
from ..module import Module, Parameter
from .activations import sigmoid

__all__ = ["RNN", "LSTM", "GRU"]


class _Recurrent(Module):
    GATES = 1

    def __init__(self, input_size: int, hidden_size: int, rng=None, dtype=np.float64):
        super().__init__()
        name = type(self).__name__
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected {what} to be a positive integer, got {v!r}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        g, h = self.GATES * hidden_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        u = lambda shape: init.uniform(shape, -bound, bound, rng=rng, dtype=dtype)  # noqa: E731
        self.weight_ih_l0 = Parameter(u((g, input_size)))
        self.weight_hh_l0 = Parameter(u((g, h)))
        self.bias_ih_l0 = Parameter(u((g,)))
        self.bias_hh_l0 = Parameter(u((g,)))

    def _sequence(self, x):
        x = self._input(x, ndim=3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}.forward: expected x of shape (N, T, "
                             f"{self.input_size}), got {x.shape}")
        return x

    def _accumulate(self, x, h_prev, d_in, d_hid):
        """Weight gradients from all steps at once: d_in, d_hid are (N, T, G H)."""
        g = d_in.shape[2]                  # (N T, G H)^T @ (N T, D): one GEMM, not einsum
        self.weight_ih_l0.grad += d_in.reshape(-1, g).T @ x.reshape(-1, x.shape[2])
        self.weight_hh_l0.grad += d_hid.reshape(-1, g).T @ h_prev.reshape(-1, h_prev.shape[2])
        self.bias_ih_l0.grad += d_in.sum(axis=(0, 1))
        self.bias_hh_l0.grad += d_hid.sum(axis=(0, 1))
        return d_in @ self.weight_ih_l0.data                     # dL/dx, (N, T, D)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNN(_Recurrent):
    """h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), h_0 = 0.

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (H, D)``, ``weight_hh_l0: (H, H)``, biases ``(H,)``."""

    def forward(self, x):
        x = self._sequence(x)
        n, t_len, _ = x.shape
        w_hh, b = self.weight_hh_l0.data, self.bias_ih_l0.data + self.bias_hh_l0.data
        pre_x = x @ self.weight_ih_l0.data.T + b                 # all steps at once
        hs = np.zeros((n, t_len + 1, self.hidden_size), dtype=pre_x.dtype)
        for t in range(t_len):
            hs[:, t + 1] = np.tanh(pre_x[:, t] + hs[:, t] @ w_hh.T)
        self.cache = (x, hs)
        return hs[:, 1:].copy()

    def backward(self, grad_out):
        x, hs = self._cached()
        g = self._grad_out(grad_out, hs[:, 1:].shape)
        w_hh = self.weight_hh_l0.data
        d_pre = np.zeros_like(g)
        dh_next = np.zeros_like(g[:, 0])
        self.grad_hidden = np.zeros_like(g)
        for t in reversed(range(x.shape[1])):
            dh = g[:, t] + dh_next                               # from the output and from t + 1
            self.grad_hidden[:, t] = dh
            d_pre[:, t] = dh * (1.0 - hs[:, t + 1] ** 2)         # through tanh
            dh_next = d_pre[:, t] @ w_hh                         # to h_{t-1}
        return self._accumulate(x, hs[:, :-1], d_pre, d_pre)


class LSTM(_Recurrent):
    """Gates (i, f, g, o) = (sigma, sigma, tanh, sigma)(x_t W_ih^T + b_ih +
    h_{t-1} W_hh^T + b_hh); c_t = f c_{t-1} + i g; h_t = o tanh(c_t); h_0 = c_0 = 0.

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (4H, D)``, ``weight_hh_l0: (4H, H)``, biases ``(4H,)``.

    After ``forward``, ``last_cell`` is c_T, ``(N, H)``, and ``trace`` is a dict
    of the activated gates and states at every step, each ``(N, T, H)``:
    ``"i"``, ``"f"``, ``"g"``, ``"o"``, ``"c"``, ``"h"`` (to look inside).
    """
    GATES = 4

    def forward(self, x):
        x = self._sequence(x)
        n, t_len, _ = x.shape
        hsz = self.hidden_size
        w_hh, b = self.weight_hh_l0.data, self.bias_ih_l0.data + self.bias_hh_l0.data
        pre_x = x @ self.weight_ih_l0.data.T + b
        hs = np.zeros((n, t_len + 1, hsz), dtype=pre_x.dtype)
        cs = np.zeros_like(hs)
        gates = np.zeros((n, t_len, 4 * hsz), dtype=pre_x.dtype)  # activated i, f, g, o
        w_hh_t = np.ascontiguousarray(w_hh.T)
        for t in range(t_len):
            a = pre_x[:, t] + hs[:, t] @ w_hh_t
            act = sigmoid(a)                                     # i, f, o (g replaced below)
            act[:, 2 * hsz:3 * hsz] = np.tanh(a[:, 2 * hsz:3 * hsz])
            i, f, gg, o = np.split(act, 4, axis=1)
            cs[:, t + 1] = f * cs[:, t] + i * gg
            hs[:, t + 1] = o * np.tanh(cs[:, t + 1])
            gates[:, t] = act
        self.cache = (x, hs, cs, gates)
        self.last_cell = cs[:, -1].copy()
        self.trace = {k: gates[:, :, j * hsz:(j + 1) * hsz] for j, k in enumerate("ifgo")}
        self.trace.update(c=cs[:, 1:], h=hs[:, 1:])
        return hs[:, 1:].copy()

    def backward(self, grad_out):
        x, hs, cs, gates = self._cached()
        g = self._grad_out(grad_out, hs[:, 1:].shape)
        hsz, w_hh = self.hidden_size, self.weight_hh_l0.data
        d_pre = np.zeros_like(gates)
        dh_next = np.zeros_like(g[:, 0])
        dc_next = np.zeros_like(g[:, 0])
        self.grad_hidden = np.zeros_like(g)
        for t in reversed(range(x.shape[1])):
            i, f = gates[:, t, :hsz], gates[:, t, hsz:2 * hsz]
            gg, o = gates[:, t, 2 * hsz:3 * hsz], gates[:, t, 3 * hsz:]
            tanh_c = np.tanh(cs[:, t + 1])
            dh = g[:, t] + dh_next
            self.grad_hidden[:, t] = dh
            dc = dc_next + dh * o * (1.0 - tanh_c ** 2)
            d_pre[:, t] = np.concatenate([dc * gg * i * (1 - i),            # i
                                          dc * cs[:, t] * f * (1 - f),      # f
                                          dc * i * (1 - gg ** 2),           # g
                                          dh * tanh_c * o * (1 - o)],       # o
                                         axis=1)
            dc_next = dc * f
            dh_next = d_pre[:, t] @ w_hh
        return self._accumulate(x, hs[:, :-1], d_pre, d_pre)


class GRU(_Recurrent):
    """r, z = sigma(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z});
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)); h_t = (1 - z) n + z h_{t-1}.

    ``x: (N, T, D) -> (N, T, H)``, every hidden state (``batch_first``);
    ``weight_ih_l0: (3H, D)``, ``weight_hh_l0: (3H, H)``, biases ``(3H,)``,
    gates in the order r, z, n."""
    GATES = 3

    def forward(self, x):
        x = self._sequence(x)
        n, t_len, _ = x.shape
        hsz = self.hidden_size
        gi_all = x @ self.weight_ih_l0.data.T + self.bias_ih_l0.data
        w_hh, b_hh = self.weight_hh_l0.data, self.bias_hh_l0.data
        hs = np.zeros((n, t_len + 1, hsz), dtype=gi_all.dtype)
        keep = np.zeros((n, t_len, 4 * hsz), dtype=gi_all.dtype)    # r, z, n, h W_hn + b_hn
        for t in range(t_len):
            gi, gh = gi_all[:, t], hs[:, t] @ w_hh.T + b_hh
            r = sigmoid(gi[:, :hsz] + gh[:, :hsz])
            z = sigmoid(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
            nn_ = np.tanh(gi[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
            hs[:, t + 1] = (1 - z) * nn_ + z * hs[:, t]
            keep[:, t] = np.concatenate([r, z, nn_, gh[:, 2 * hsz:]], axis=1)
        self.cache = (x, hs, keep)
        return hs[:, 1:].copy()

    def backward(self, grad_out):
        x, hs, keep = self._cached()
        g = self._grad_out(grad_out, hs[:, 1:].shape)
        hsz, w_hh = self.hidden_size, self.weight_hh_l0.data
        n, t_len = x.shape[:2]
        d_in = np.zeros((n, t_len, 3 * hsz), dtype=g.dtype)
        d_hid = np.zeros_like(d_in)
        dh_next = np.zeros_like(g[:, 0])
        self.grad_hidden = np.zeros_like(g)
        for t in reversed(range(t_len)):
            r, z = keep[:, t, :hsz], keep[:, t, hsz:2 * hsz]
            nn_, hn = keep[:, t, 2 * hsz:3 * hsz], keep[:, t, 3 * hsz:]
            h_prev = hs[:, t]
            dh = g[:, t] + dh_next
            self.grad_hidden[:, t] = dh
            dn_pre = dh * (1 - z) * (1 - nn_ ** 2)
            dz_pre = dh * (h_prev - nn_) * z * (1 - z)
            dr_pre = dn_pre * hn * r * (1 - r)
            d_in[:, t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
            d_hid[:, t] = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
            dh_next = dh * z + d_hid[:, t] @ w_hh
        return self._accumulate(x, hs[:, :-1], d_in, d_hid)
