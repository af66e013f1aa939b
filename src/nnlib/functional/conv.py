"""2-D convolution and pooling as pure functions, vectorised, in PyTorch's
NCHW layout: ``y, cache = conv2d_forward(x, W, b, ...)``,
``dx, dW, db = conv2d_backward(dy, cache)``.

No Python loop runs over the batch, the channels or the output pixels: each
forward pass takes a strided *view* of the input's windows
(``sliding_window_view``), lays it out once as a matrix ("im2col") and
multiplies it with the weights; each backward pass is two matrix products plus
a loop over the k x k kernel taps only, adding one strided slice per tap (no
``np.add.at``). Pooling uses the same window view.

Output size, as in PyTorch (rounding down):
    H_out = floor((H + 2 padding - dilation (k - 1) - 1) / stride) + 1
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv2d_forward", "conv2d_backward", "output_size", "maxpool2d_forward",
           "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward", "pair"]


def pair(v, name, where, minimum):
    """``v`` as a pair of ints >= ``minimum`` (an int means (v, v)), or an error
    naming ``where`` and ``name``."""
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
    stride, padding = pair(stride, "stride", where, 1), pair(padding, "padding", where, 0)
    dilation = pair(dilation, "dilation", where, 1)
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


def _pool_windows(x, kernel, stride, padding, fill, where):
    out_hw = _out_hw(x, kernel, stride, padding, (1, 1), where)
    (ph, pw) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return _windows(xp, kernel, stride, (1, 1), out_hw)


def maxpool2d_forward(x, kernel, stride, padding=(0, 0), where: str = "maxpool2d"):
    """Maximum over each window; padding counts as -infinity.
    ``x: (N, C, H, W) -> (N, C, H_out, W_out)``; ``kernel``, ``stride``,
    ``padding``: pairs of ints. The cache keeps the arg-max of every window."""
    win = _pool_windows(x, kernel, stride, padding, -np.inf, where)
    n, c, ho, wo, kh, kw = win.shape
    flat = win.reshape(n, c, ho, wo, kh * kw)
    arg = flat.argmax(axis=-1)                           # first maximum wins
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (x.shape, arg, kernel, stride, padding)


def maxpool2d_backward(dy, cache):
    """Each window's gradient goes wholly to its (first) maximum.
    ``dy: (N, C, H_out, W_out) -> dx: (N, C, H, W)``."""
    x_shape, arg, kernel, stride, padding = cache
    kh, kw = kernel
    taps = np.arange(kh * kw).reshape(kh, kw)
    dwin = (arg[..., None, None] == taps) * dy[..., None, None]
    return _scatter_taps(dwin, x_shape, kernel, stride, padding, (1, 1), dy.dtype)


def avgpool2d_forward(x, kernel, stride, padding=(0, 0), where: str = "avgpool2d"):
    """Mean over each window; padded zeros count in the mean (PyTorch's
    ``count_include_pad=True``). ``x: (N, C, H, W) -> (N, C, H_out, W_out)``."""
    win = _pool_windows(x, kernel, stride, padding, 0.0, where)
    return win.mean(axis=(-2, -1)), (x.shape, kernel, stride, padding)


def avgpool2d_backward(dy, cache):
    """Each window's gradient spread evenly over its k_h k_w taps.
    ``dy: (N, C, H_out, W_out) -> dx: (N, C, H, W)``."""
    x_shape, kernel, stride, padding = cache
    kh, kw = kernel
    dwin = np.broadcast_to((dy / (kh * kw))[..., None, None], dy.shape + (kh, kw))
    return _scatter_taps(dwin, x_shape, kernel, stride, padding, (1, 1), dy.dtype)


def _adaptive_bounds(size, out):
    """PyTorch's adaptive windows: [floor(i size / out), ceil((i + 1) size / out))."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d_forward(x, output_size):
    """Average over windows chosen so the output is ``output_size`` = (H_o, W_o)
    whatever the input's size (windows as PyTorch's, which may overlap);
    ``(1, 1)`` is global average pooling. ``x: (N, C, H, W) -> (N, C, H_o, W_o)``."""
    n, c, h, w = x.shape
    oh, ow = output_size
    rows, cols = _adaptive_bounds(h, oh), _adaptive_bounds(w, ow)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return y, (x.shape, rows, cols)


def adaptive_avg_pool2d_backward(dy, cache):
    """Each output's gradient spread evenly over its window.
    ``dy: (N, C, H_o, W_o) -> dx: (N, C, H, W)``."""
    x_shape, rows, cols = cache
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            dx[:, :, r0:r1, c0:c1] += (dy[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[..., None, None]
    return dx
