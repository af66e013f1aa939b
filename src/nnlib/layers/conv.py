"""2-D convolution and pooling in NumPy, vectorised, in PyTorch's NCHW layout.

No Python loop runs over the batch, the channels or the output pixels: each
forward pass takes a strided *view* of the input's windows
(``sliding_window_view``), lays it out once as a matrix and multiplies it with
the weights; each backward pass is two matrix products plus a loop over the
k x k kernel taps only, adding one strided slice per tap (no ``np.add.at``).
Pooling uses the same window view.

Output size, as in PyTorch (rounding down):
    H_out = floor((H + 2 padding - dilation (k - 1) - 1) / stride) + 1
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import init
from ..module import Module, Parameter

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "conv2d_forward",
           "conv2d_backward", "output_size"]


def _pair(v, name, where, minimum):
    v = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(v) != 2 or not all(isinstance(a, (int, np.integer)) and a >= minimum for a in v):
        raise ValueError(f"{where}: expected {name} to be an integer >= {minimum} or a pair "
                         f"of them, got {v!r}")
    return int(v[0]), int(v[1])


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                dilation: int = 1) -> int:
    """floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1.
    One spatial size (an int, H or W) in, the output's size out."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(xp, kernel, stride, dilation, out_hw):
    """View of shape (N, C, H_out, W_out, kh, kw) over the padded input."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    eff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = sliding_window_view(xp, eff, axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]
    return win[:, :, :out_hw[0], :out_hw[1]]


def _check_input(x, where, channels=None):
    if x.ndim != 4:
        raise ValueError(f"{where}: expected x of shape (N, C, H, W), got {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{where}: expected x with {channels} channels, shape (N, {channels}, "
                         f"H, W), got {x.shape}")


def _out_hw(x, kernel, stride, padding, dilation, where):
    out = tuple(output_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i])
                for i in range(2))
    if min(out) < 1:
        raise ValueError(f"{where}: input {x.shape[2]}x{x.shape[3]} is too small for kernel "
                         f"{kernel}, padding {padding}, dilation {dilation}: the output "
                         f"would be {out[0]}x{out[1]}")
    return out


def _scatter_taps(dwin, x_shape, kernel, stride, padding, dilation, dtype):
    """Sum window gradients (N, C, H_out, W_out, kh, kw) back onto the input."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = dwin.shape[2:4]
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                j * dw: j * dw + sw * (wo - 1) + 1: sw] += dwin[..., i, j]
    return dxp[:, :, ph: ph + h, pw: pw + w]


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """y = x * weight + bias (cross-correlation, as every framework computes it).

    ``x: (N, C_in, H, W)``, ``weight: (C_out, C_in, kh, kw)`` ->
    ``y: (N, C_out, H_out, W_out)``; returns ``(y, cache)`` for ``conv2d_backward``.

    The windows view is copied once into a matrix with one row per output
    pixel, ``cols: (N H_out W_out, C_in kh kw)`` ("im2col"); then
    ``y = cols @ weight^T`` is one matrix product. ``cols`` is kept for backward.
    """
    where = "conv2d"
    kernel = weight.shape[2:]
    stride, padding = _pair(stride, "stride", where, 1), _pair(padding, "padding", where, 0)
    dilation = _pair(dilation, "dilation", where, 1)
    out_hw = _out_hw(x, kernel, stride, padding, dilation, where)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    win = _windows(xp, kernel, stride, dilation, out_hw)        # (N, C, Ho, Wo, kh, kw)
    n, c_out = x.shape[0], weight.shape[0]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_hw[0] * out_hw[1], -1)
    out = cols @ weight.reshape(c_out, -1).T                      # (N Ho Wo, C_out)
    if bias is not None:
        out += bias
    y = np.ascontiguousarray(out.reshape(n, *out_hw, c_out).transpose(0, 3, 1, 2))
    return y, (x.shape, cols, weight, kernel, stride, padding, dilation)


def conv2d_backward(dy, cache):
    """Gradients ``(dx, dweight, dbias)`` of a loss given ``dy = dL/dy``.

    With ``g = dy`` as a matrix (one row per output pixel): dbias = column sums
    of g; dweight = g^T cols; the windows' gradient g @ weight is added back onto
    the pixels each window came from, one kernel tap at a time.
    """
    x_shape, cols, weight, kernel, stride, padding, dilation = cache
    n, c_out, ho, wo = dy.shape
    g = dy.transpose(0, 2, 3, 1).reshape(-1, c_out)               # (N Ho Wo, C_out)
    db = g.sum(axis=0)
    dw = (g.T @ cols).reshape(weight.shape)
    dcols = g @ weight.reshape(c_out, -1)                         # (N Ho Wo, C_in kh kw)
    dwin = dcols.reshape(n, ho, wo, x_shape[1], *kernel).transpose(0, 3, 1, 2, 4, 5)
    dx = _scatter_taps(dwin, x_shape, kernel, stride, padding, dilation, dy.dtype)
    return dx, dw, db


