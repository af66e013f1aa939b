"""Element-wise activations and the softmax layers. Each backward multiplies by
the local derivative (``nnlib.functional`` holds the maths)."""
from __future__ import annotations

from .. import functional as F
from ..functional import sigmoid
from ..module import Module
from ._twins import register_twin

__all__ = ["ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "Softmax", "LogSoftmax",
           "sigmoid"]


class _Elementwise(Module):
    """Shared plumbing: run ``_fn`` (a functional forward), keep its cache and
    the output shape, check grad_out's shape, run ``_dfn``."""

    def _args(self):
        return ()

    def forward(self, x):
        x = self._input(x)
        y, cache = type(self)._fn(x, *self._args())
        self.cache = (cache, x.shape)
        return y

    def backward(self, grad_out):
        cache, shape = self._cached()
        g = self._grad_out(grad_out, shape)
        return type(self)._dfn(g, cache)


class ReLU(_Elementwise):
    """max(0, x); derivative 1 where x > 0 and 0 elsewhere (0 at x = 0, as PyTorch).

    ``x: (...) -> (...)``, element-wise, any shape."""
    _fn, _dfn = F.relu_forward, F.relu_backward


class LeakyReLU(_Elementwise):
    """x for x > 0, ``negative_slope * x`` otherwise.

    ``x: (...) -> (...)``, element-wise, any shape."""
    _fn, _dfn = F.leaky_relu_forward, F.leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _args(self):
        return (self.negative_slope,)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    """sigma(x) = 1 / (1 + e^-x); derivative sigma(x) (1 - sigma(x)).

    ``x: (...) -> (...)``, element-wise, any shape."""
    _fn, _dfn = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Elementwise):
    """tanh(x); derivative 1 - tanh(x)^2.

    ``x: (...) -> (...)``, element-wise, any shape."""
    _fn, _dfn = F.tanh_forward, F.tanh_backward


class GELU(_Elementwise):
    """x Phi(x), Phi the standard normal CDF (``approximate="none"``, as
    ``torch.nn.GELU``) or its tanh approximation (``"tanh"``); derivative
    Phi(x) + x phi(x). The activation of Transformers' MLPs.

    ``x: (...) -> (...)``, element-wise, any shape."""
    _fn, _dfn = F.gelu_forward, F.gelu_backward

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: expected approximate 'none' or 'tanh', got "
                             f"{approximate!r}")
        self.approximate = approximate

    def _args(self):
        return (self.approximate,)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class _SoftmaxLayer(_Elementwise):
    def __init__(self, dim: int = -1):
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"{type(self).__name__}: expected an integer dim, got {dim!r}")
        self.dim = dim

    def forward(self, x):
        x = self._input(x, min_ndim=1)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{type(self).__name__}.forward: dim={self.dim} is out of range "
                             f"for x of shape {x.shape}")
        return super().forward(x)

    def _args(self):
        return (self.dim,)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxLayer):
    """p = exp(x) / sum exp(x) along ``dim``; backward p * (g - sum(g p)), the
    product with the Jacobian diag(p) - p p^T.

    ``x: (...) -> (...)``, the same shape, rows along ``dim`` summing to 1."""
    _fn, _dfn = F.softmax_forward, F.softmax_backward


class LogSoftmax(_SoftmaxLayer):
    """x - logsumexp(x) along ``dim``; backward g - p sum(g).

    ``x: (...) -> (...)``, the same shape."""
    _fn, _dfn = F.log_softmax_forward, F.log_softmax_backward


register_twin(ReLU, lambda m, nn: nn.ReLU())
register_twin(Sigmoid, lambda m, nn: nn.Sigmoid())
register_twin(Tanh, lambda m, nn: nn.Tanh())
register_twin(LeakyReLU, lambda m, nn: nn.LeakyReLU(m.negative_slope))
register_twin(GELU, lambda m, nn: nn.GELU(approximate=m.approximate))
register_twin(Softmax, lambda m, nn: nn.Softmax(dim=m.dim))
register_twin(LogSoftmax, lambda m, nn: nn.LogSoftmax(dim=m.dim))
