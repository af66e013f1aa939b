"""Module, Parameter and Sequential: the explicit forward/backward contract.

Every layer follows the same rules, so that its ``backward`` reads like the
derivation in the book:

* ``forward(x)`` computes the output and saves what ``backward`` will need with
  ``self.cache = ...``. Each assignment *pushes* onto a stack of caches, one per
  forward call not yet differentiated;
* ``backward(grad_out)`` pops the latest cache (``self._cached()``), receives
  dL/d(output), **adds** (``+=``) dL/d(parameter) into each trainable
  ``Parameter.grad`` and returns dL/d(input);
* no randomness, clipping or printing happens inside ``backward``.

The stack is what makes reuse safe: a module applied k times before its
backward (the same ``Linear`` twice in one network, a discriminator scoring a
real and then a fake batch) gets its k backward calls in the reverse order of
the forward calls, each at the input it saw -- as reverse-mode differentiation
requires. A backward with nothing left to pop, or whose ``grad_out`` does not
have the shape of the latest output, is an error that says so. Forward passes
that will never be differentiated (evaluation) can run under ``no_grad()``,
which saves no cache; a stack deeper than ``Module.max_cache_depth`` drops its
oldest entry, and a backward that reaches a dropped entry is an error.

Names follow PyTorch (``weight``, ``bias``, children of a ``Sequential`` are
``"0"``, ``"1"``, ...) so ``nnlib.testing.torch_twin`` can copy weights by name.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Iterator

import numpy as np

from ._checks import as_float_array, check_shape
from .errors import weights_mismatch

__all__ = ["Parameter", "Module", "Sequential", "no_grad", "is_grad_enabled"]

_GRAD = {"enabled": True}
_COUNTER = {"n": 0}


@contextlib.contextmanager
def no_grad():
    """Forward passes inside ``with nnlib.no_grad():`` save no cache (as
    ``torch.no_grad``): for evaluation, where no backward will follow. A
    ``backward`` after such a forward is an error."""
    before = _GRAD["enabled"]
    _GRAD["enabled"] = False
    try:
        yield
    finally:
        _GRAD["enabled"] = before


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return _GRAD["enabled"]


class Parameter:
    """A trainable array and the gradient accumulated for it.

    ``data`` and ``grad`` have the same shape and dtype; ``grad`` starts at zero
    and only ``Module.zero_grad`` (or an optimizer's ``zero_grad``) resets it.
    ``requires_grad = False`` freezes it: ``accumulate`` then adds nothing and
    the optimizers leave ``data`` as it is (``Module.freeze()`` sets it for
    every parameter of a module).
    """

    def __init__(self, data, requires_grad: bool = True):
        data = np.array(data, dtype=np.float64) if not isinstance(data, np.ndarray) \
            else data
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter: expected floating data, got dtype {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        self.requires_grad = bool(requires_grad)
        #: bumped by every optimizer step; a backward after a step is an error
        self.version = 0

    @property
    def shape(self) -> tuple:
        return self.data.shape

    def accumulate(self, g: np.ndarray) -> None:
        """``grad += g`` if the parameter is trainable; nothing if frozen.
        ``g`` has the parameter's shape."""
        if self.requires_grad:
            self.grad += g

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and sub-modules as attributes (they are registered
    in order, as in PyTorch) and implement ``forward`` and ``backward``; a
    layer with parameters also implements ``reset_parameters(rng=None)``.
    """

    #: caches kept per module before the oldest is dropped (see the module docs)
    max_cache_depth = 64

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_caches", [])
        object.__setattr__(self, "_dropped", 0)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() "
                               "before setting attributes")
        if name == "cache":
            self._push_cache(value)
            return
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif value is None and name in self._parameters:
            del self._parameters[name]
        object.__setattr__(self, name, value)

    # --- the contract -----------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _input(self, x, ndim=None, min_ndim=None) -> np.ndarray:
        """Validate an input array in ``forward`` (floating, finite, rank)."""
        return as_float_array(x, f"{type(self).__name__}.forward", "x",
                              ndim=ndim, min_ndim=min_ndim)

    # --- the stack of caches ----------------------------------------------
    def _push_cache(self, value) -> None:
        if not _GRAD["enabled"]:
            return
        _COUNTER["n"] += 1
        versions = tuple(p.version for p in self._parameters.values())
        self._caches.append((_COUNTER["n"], versions, value))
        if len(self._caches) > self.max_cache_depth:
            del self._caches[0]
            object.__setattr__(self, "_dropped", self._dropped + 1)

    @property
    def cache(self):
        """The latest cache not yet used by a backward, or None (read-only;
        assigning ``self.cache = ...`` pushes a new one)."""
        return self._caches[-1][2] if self._caches else None

    def _cache_token(self):
        """An id of the latest cache (None if there is none): a container
        records its children's tokens in forward and checks them in backward."""
        return self._caches[-1][0] if self._caches else None

    def _expect_token(self, token, where: str) -> None:
        """Raise unless this module's latest cache is the one with ``token``."""
        if self._cache_token() != token:
            raise RuntimeError(
                f"{where}: the cache of {type(self).__name__} is not the one its forward "
                "saved: the layer was run again in between (alone, or inside another "
                "container) and backward calls must come in the reverse order of the "
                "forward calls; run forward again, or use nnlib.no_grad() for passes "
                "you will not differentiate")

    @property
    def pending_backward(self) -> int:
        """How many forward calls still wait for their backward."""
        return len(self._caches)

    def clear_cache(self) -> None:
        """Forget every saved cache of this module and its sub-modules."""
        for _, m in self.named_modules():
            m._caches.clear()
            object.__setattr__(m, "_dropped", 0)

    def _cached(self):
        """Pop what the latest forward saved for ``backward``; an error if
        there is none."""
        if not self._caches:
            name = type(self).__name__
            if self._dropped:
                raise RuntimeError(
                    f"{name}.backward: called more often than forward could keep: the "
                    f"oldest {self._dropped} cache(s) were dropped (at most "
                    f"max_cache_depth={self.max_cache_depth} are kept); run forward "
                    "passes you will not differentiate under nnlib.no_grad()")
            raise RuntimeError(f"{name}.backward: called before forward (or once more "
                               "than forward): there is no cached input to "
                               "differentiate at; call forward(x) first, outside "
                               "nnlib.no_grad()")
        entry = self._caches.pop()
        object.__setattr__(self, "_popped", entry)
        if entry[1] != tuple(p.version for p in self._parameters.values()):
            raise RuntimeError(
                f"{type(self).__name__}.backward: the parameters were changed in place "
                "(an optimizer step) after the forward this backward belongs to; the "
                "gradient would mix old and new weights. Run forward again after the step")
        return entry[2]

    def _grad_out(self, grad_out, out_shape) -> np.ndarray:
        """Validate ``grad_out`` in ``backward``: it must have the shape of the
        output it is the gradient of, and be finite."""
        where = f"{type(self).__name__}.backward"
        grad_out = as_float_array(grad_out, where, "grad_out")
        try:
            check_shape(grad_out, tuple(out_shape), where, "grad_out")
        except ValueError as e:
            hint = ("; backward calls must come in the reverse order of the forward "
                    "calls: this one was matched with the latest forward not yet "
                    "differentiated") if self._caches else ""
            self._unpop()
            raise ValueError(f"{e}{hint}") from None
        except TypeError:
            self._unpop()
            raise
        return grad_out

    def _unpop(self) -> None:
        """Put back the cache a failed backward popped, so a corrected call works."""
        entry = self.__dict__.get("_popped")
        if entry is not None:
            self._caches.append(entry)
            object.__setattr__(self, "_popped", None)

    # --- parameters -------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs, each Parameter once (as torch): a layer used
        twice in a network, with its weights shared, is listed under its first name."""
        seen = set()
        for name, p in self._named_parameters_all(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str = ""):
        for name, p in self._parameters.items():
            yield prefix + name, p
        for mname, m in self._modules.items():
            yield from m._named_parameters_all(prefix + mname + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + ("." if prefix else "") + name)

    def children(self) -> list["Module"]:
        return list(self._modules.values())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0.0

    def num_parameters(self, trainable_only: bool = False) -> int:
        return int(sum(p.data.size for p in self.parameters()
                       if p.requires_grad or not trainable_only))

    def freeze(self) -> "Module":
        """Set ``requires_grad = False`` on every parameter (a frozen backbone,
        a probe's features); backward still returns the input gradient."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self) -> "Module":
        for p in self.parameters():
            p.requires_grad = True
        return self

    def reset_parameters(self, rng=None) -> "Module":
        """Draw every parameter again from its layer's default initialisation
        (each layer with parameters defines its own; containers recurse). A
        module that owns parameters itself must override this method."""
        if self._parameters:
            raise NotImplementedError(
                f"{type(self).__name__} owns parameters {list(self._parameters)} but defines "
                "no reset_parameters(rng=None); write one that redraws them")
        for m in self._modules.values():
            m.reset_parameters(rng)
        return self

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter array (and buffer, such as BatchNorm's
        running statistics), keyed by PyTorch-style names; a shared weight
        appears under each of its names, as in torch's ``state_dict``."""
        state = OrderedDict((n, p.data.copy()) for n, p in self._named_parameters_all())
        state.update((n, b.copy()) for n, b in self.named_buffers())
        return state

    def named_buffers(self, prefix: str = ""):
        """Arrays that are state but not trained (``_buffers``, a tuple of
        attribute names a layer declares), with PyTorch-style names."""
        for name in getattr(self, "_buffers", ()):
            yield prefix + name, getattr(self, name)
        for mname, m in self._modules.items():
            yield from m.named_buffers(prefix + mname + ".")

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` (name -> array) into the parameters and buffers;
        names and shapes must match, or ``WeightsMismatchError`` names them."""
        own = dict(self._named_parameters_all())
        buffers = dict(self.named_buffers())
        expected = {k: v.shape for k, v in own.items()}
        expected.update({k: v.shape for k, v in buffers.items()})
        weights_mismatch(f"{type(self).__name__}.load_state_dict", expected,
                         {k: np.shape(v) for k, v in state.items()})
        for name, p in own.items():
            p.data[...] = np.asarray(state[name])
        for name, b in buffers.items():
            b[...] = np.asarray(state[name])

    def save(self, path) -> None:
        """Write every parameter and buffer to a NumPy ``.npz`` file (keys: their names).
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
    ``0.weight``, ``0.bias``, ``2.weight``, ``2.bias``, as in PyTorch. An
    ``OrderedDict`` of name -> layer names the children instead. ``model[a:b]``
    is a ``Sequential`` of the same layer objects, keeping their names (as
    torch's slicing does); ``model[i]`` is one layer.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            items = list(layers[0].items())
        else:
            items = [(str(i), layer) for i, layer in enumerate(layers)]
        for i, (name, layer) in enumerate(items):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: expected Module instances, got "
                                f"{type(layer).__name__} at position {i}")
            if not isinstance(name, str) or hasattr(Sequential, name) or name in (
                    "cache", "training") or "." in name or not name:
                raise ValueError(f"Sequential: a child cannot be named {name!r} (it "
                                 "clashes with an attribute or is not a plain name)")
            setattr(self, name, layer)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        tokens = []
        for layer in self:
            x = layer.forward(x)
            tokens.append(layer._cache_token())
        self.cache = tokens
        return x

    def backward(self, grad_out):
        tokens = self._cached()
        for layer, token in zip(reversed(list(self)), reversed(tokens)):
            if token is not None:       # None: the child kept no cache (no_grad inside)
                layer._expect_token(token, "Sequential.backward")
            grad_out = layer.backward(grad_out)
        return grad_out
