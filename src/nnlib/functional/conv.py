"""2-D convolution and pooling as pure functions, vectorised, in PyTorch's
NCHW layout: ``y, cache = conv2d_forward(x, W, b, ...)``,
``dx, dW, db = conv2d_backward(dy, cache)``.

No Python loop runs over single images, channels or output pixels: each
forward pass takes a strided *view* of the input's windows
(``sliding_window_view``), lays it out once as a matrix with one column per
output pixel ("im2col") and multiplies the weights with it; each backward pass
is two matrix products plus a loop over the k x k kernel taps, adding one slice
per tap (no ``np.add.at``). The matrices are laid out so that the copies and
additions run over contiguous memory, and the products are made a few blocks
of images or channels at a time (see ``_im2col``, ``_col2im_stride1``).
Pooling uses the same window view.

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
    """View of shape (A, B, H_out, W_out, kh, kw) over the padded input
    ``xp: (A, B, H + 2p, W + 2p)`` -- (N, C) for pooling, (C, N) for im2col."""
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


def _add_taps(dxp, taps, kernel, stride, dilation, out_hw):
    """``dxp[..., rows of tap (i, j)] += taps(i, j)`` for every kernel tap: the
    windows' gradients summed back onto the (padded) pixels they came from; the
    last two axes of ``dxp`` are H and W."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    ho, wo = out_hw
    for i in range(kh):
        for j in range(kw):
            dxp[..., i * dh: i * dh + sh * (ho - 1) + 1: sh,
                j * dw: j * dw + sw * (wo - 1) + 1: sw] += taps(i, j)


def _scatter_taps(dwin, x_shape, kernel, stride, padding, dilation, dtype):
    """Sum window gradients (N, C, H_out, W_out, kh, kw) back onto the input."""
    n, c, h, w = x_shape
    (ph, pw) = padding
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    _add_taps(dxp, lambda i, j: dwin[..., i, j], kernel, stride, dilation, dwin.shape[2:4])
    return dxp[:, :, ph: ph + h, pw: pw + w]


# conv2d_forward makes its output a block of images at a time, conv2d_backward
# the windows' gradient a block of input channels at a time, each block's matrix
# product at most this many bytes: few enough products (each a synchronisation of
# the BLAS threads, which is slow on a busy machine), each small enough to stay in
# the cache for the step that follows and for its memory to be reused from call
# to call rather than mapped afresh (glibc maps blocks over 32 MB anew, page by
# page). Measured on the benchmark's cases (benchmarks/conv_speed.py).
_FORWARD_BLOCK_BYTES = 8 << 20
_BACKWARD_BLOCK_BYTES = 16 << 20


def _channels_last(channels, kernel, stride, dilation, out_w):
    """Whether ``_im2col`` copies the windows from a channels-last copy of the
    input: there a window row of all channels, kw C numbers (C if dilated), is
    contiguous; channels first, a tap's row of output pixels, W_out numbers (1
    if strided). The longer runs copy faster; 1 x 1 kernels stay channels first."""
    if tuple(kernel) == (1, 1):
        return False
    return (channels * (kernel[1] if dilation[1] == 1 else 1)
            > (out_w if stride[1] == 1 else 1))


