"""Module, Parameter and Sequential: the explicit forward/backward contract.

Every layer follows the same rules, so that its ``backward`` reads like the
derivation in the book:

* ``forward(x)`` computes the output and keeps in ``self.cache`` what
  ``backward`` will need;
* ``backward(grad_out)`` receives dL/d(output), **adds** (``+=``) dL/d(parameter)
  into each ``Parameter.grad`` and returns dL/d(input);
* no randomness, clipping or printing happens inside ``backward``.

Names follow PyTorch (``weight``, ``bias``, children of a ``Sequential`` are
``"0"``, ``"1"``, ...) so ``nnlib.twins`` can copy weights by name.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from ._checks import as_float_array, check_shape

__all__ = ["Parameter", "Module", "Sequential"]


class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``data`` and ``grad`` have the same shape and dtype; ``grad`` starts at zero
    and only ``Module.zero_grad`` (or an optimizer's ``zero_grad``) resets it.
    """

    def __init__(self, data):
        data = np.array(data, dtype=np.float64) if not isinstance(data, np.ndarray) \
            else data
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter: expected floating data, got dtype {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes (they are registered
    in order, as in PyTorch) and implement ``forward`` and ``backward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "cache", None)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() "
                               "before setting attributes")
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    # --- the contract -----------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def __call__(self, x):
        return self.forward(x)

    def _input(self, x, ndim=None, min_ndim=None) -> np.ndarray:
        """Validate an input array in ``forward`` (floating, finite, rank)."""
        return as_float_array(x, f"{type(self).__name__}.forward", "x",
                              ndim=ndim, min_ndim=min_ndim)

    def _cached(self):
        """What ``forward`` kept for ``backward``; an error if forward has not run."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before forward: "
                               "there is no cached input to differentiate at; call "
                               "forward(x) first")
        return self.cache

    def _grad_out(self, grad_out, out_shape) -> np.ndarray:
        """Validate ``grad_out`` in ``backward``: it must have the shape of the
        output it is the gradient of, and be finite."""
        where = f"{type(self).__name__}.backward"
        grad_out = as_float_array(grad_out, where, "grad_out")
        check_shape(grad_out, tuple(out_shape), where, "grad_out")
        return grad_out

    # --- parameters -------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for mname, m in self._modules.items():
            yield from m.named_parameters(prefix + mname + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + ("." if prefix else "") + name)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0.0

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter array, keyed by PyTorch-style names."""
        return OrderedDict((n, p.data.copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state: dict) -> None:
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys "
                           f"{missing}, unexpected keys {unexpected}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: expected "
                                 f"{name} of shape {p.data.shape}, got {value.shape}")
            p.data[...] = value

    def save(self, path) -> None:
        """Write every parameter to a NumPy ``.npz`` file (keys: parameter names).
        As with ``np.savez``, ``.npz`` is appended to a path without it."""
        np.savez(path, **self.state_dict())

    def load(self, path) -> None:
        """Read parameters written by ``save``; names and shapes must match."""
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files})

    # --- modes ------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Layers applied one after another; backward runs them in reverse.

    ``Sequential(Linear(64, 32), ReLU(), Linear(32, 10))`` has parameters
    ``0.weight``, ``0.bias``, ``2.weight``, ``2.bias``, as in PyTorch.
    """

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: expected Module instances, got "
                                f"{type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self:
            x = layer.forward(x)
        self.cache = True
        return x

    def backward(self, grad_out):
        if self.cache is None:
            raise RuntimeError("Sequential.backward: called before forward: "
                               "call forward(x) first")
        for layer in reversed(list(self)):
            grad_out = layer.backward(grad_out)
        return grad_out