class Conv2d(Module):
    """``x: (N, C_in, H, W) -> (N, C_out, H_out, W_out)``, PyTorch's ``nn.Conv2d``
    (no groups). ``weight: (C_out, C_in, kh, kw)``, ``bias: (C_out,)``, both
    initialised from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in kh kw."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, bias: bool = True, rng=None, dtype=np.float64):
        super().__init__()
        where = "Conv2d"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{where}: expected {name} to be a positive integer, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", where, 1)
        self.stride = _pair(stride, "stride", where, 1)
        self.padding = _pair(padding, "padding", where, 0)
        self.dilation = _pair(dilation, "dilation", where, 1)
        shape = (out_channels, in_channels, *self.kernel_size)
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        self.weight = Parameter(init.uniform(shape, -bound, bound, rng=rng, dtype=dtype))
        self.bias = Parameter(init.uniform((out_channels,), -bound, bound, rng=rng,
                                           dtype=dtype)) if bias else None

    def forward(self, x):
        x = self._input(x)
        _check_input(x, "Conv2d.forward", self.in_channels)
        y, cache = conv2d_forward(x, self.weight.data,
                                  None if self.bias is None else self.bias.data,
                                  self.stride, self.padding, self.dilation)
        self.cache = cache
        self._out_shape = y.shape
        return y

    def backward(self, grad_out):
        cache = self._cached()
        g = self._grad_out(grad_out, self._out_shape)
        dx, dw, db = conv2d_backward(g, cache)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        where = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", where, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", where, 1)
        self.padding = _pair(padding, "padding", where, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{where}: expected padding at most half the kernel size "
                             f"(as PyTorch), got padding {self.padding} for kernel "
                             f"{self.kernel_size}")

    def _prepare(self, x, fill):
        x = self._input(x)
        where = f"{type(self).__name__}.forward"
        _check_input(x, where)
        out_hw = _out_hw(x, self.kernel_size, self.stride, self.padding, (1, 1), where)
        (ph, pw) = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
        return x, _windows(xp, self.kernel_size, self.stride, (1, 1), out_hw)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window; padding counts as -infinity. Where a window
    holds several equal maxima, the first in row-major order receives the whole
    gradient, as in PyTorch.

    ``x: (N, C, H, W) -> (N, C, H_out, W_out)``, sizes by ``output_size``;
    ``stride`` defaults to ``kernel_size``."""

    def forward(self, x):
        x, win = self._prepare(x, -np.inf)
        n, c, ho, wo, kh, kw = win.shape
        flat = win.reshape(n, c, ho, wo, kh * kw)
        arg = flat.argmax(axis=-1)                           # first maximum wins
        y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        self.cache = (x.shape, arg)
        return y

    def backward(self, grad_out):
        x_shape, arg = self._cached()
        g = self._grad_out(grad_out, arg.shape)
        kh, kw = self.kernel_size
        taps = np.arange(kh * kw).reshape(kh, kw)
        dwin = (arg[..., None, None] == taps) * g[..., None, None]
        return _scatter_taps(dwin, x_shape, self.kernel_size, self.stride, self.padding,
                             (1, 1), g.dtype)


class AvgPool2d(_Pool2d):
    """Mean over each window; padded zeros count in the mean (PyTorch's default
    ``count_include_pad=True``).

    ``x: (N, C, H, W) -> (N, C, H_out, W_out)``, sizes by ``output_size``;
    ``stride`` defaults to ``kernel_size``."""

    def forward(self, x):
        x, win = self._prepare(x, 0.0)
        y = win.mean(axis=(-2, -1))
        self.cache = x.shape
        self._out_shape = y.shape
        return y

    def backward(self, grad_out):
        x_shape = self._cached()
        g = self._grad_out(grad_out, self._out_shape)
        kh, kw = self.kernel_size
        dwin = np.broadcast_to((g / (kh * kw))[..., None, None], g.shape + (kh, kw))
        return _scatter_taps(dwin, x_shape, self.kernel_size, self.stride, self.padding,
                             (1, 1), g.dtype)


class Flatten(Module):
    """``(N, d1, d2, ...) -> (N, d1 d2 ...)``, as ``nn.Flatten()``."""

    def forward(self, x):
        x = self._input(x, min_ndim=2)
        self.cache = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        shape = self._cached()
        g = self._grad_out(grad_out, (shape[0], int(np.prod(shape[1:]))))
        return g.reshape(shape)
