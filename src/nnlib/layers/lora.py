"""LoRA (Hu et al., 2022): fine-tune a frozen ``Linear`` through a low-rank update.

``y = x W^T + b + (alpha / r) x A^T B^T`` with the base ``W, b`` frozen and only
``A: (r, in)`` and ``B: (out, r)`` trained -- r (in + out) numbers instead of
in x out. ``B`` starts at zero, so before training the adapted layer is the
pretrained one exactly; ``merge()`` folds the update into ``W`` for inference.
This is the parameter-efficient fine-tuning (参数高效微调) the source names.

``apply_lora(model, r, alpha, targets)`` freezes a whole model and swaps the
``Linear`` layers named by ``targets`` for ``LoRALinear`` ones, in place;
``merge_lora(model)`` swaps every ``LoRALinear`` back for its merged
``Linear``, so the adapted model runs at the pretrained model's cost.
"""
from __future__ import annotations

import math

import numpy as np

from .. import init
from ..functional import linear_backward, linear_forward
from ..module import Module, Parameter
from ._twins import register_twin
from .linear import Linear

__all__ = ["LoRALinear", "apply_lora", "merge_lora"]


class LoRALinear(Module):
    """A ``Linear`` (``base``, frozen) plus a trainable rank-``r`` update.

    ``x: (..., in_features) -> (..., out_features)``. Parameters: ``base.weight
    (out, in)`` and ``base.bias (out,)`` with ``requires_grad=False``,
    ``lora_A: (r, in)`` (Kaiming-uniform, as the reference implementation) and
    ``lora_B: (out, r)`` (zeros). ``scaling = alpha / r``."""

    def __init__(self, base: Linear, r: int = 4, alpha: float = 1.0, rng=None):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear: expected an nnlib Linear to adapt, got "
                            f"{type(base).__name__}")
        if not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"LoRALinear: expected rank r to be a positive integer, got {r!r}")
        self.base = base.freeze()
        self.r, self.alpha = int(r), float(alpha)
        self.scaling = self.alpha / self.r
        dtype = base.weight.data.dtype
        self.lora_A = Parameter(np.empty((self.r, base.in_features), dtype=dtype))
        self.lora_B = Parameter(np.zeros((base.out_features, self.r), dtype=dtype))
        self.reset_parameters(rng)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def reset_parameters(self, rng=None) -> "LoRALinear":
        """A ~ U(-b, b) with b = 1/sqrt(in) (Kaiming-uniform with a = sqrt 5),
        B = 0: the update starts at exactly zero. The base is left as it is."""
        bound = 1.0 / math.sqrt(self.base.in_features)
        self.lora_A.data[...] = init.uniform(self.lora_A.shape, -bound, bound, rng=rng,
                                             dtype=self.lora_A.data.dtype)
        self.lora_B.data[...] = 0.0
        return self

    def forward(self, x):
        x = self._input(x, min_ndim=2)
        y = self.base.forward(x)
        u, cache_a = linear_forward(x, self.lora_A.data)           # (..., r)
        d, cache_b = linear_forward(u, self.lora_B.data)           # (..., out)
        self.cache = (cache_a, cache_b, y.shape)
        return y + self.scaling * d

    def backward(self, grad_out):
        cache_a, cache_b, shape = self._cached()
        g = self._grad_out(grad_out, shape)
        dx = self.base.backward(g)
        du, dB, _ = linear_backward(self.scaling * g, cache_b)
        dx_lora, dA, _ = linear_backward(du, cache_a)
        self.lora_B.accumulate(dB)
        self.lora_A.accumulate(dA)
        return dx + dx_lora

    def merged_weight(self) -> np.ndarray:
        """W + scaling B A, ``(out, in)``: the one matrix the adapted layer is."""
        return self.base.weight.data + self.scaling * self.lora_B.data @ self.lora_A.data

    def merge(self) -> Linear:
        """A plain ``Linear`` with the update folded into its weight."""
        out = Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                     dtype=self.base.weight.data.dtype)
        out.weight.data[...] = self.merged_weight()
        if self.base.bias is not None:
            out.bias.data[...] = self.base.bias.data
        return out

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"r={self.r}, alpha={self.alpha}")