def _im2col(x, kernel, stride, padding, dilation, out_hw, channels_last):
    """The input's windows as one matrix ``cols: (C kh kw, N H_out W_out)``,
    one column per output pixel (n, h, w), one row per tap of a channel: rows
    in the order (c, i, j) -- channel, kernel row, kernel column -- or, with
    ``channels_last``, (i, j, c).

    The padded input is first copied channels first, (C, N, H, W), or
    channels last, (N, H, W, C) (see ``_channels_last``); the windows view of
    that copy is then copied once into ``cols`` -- which, channels last, is the
    transpose of a C-contiguous (N H_out W_out, kh kw C) array."""
    n, c, h, w = x.shape
    (ph, pw) = padding
    if channels_last:
        xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
        xp[:, ph: ph + h, pw: pw + w] = x.transpose(0, 2, 3, 1)
        win = _windows(xp.transpose(0, 3, 1, 2), kernel, stride, dilation, out_hw)
        cols = np.empty((n, *out_hw, *kernel, c), dtype=x.dtype)
        cols[...] = win.transpose(0, 2, 3, 4, 5, 1)                 # (N, Ho, Wo, kh, kw, C)
        return cols.reshape(n * out_hw[0] * out_hw[1], -1).T
    xt = x.transpose(1, 0, 2, 3)                                  # (C, N, H, W) view
    if ph or pw:
        xp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        xp[:, :, ph: ph + h, pw: pw + w] = xt
    else:
        xp = xt
    win = _windows(xp, kernel, stride, dilation, out_hw)          # (C, N, Ho, Wo, kh, kw)
    cols = np.empty((c, *kernel, n, *out_hw), dtype=x.dtype)
    cols[...] = win.transpose(0, 4, 5, 1, 2, 3)
    return cols.reshape(c * kernel[0] * kernel[1], -1)


def _col2im(dcols, x_shape, kernel, stride, padding, dilation, out_hw):
    """The adjoint of channels-first ``_im2col``: ``dcols: (C kh kw, N H_out
    W_out)`` summed back onto the pixels each entry came from, one kernel tap
    at a time, ``-> dx: (N, C, H, W)``."""
    n, c, h, w = x_shape
    (ph, pw) = padding
    taps = dcols.reshape(c, *kernel, n, *out_hw)
    dxp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    _add_taps(dxp, lambda i, j: taps[:, i, j], kernel, stride, dilation, out_hw)
    dx = np.empty(x_shape, dtype=dcols.dtype)
    dx[...] = dxp[:, :, ph: ph + h, pw: pw + w].transpose(1, 0, 2, 3)
    return dx


