"""Batch normalisation (Ioffe & Szegedy, 2015) and layer normalisation (Ba et
al., 2016), as ``torch.nn.BatchNorm1d/2d`` and ``torch.nn.LayerNorm``; the maths
and its derivation are in ``nnlib.functional.norm``."""
from __future__ import annotations

import numpy as np

from ..functional import norm as Fn
from ..module import Module, Parameter
from ._twins import register_twin

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    _ndims: tuple = ()
    _shapes = ""
    _buffers = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=np.float64):
        super().__init__()
        where = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) \
                or num_features < 1:
            raise ValueError(f"{where}: expected num_features to be a positive integer, "
                             f"got {num_features!r}")
        if not (isinstance(momentum, (int, float)) and not isinstance(momentum, bool)
                and 0 <= momentum <= 1):
            raise ValueError(f"{where}: expected momentum in [0, 1], got {momentum!r} "
                             "(a cumulative average, torch's momentum=None, is not "
                             "supported)")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"{where}: expected eps > 0, got {eps!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), \
            float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = self.num_features
        self.weight = Parameter(np.ones(c, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(c, dtype=dtype)) if affine else None
        if track_running_stats:
            self.running_mean = np.zeros(c, dtype=dtype)
            self.running_var = np.ones(c, dtype=dtype)
            self.num_batches_tracked = np.zeros((), dtype=np.int64)
        else:
            object.__setattr__(self, "_buffers", ())
            self.running_mean = self.running_var = None

    def reset_parameters(self, rng=None):
        """weight 1, bias 0, running mean 0 and variance 1, as PyTorch."""
        if self.affine:
            self.weight.data[...] = 1.0
            self.bias.data[...] = 0.0
        if self.track_running_stats:
            self.running_mean[...] = 0.0
            self.running_var[...] = 1.0
            self.num_batches_tracked[...] = 0
        return self

    def forward(self, x):
        where = f"{type(self).__name__}.forward"
        x = self._input(x)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{where}: expected x of shape "
                             f"{self._shapes.format(C=self.num_features)}, got {x.shape}")
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.size // x.shape[1] < 2:
            raise ValueError(f"{where}: expected more than 1 value per channel when "
                             f"training, got input of shape {x.shape}")
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
        y, cache = Fn.batch_norm_forward(
            x, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data,
            self.running_mean if (self.training and self.track_running_stats) or
            not use_batch else None,
            self.running_var if (self.training and self.track_running_stats) or
            not use_batch else None,
            training=use_batch, momentum=self.momentum, eps=self.eps)
        self.cache = (cache, x.shape)
        return y

    def backward(self, grad_out):
        cache, shape = self._cached()
        dx, dw, db = Fn.batch_norm_backward(self._grad_out(grad_out, shape), cache)
        if self.affine:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Normalise each feature (channel) over the batch, then scale by ``weight``
    (gamma) and shift by ``bias`` (beta). Training uses the batch's mean and
    biased variance and updates ``running_mean`` / ``running_var`` (momentum 0.1,
    unbiased variance) as torch; ``eval()`` uses the running statistics.

    ``x: (N, C) or (N, C, L) -> (same shape)``; ``weight, bias,
    running_mean, running_var: (C,)``."""
    _ndims, _shapes = (2, 3), "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm for images: each channel normalised over the batch and every
    pixel (N H W values per statistic), then scaled and shifted per channel.

    ``x: (N, C, H, W) -> (N, C, H, W)``; ``weight, bias, running_mean,
    running_var: (C,)``."""
    _ndims, _shapes = (4,), "(N, {C}, H, W)"


class LayerNorm(Module):
    """Normalise each example over its last dimensions (``normalized_shape``),
    then scale by ``weight`` and shift by ``bias`` of that shape. Unlike batch
    norm it uses no batch statistics, so training and evaluation agree and
    batch size 1 works: the normalisation of Transformers.

    ``x: (..., *normalized_shape) -> (same shape)``."""

    def __init__(self, normalized_shape, eps: float = 1e-5,
                 elementwise_affine: bool = True, dtype=np.float64):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(normalized_shape)
        if not shape or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
            raise ValueError(f"LayerNorm: expected normalized_shape to be a positive integer "
                             f"or a tuple of them, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        self.weight = Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine else None

    def reset_parameters(self, rng=None):
        """weight 1 and bias 0, as PyTorch."""
        if self.elementwise_affine:
            self.weight.data[...] = 1.0
            self.bias.data[...] = 0.0
        return self

    def forward(self, x):
        x = self._input(x)
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ValueError(f"LayerNorm.forward: expected x of shape (..., "
                             f"{', '.join(map(str, self.normalized_shape))}), got {x.shape}")
        y, cache = Fn.layer_norm_forward(
            x, k, None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data, self.eps)
        self.cache = (cache, x.shape)
        return y

    def backward(self, grad_out):
        cache, shape = self._cached()
        dx, dw, db = Fn.layer_norm_backward(self._grad_out(grad_out, shape), cache)
        if self.elementwise_affine:
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


register_twin(BatchNorm1d, lambda m, nn: nn.BatchNorm1d(
    m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats))
register_twin(BatchNorm2d, lambda m, nn: nn.BatchNorm2d(
    m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats))
register_twin(LayerNorm, lambda m, nn: nn.LayerNorm(m.normalized_shape, m.eps,
                                                    m.elementwise_affine))
