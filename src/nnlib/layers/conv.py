"""Convolution and pooling layers, NCHW as PyTorch; the maths is in
``nnlib.functional.conv`` (im2col forward, tap-by-tap backward)."""
from __future__ import annotations

import math

import numpy as np

from .. import init
from ..functional import conv as Fc
from ..functional.conv import output_size
from ..module import Module, Parameter
from ._twins import register_twin

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
           "conv2d_forward", "conv2d_backward", "output_size"]

conv2d_forward, conv2d_backward = Fc.conv2d_forward, Fc.conv2d_backward
_pair = Fc.pair


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
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "Conv2d":
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as PyTorch."""
        bound = 1.0 / math.sqrt(init.fans(self.weight.shape)[0])
        init.fill_uniform((self.weight, self.bias), bound, rng)
        return self

    def forward(self, x):
        x = self._input(x)
        Fc._check_input(x, "Conv2d.forward", self.in_channels)
        y, cache = conv2d_forward(x, self.weight.data,
                                  None if self.bias is None else self.bias.data,
                                  self.stride, self.padding, self.dilation)
        self.cache = (cache, y.shape)
        return y

    def backward(self, grad_out):
        cache, out_shape = self._cached()
        g = self._grad_out(grad_out, out_shape)
        dx, dw, db = conv2d_backward(g, cache)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")


class _Pool2d(Module):
    _fn = _dfn = None

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

    def forward(self, x):
        x = self._input(x)
        where = f"{type(self).__name__}.forward"
        Fc._check_input(x, where)
        y, cache = type(self)._fn(x, self.kernel_size, self.stride, self.padding, where)
        self.cache = (cache, y.shape)
        return y

    def backward(self, grad_out):
        cache, out_shape = self._cached()
        g = self._grad_out(grad_out, out_shape)
        return type(self)._dfn(g, cache)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window; padding counts as -infinity. Where a window
    holds several equal maxima, the first in row-major order receives the whole
    gradient, as in PyTorch.

    ``x: (N, C, H, W) -> (N, C, H_out, W_out)``, sizes by ``output_size``;
    ``stride`` defaults to ``kernel_size``."""
    _fn, _dfn = Fc.maxpool2d_forward, Fc.maxpool2d_backward


class AvgPool2d(_Pool2d):
    """Mean over each window; padded zeros count in the mean (PyTorch's default
    ``count_include_pad=True``).

    ``x: (N, C, H, W) -> (N, C, H_out, W_out)``, sizes by ``output_size``;
    ``stride`` defaults to ``kernel_size``."""
    _fn, _dfn = Fc.avgpool2d_forward, Fc.avgpool2d_backward


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size whatever the input's, with
    PyTorch's windows; ``AdaptiveAvgPool2d(1)`` is *global average pooling*:
    one number per channel, the head of modern CNNs such as ResNet
    (VGG's ``avgpool`` is ``AdaptiveAvgPool2d((7, 7))`` instead).

    ``x: (N, C, H, W) -> (N, C, H_o, W_o)`` with ``(H_o, W_o) = output_size``."""

    def __init__(self, output_size=1):
        super().__init__()
        self.output_size = _pair(output_size, "output_size", "AdaptiveAvgPool2d", 1)

    def forward(self, x):
        x = self._input(x)
        Fc._check_input(x, "AdaptiveAvgPool2d.forward")
        y, cache = Fc.adaptive_avg_pool2d_forward(x, self.output_size)
        self.cache = (cache, y.shape)
        return y

    def backward(self, grad_out):
        cache, out_shape = self._cached()
        return Fc.adaptive_avg_pool2d_backward(self._grad_out(grad_out, out_shape), cache)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


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


register_twin(Conv2d, lambda m, nn: nn.Conv2d(
    m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
    dilation=m.dilation, bias=m.bias is not None))
register_twin(MaxPool2d, lambda m, nn: nn.MaxPool2d(m.kernel_size, m.stride, m.padding))
register_twin(AvgPool2d, lambda m, nn: nn.AvgPool2d(m.kernel_size, m.stride, m.padding))
register_twin(AdaptiveAvgPool2d, lambda m, nn: nn.AdaptiveAvgPool2d(m.output_size))
register_twin(Flatten, lambda m, nn: nn.Flatten())