def _col2im_stride1(dy, wt, x_shape, kernel, padding, dilation):
    """``_col2im(wt @ g)`` for stride 1, by long contiguous additions.

    ``g`` is laid out on the padded input's width, (C_out, N, H_out, W + 2p),
    the extra columns zero; then the gradient of tap (i, j) of all the windows
    of one image and channel is a single run of numbers to add onto the padded
    input's flattened plane, shifted by i dh (W + 2p) + j dw (the zero columns
    land on the start of the next row, adding nothing). The product
    ``wt @ g`` is made a block of input channels at a time (see
    ``_BACKWARD_BLOCK_BYTES``), each block's taps added while still in the cache."""
    n, c, h, w = x_shape
    (kh, kw), (ph, pw), (dh, dw) = kernel, padding, dilation
    c_out, ho, wo = dy.shape[1:]
    hp, wp = h + 2 * ph, w + 2 * pw
    gw = np.zeros((c_out, n, ho, wp), dtype=dy.dtype)
    gw[..., :wo] = dy.transpose(1, 0, 2, 3)
    gw = gw.reshape(c_out, -1)                                    # (C_out, N Ho Wp)
    dtype = np.result_type(wt, gw)
    dxp = np.zeros((c, n, hp * wp), dtype=dtype)
    run = (ho - 1) * wp + wo            # up to the last real column of the last row
    per_channel = kh * kw * gw.shape[1]
    step = max(1, _BACKWARD_BLOCK_BYTES // (per_channel * dtype.itemsize))
    buf = np.empty(min(c, step) * per_channel, dtype=dtype)
    for c0 in range(0, c, step):
        c1 = min(c, c0 + step)
        taps = buf[: (c1 - c0) * per_channel].reshape((c1 - c0) * kh * kw, -1)
        np.matmul(wt[c0 * kh * kw: c1 * kh * kw], gw, out=taps)
        taps = taps.reshape(c1 - c0, kh, kw, n, ho * wp)
        for i in range(kh):
            for j in range(kw):
                start = i * dh * wp + j * dw
                dxp[c0:c1, :, start: start + run] += taps[:, i, j, :, :run]
    dx = np.empty(x_shape, dtype=dtype)
    dx[...] = dxp.reshape(c, n, hp, wp)[:, :, ph: ph + h, pw: pw + w].transpose(1, 0, 2, 3)
    return dx


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """y = x * weight + bias (cross-correlation, as every framework computes it).

    ``x: (N, C_in, H, W)``, ``weight: (C_out, C_in, kh, kw)`` ->
    ``y: (N, C_out, H_out, W_out)``; returns ``(y, cache)`` for ``conv2d_backward``.

    The windows view is copied once into a matrix with one column per output
    pixel, ``cols: (C_in kh kw, N H_out W_out)`` ("im2col", see ``_im2col``);
    then ``weight (C_out, C_in kh kw) @ cols`` is one matrix product, whose
    rows are the output channels. ``cols`` is kept for backward.
    """
    where = "conv2d"
    kernel = weight.shape[2:]
    stride, padding = pair(stride, "stride", where, 1), pair(padding, "padding", where, 0)
    dilation = pair(dilation, "dilation", where, 1)
    out_hw = _out_hw(x, kernel, stride, padding, dilation, where)
    n, c_out = x.shape[0], weight.shape[0]
    last = _channels_last(x.shape[1], kernel, stride, dilation, out_hw[1])
    cols = _im2col(x, kernel, stride, padding, dilation, out_hw, last)  # (C kh kw, N Ho Wo)
    w2 = (weight.transpose(0, 2, 3, 1) if last else weight).reshape(c_out, -1)
    pixels = out_hw[0] * out_hw[1]
    y = np.empty((n, c_out, *out_hw), dtype=np.result_type(x.dtype, weight.dtype))
    step = max(1, _FORWARD_BLOCK_BYTES // (c_out * pixels * y.itemsize))  # images
    buf = np.empty(c_out * min(n, step) * pixels, dtype=y.dtype)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        out = buf[: c_out * (n1 - n0) * pixels].reshape(c_out, -1)
        np.matmul(w2, cols[:, n0 * pixels: n1 * pixels], out=out)   # (C_out, their pixels)
        out = out.reshape(c_out, n1 - n0, pixels).transpose(1, 0, 2)
        dest = y[n0:n1].reshape(out.shape)     # the bias added while going back to NCHW
        if bias is None:
            dest[...] = out
        else:
            np.add(out, bias[:, None], out=dest)
    return y, (x.shape, cols, weight, kernel, stride, padding, dilation)


def conv2d_backward(dy, cache):
    """Gradients ``(dx, dweight, dbias)`` of a loss given ``dy = dL/dy``.

    With ``g = dy`` as a matrix (one row per output channel, one column per
    output pixel): dbias = row sums of g; dweight = g cols^T; the windows'
    gradient weight^T g is added back onto the pixels each window came from,
    one kernel tap at a time (see ``_col2im``, ``_col2im_stride1``).
    """
    x_shape, cols, weight, kernel, stride, padding, dilation = cache
    n, c_out, ho, wo = dy.shape
    c = x_shape[1]
    g = np.empty((c_out, n, ho, wo), dtype=dy.dtype)
    g[...] = dy.transpose(1, 0, 2, 3)
    g = g.reshape(c_out, -1)                                      # (C_out, N Ho Wo)
    db = g.sum(axis=1)
    # dweight = g cols^T, columns in the order of cols' rows; made as its transpose
    # when that has more rows than columns: so OpenBLAS's two threads wait on each
    # other far less on a busy machine (measured on benchmarks/conv_speed.py)
    dw = (cols @ g.T).T if cols.shape[0] > c_out else g @ cols.T  # (C_out, C_in kh kw)
    if _channels_last(c, kernel, stride, dilation, wo):
        dw = dw.reshape(c_out, *kernel, c).transpose(0, 3, 1, 2)
    dw = np.ascontiguousarray(dw).reshape(weight.shape)
    wt = weight.reshape(c_out, -1).T                              # (C_in kh kw, C_out)
    if tuple(stride) == (1, 1) and c * kernel[0] * kernel[1] >= c_out:
        dx = _col2im_stride1(dy, wt, x_shape, kernel, padding, dilation)
    else:
        dx = _col2im(wt @ g, x_shape, kernel, stride, padding, dilation, (ho, wo))
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
