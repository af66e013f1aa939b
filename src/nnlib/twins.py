"""PyTorch twins: the same model in torch, with the same weights, to compare.

``torch_twin(module)`` builds the equivalent ``torch.nn.Module`` and copies every
parameter by name (nnlib uses PyTorch's names and layouts, so no per-layer
copying code is needed). ``compare_with_torch`` then runs both on the same input
and the same random upstream gradient and reports the worst error of the output,
the input gradient and every parameter gradient.

Register a new layer once with ``register_twin(MyLayer, lambda m: torch_module)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import layers, losses
from .module import Module, Sequential
from .random import get_rng

__all__ = ["register_twin", "torch_twin", "torch_loss_twin", "compare_with_torch",
           "TwinReport"]

_BUILDERS: dict[type, Callable] = {}


def register_twin(cls: type, builder: Callable) -> None:
    """Teach ``torch_twin`` how to build the torch counterpart of ``cls``."""
    _BUILDERS[cls] = builder


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is in requirements.txt
        raise ImportError("nnlib.twins needs PyTorch: pip install torch==2.13.0") from e
    return torch


def _register_defaults():
    torch = _torch()
    nn = torch.nn
    register_twin(layers.Linear, lambda m: nn.Linear(m.in_features, m.out_features,
                                                     bias=m.bias is not None))
    register_twin(layers.ReLU, lambda m: nn.ReLU())
    register_twin(layers.Sigmoid, lambda m: nn.Sigmoid())
    register_twin(layers.Tanh, lambda m: nn.Tanh())
    register_twin(layers.LeakyReLU, lambda m: nn.LeakyReLU(m.negative_slope))
    register_twin(layers.Dropout, lambda m: nn.Dropout(m.p))
    register_twin(layers.Conv2d, lambda m: nn.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
        dilation=m.dilation, bias=m.bias is not None))
    register_twin(layers.MaxPool2d, lambda m: nn.MaxPool2d(m.kernel_size, m.stride, m.padding))
    register_twin(layers.AvgPool2d, lambda m: nn.AvgPool2d(m.kernel_size, m.stride, m.padding))
    register_twin(layers.Flatten, lambda m: nn.Flatten())
    register_twin(layers.Embedding, lambda m: nn.Embedding(m.num_embeddings, m.embedding_dim))

    def sequence_output(base):
        """torch's recurrent layers return (output, state); the twin returns output."""
        class Twin(base):
            def forward(self, x):
                return super().forward(x)[0]
        Twin.__name__ = base.__name__
        return lambda m: Twin(m.input_size, m.hidden_size, batch_first=True)

    register_twin(layers.RNN, sequence_output(nn.RNN))
    register_twin(layers.LSTM, sequence_output(nn.LSTM))
    register_twin(layers.GRU, sequence_output(nn.GRU))
    register_twin(Sequential, lambda m: nn.Sequential(*[torch_twin(c, copy_weights=False)
                                                        for c in m]))


def torch_twin(module: Module, dtype=None, device: str = "cpu", copy_weights: bool = True):
    """The torch counterpart of ``module`` with the same weights (float64 by default)."""
    torch = _torch()
    if not _BUILDERS:
        _register_defaults()
    builder = _BUILDERS.get(type(module))
    if builder is None:
        raise TypeError(f"torch_twin: no twin registered for {type(module).__name__}; "
                        "add one with nnlib.twins.register_twin")
    twin = builder(module)
    if copy_weights:
        twin = twin.to(dtype=dtype or torch.float64, device=device)
        state = twin.state_dict()
        own = dict(module.named_parameters())
        if set(state) != set(own):
            raise KeyError(f"torch_twin: parameter names differ: nnlib has {sorted(own)}, "
                           f"torch has {sorted(state)}")
        with torch.no_grad():
            for name, p in own.items():
                state[name].copy_(torch.from_numpy(np.ascontiguousarray(p.data)))
        twin.train(module.training)
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
        pairs[f"grad {name}"] = (p.grad, torch_params[name].grad)

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
