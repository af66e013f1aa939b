"""LoRA (Hu et al., 2022) for PyTorch convolutions and dense layers: a frozen
layer plus a trainable low-rank update, ``y = base(x) + (alpha / r) B(A(x))``.

For ``nn.Linear(in, out)``, ``A`` is ``(r, in)`` and ``B`` is ``(out, r)``
(the layouts of Hugging Face's peft). For ``nn.Conv2d``, ``A`` is a
convolution with the base's kernel size, stride and padding from ``in`` to
``r`` channels and ``B`` a 1x1 convolution from ``r`` to ``out`` channels,
as peft does: the update of the kernel, reshaped to ``(out, in k k)``, has
rank ``r`` at most. ``B`` starts at zero, so a freshly wrapped network
computes exactly what it computed before. ``add_lora`` wraps every layer of a
VGG16's ``features`` and ``classifier`` except the last (the new head, which
trains in full); ``nnlib.torch.finetune`` trains the wrapped network with
``trainable="lora"``.
"""
from __future__ import annotations

import math

from torch import nn

__all__ = ["LoRA", "add_lora"]


class LoRA(nn.Module):
    """``base`` (an ``nn.Linear`` or an ``nn.Conv2d`` with ``groups=1``,
    ``dilation=1``) plus ``(alpha / r) lora_B(lora_A(x))``; ``alpha``
    defaults to ``r`` (a scale of 1). Its parameters: ``base.weight``,
    ``base.bias`` (as they were), ``lora_A.weight`` and ``lora_B.weight``."""

    def __init__(self, base: nn.Module, r: int = 4, alpha: float | None = None):
        super().__init__()
        if not (isinstance(r, int) and r >= 1):
            raise ValueError(f"LoRA: expected a rank r >= 1, got {r!r}")
        if isinstance(base, nn.Linear):
            self.lora_A = nn.Linear(base.in_features, r, bias=False)
            self.lora_B = nn.Linear(r, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            if base.groups != 1 or base.dilation != (1, 1):
                raise ValueError(f"LoRA: expected a Conv2d with groups=1 and dilation=1, "
                                 f"got groups={base.groups}, dilation={base.dilation}")
            self.lora_A = nn.Conv2d(base.in_channels, r, base.kernel_size, base.stride,
                                    base.padding, bias=False)
            self.lora_B = nn.Conv2d(r, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA: expected an nn.Linear or nn.Conv2d, got "
                            f"{type(base).__name__}")
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.base, self.r = base, r
        self.scale = (r if alpha is None else alpha) / r

    def forward(self, x):
        return self.base(x) + self.scale * self.lora_B(self.lora_A(x))


def add_lora(model: nn.Module, r: int = 4, alpha: float | None = None) -> nn.Module:
    """Wrap every ``nn.Conv2d`` and ``nn.Linear`` of ``model.features`` and
    ``model.classifier`` in :class:`LoRA`, except the last layer
    (``model.classifier[-1]``, the head). Returns ``model``, changed in place."""
    head = model.classifier[-1]
    for seq in (model.features, model.classifier):
        for i, layer in enumerate(seq):
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer is not head:
                seq[i] = LoRA(layer, r, alpha)
    return model
