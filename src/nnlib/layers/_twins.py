"""Where each layer registers its PyTorch twin, beside its own definition.

A *builder* is ``builder(module, nn) -> torch.nn.Module``, given the nnlib
module and ``torch.nn`` (so no layer file imports PyTorch: it is imported only
when a twin is built). ``nnlib.testing.torch_twin`` looks builders up here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from ..module import Sequential

__all__ = ["register_twin", "twin_builder", "registered_twins", "build_twin"]

_BUILDERS: dict[type, Callable] = {}
_MEMO: dict = {"active": None}


def register_twin(cls: type, builder: Callable) -> type:
    """Teach ``torch_twin`` how to build the torch counterpart of ``cls``:
    ``builder(module, nn)`` returns the torch module (without weights; they are
    copied by name). Returns ``cls``. A later registration replaces an earlier one."""
    if not isinstance(cls, type) or not callable(builder):
        raise TypeError(f"register_twin: expected a class and a callable builder(module, nn), "
                        f"got {cls!r} and {builder!r}")
    _BUILDERS[cls] = builder
    return cls


def twin_builder(cls: type):
    """The builder registered for ``cls``, or None."""
    return _BUILDERS.get(cls)


def registered_twins() -> dict:
    """A copy of the registry: class -> builder."""
    return dict(_BUILDERS)


def build_twin(module, nn):
    """The torch module for ``module`` (weights not copied), from its registered
    builder; composite builders call this for their children. A child that
    appears twice (shared weights) becomes one torch module used twice."""
    top = _MEMO["active"] is None
    if top:
        _MEMO["active"] = {}
    try:
        memo = _MEMO["active"]
        if id(module) not in memo:
            builder = _BUILDERS.get(type(module))
            if builder is None:
                raise TypeError(f"torch_twin: no twin registered for {type(module).__name__}; "
                                "add one with nnlib.testing.register_twin(cls, "
                                "lambda m, nn: torch_module)")
            memo[id(module)] = builder(module, nn)
        return memo[id(module)]
    finally:
        if top:
            _MEMO["active"] = None

register_twin(Sequential, lambda m, nn: nn.Sequential(OrderedDict(
    (name, build_twin(child, nn)) for name, child in m._modules.items())))