def _lora_twin(m, nn):
    """The LoRA update written in torch as the reference (peft-style) code does:
    base(x) + (alpha / r) * (x @ A^T) @ B^T, with the base frozen (the scale
    from alpha and r, not from the layer's own ``scaling``)."""
    import torch

    class LoRATwin(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = nn.Linear(m.in_features, m.out_features, bias=m.base.bias is not None)
            self.base.requires_grad_(False)
            self.lora_A = nn.Parameter(torch.zeros(m.r, m.in_features))
            self.lora_B = nn.Parameter(torch.zeros(m.out_features, m.r))

        def forward(self, x):
            return self.base(x) + (m.alpha / m.r) * (x @ self.lora_A.T) @ self.lora_B.T
    return LoRATwin()


register_twin(LoRALinear, _lora_twin)


#: the ``Linear`` layers of a ``TransformerEncoderLayer`` (and so of every block
#: of ``nnlib.transformer_lm.CharTransformer``): attention's output projection
#: and the MLP's two layers. W_q, W_k and W_v are not ``Linear`` layers there
#: but one packed ``in_proj_weight`` (torch's layout), so ``LoRALinear`` cannot wrap them.
BLOCK_LINEARS = ("self_attn.out_proj", "linear1", "linear2")


def _swap(model: Module, name: str, new: Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name]
    setattr(parent, attr, new)          # same key: the child keeps its place


def apply_lora(model: Module, r: int, alpha: float = 1.0, targets=BLOCK_LINEARS,
               rng=None) -> int:
    """Freeze every parameter of ``model`` and replace, in place, each
    ``Linear`` whose dotted name is one of ``targets`` or ends with
    ``"." + target`` by ``LoRALinear(that_linear, r, alpha, rng)``; returns
    the number of trainable parameters left, ``r (in + out)`` per adapted
    layer. The model computes exactly what it did before (``B = 0``).

    ``targets``: a non-empty sequence of names, e.g. ``("linear1",)`` for the
    first MLP layer of every block or ``("blocks.0.linear1",)`` for one block's;
    each must match at least one layer, and only ``Linear`` layers (a layer
    adapted already is a ``LoRALinear`` and cannot be adapted again)."""
    where = "apply_lora"
    if not isinstance(model, Module):
        raise TypeError(f"{where}: expected an nnlib Module, got {type(model).__name__}")
    if isinstance(targets, str) or not targets or not all(
            isinstance(t, str) and t for t in targets):
        raise ValueError(f"{where}: expected targets to be a non-empty sequence of layer "
                         f"names, got {targets!r}")
    if not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 1:
        raise ValueError(f"{where}: expected rank r to be a positive integer, got {r!r}")
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
            and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"{where}: expected alpha > 0, got {alpha!r}")
    modules = [(n, m) for n, m in model.named_modules() if n]
    chosen = []
    for t in targets:
        hits = [(n, m) for n, m in modules if n == t or n.endswith("." + t)]
        if not hits:
            linears = [n for n, m in modules if isinstance(m, Linear)]
            raise ValueError(f"{where}: target {t!r} names no layer of the model; its "
                             f"Linear layers are {linears[:8]}"
                             + (" ..." if len(linears) > 8 else ""))
        for n, m in hits:
            if not isinstance(m, Linear):
                raise TypeError(f"{where}: expected target {t!r} to name Linear layers, "
                                f"got {n!r}, a {type(m).__name__}")
        chosen += [(n, m) for n, m in hits if all(n != c for c, _ in chosen)]
    model.freeze()
    for n, m in chosen:
        _swap(model, n, LoRALinear(m, r=r, alpha=alpha, rng=rng))
    return model.num_parameters(trainable_only=True)


def merge_lora(model: Module) -> int:
    """Replace, in place, every ``LoRALinear`` of ``model`` by its merged
    ``Linear`` (weight ``W + (alpha / r) B A: (out, in)``, the base's bias), frozen or
    not as its base was; returns how many were merged. The model then has
    the pretrained model's layers and cost again."""
    if not isinstance(model, Module):
        raise TypeError(f"merge_lora: expected an nnlib Module, got {type(model).__name__}")
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not found:
        raise ValueError("merge_lora: expected a model with LoRALinear layers "
                         "(from apply_lora), got none")
    if any(not n for n, _ in found):
        raise TypeError("merge_lora: got a LoRALinear itself; call its merge() instead")
    for n, m in found:
        merged = m.merge()
        for p in merged.parameters():
            p.requires_grad = m.base.weight.requires_grad
        _swap(model, n, merged)
    return len(found)
