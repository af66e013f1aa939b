"""PyTorch twins: the same model in torch, with the same weights, to compare.

``torch_twin(module)`` builds the equivalent ``torch.nn.Module`` and copies every
parameter by name (nnlib uses PyTorch's names and layouts, so no per-layer
copying code is needed). ``compare_with_torch`` then runs both on the same input
and the same random upstream gradient and reports the worst error of the output,
the input gradient and every parameter gradient.

A layer registers its twin beside its own definition with
``register_twin(MyLayer, lambda m, nn: torch_module)`` (``nn`` is ``torch.nn``);
the registry lives in ``nnlib.layers._twins`` so that no layer imports PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import losses
from ..errors import weights_mismatch
from ..layers._twins import build_twin, register_twin
from ..module import Module
from ..random import get_rng

__all__ = ["register_twin", "torch_twin", "torch_loss_twin", "compare_with_torch",
           "TwinReport"]


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is in requirements.txt
        raise ImportError("nnlib.testing needs PyTorch: pip install torch==2.13.0") from e
    return torch


def torch_twin(module: Module, dtype=None, device: str = "cpu", copy_weights: bool = True):
    """The torch counterpart of ``module`` with the same weights and buffers
    (running statistics), in float64 by default, in the same train/eval mode;
    frozen parameters (``requires_grad=False``) are frozen in the twin too."""
    torch = _torch()
    twin = build_twin(module, torch.nn)
    if copy_weights:
        twin = twin.to(dtype=dtype or torch.float64, device=device)
        state = twin.state_dict()
        own = {n: p.data for n, p in module._named_parameters_all()}
        own.update(module.named_buffers())
        weights_mismatch("torch_twin", {k: tuple(v.shape) for k, v in state.items()},
                         {k: np.shape(v) for k, v in own.items()},
                         source=f"of nnlib's {type(module).__name__}")
        with torch.no_grad():
            for name, p in own.items():
                value = np.array(p, order="C")
                state[name].copy_(torch.from_numpy(value))
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        for name, p in twin.named_parameters():
            p.requires_grad_(name not in frozen)
        torch_modules = dict(twin.named_modules())
        for name, m in module.named_modules():     # each submodule's own mode (a frozen,
            if name in torch_modules:             # evaluating BatchNorm inside a model)
                torch_modules[name].train(m.training)
    return twin


def torch_loss_twin(loss):
    """``torch.nn.MSELoss`` / ``CrossEntropyLoss`` / ``BCEWithLogitsLoss`` with the
    same reduction."""
    nn = _torch().nn
    table = {losses.MSELoss: nn.MSELoss, losses.CrossEntropyLoss: nn.CrossEntropyLoss,
             losses.BCEWithLogitsLoss: nn.BCEWithLogitsLoss}
    if type(loss) not in table:
        raise TypeError(f"torch_loss_twin: no twin for {type(loss).__name__}")
    return table[type(loss)](reduction=loss.reduction)


@dataclass
class TwinReport:
    """Worst absolute error and worst relative error (as in ``assert_allclose``)
    of each quantity, nnlib against torch."""
    abs_errors: dict = field(default_factory=dict)
    rel_errors: dict = field(default_factory=dict)
    violations: dict = field(default_factory=dict)

    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        rows = [f"{'quantity':>16s}  {'max |abs err|':>13s}"]
        rows += [f"{k:>16s}  {v:13.2e}" for k, v in self.abs_errors.items()]
        return "\n".join(rows)


def compare_with_torch(module: Module, x: np.ndarray, rng=None, rtol: float = 1e-8,
                       atol: float = 1e-10, device: str = "cpu") -> TwinReport:
    """Run ``module`` and its torch twin on ``x`` with a random upstream gradient;
    compare the output, dL/dx and each dL/dparameter. A quantity *violates* when
    ``|a - b| > atol + rtol * |b|`` somewhere (the ``numpy.allclose`` rule)."""
    torch = _torch()
    rng = get_rng(rng)
    twin = torch_twin(module, device=device)
    y = module.forward(x)
    grad_out = rng.standard_normal(y.shape)
    module.zero_grad()
    dx = module.backward(grad_out)

    if np.issubdtype(np.asarray(x).dtype, np.integer):      # token ids: no input gradient
        xt = torch.tensor(x, dtype=torch.long, device=device)
    else:
        xt = torch.tensor(x, dtype=torch.float64, device=device, requires_grad=True)
    yt = twin(xt)
    yt.backward(torch.tensor(grad_out, dtype=torch.float64, device=device))
    pairs = {"output": (y, yt.detach())}
    if xt.requires_grad:
        pairs["grad input"] = (dx, xt.grad)
    torch_params = dict(twin.named_parameters())
    for name, p in module.named_parameters():
        theirs = torch_params[name].grad
        pairs[f"grad {name}"] = (p.grad, torch.zeros_like(torch_params[name]) if theirs is None
                                 else theirs)
    torch_buffers = dict(twin.named_buffers())
    for name, b in module.named_buffers():
        if np.issubdtype(b.dtype, np.floating):
            pairs[name] = (b, torch_buffers[name])

    report = TwinReport()
    for key, (ours, theirs) in pairs.items():
        theirs = theirs.cpu().numpy()
        err = np.abs(ours - theirs)
        report.abs_errors[key] = float(err.max()) if err.size else 0.0
        report.rel_errors[key] = float((err / np.maximum(np.abs(theirs), 1e-300)).max()) \
            if err.size else 0.0
        excess = err - (atol + rtol * np.abs(theirs))
        if err.size and excess.max() > 0:
            report.violations[key] = float(err.max())
    return report
