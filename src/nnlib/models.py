"""Ready-made models built from nnlib layers."""
from __future__ import annotations

from .layers import Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .module import Sequential

__all__ = ["ACTIVATIONS", "mlp"]

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}


def mlp(n_in: int, n_out: int, hidden=(64,), activation: str = "relu",
        dropout: float = 0.0, rng=None) -> Sequential:
    """A multilayer perceptron: ``Linear -> activation [-> Dropout]`` for each
    width in ``hidden``, then a ``Linear`` output layer producing raw scores.

    ``mlp(64, 10, hidden=(128,))`` is 64 -> 128 -> 10 with ReLU.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: expected activation in {sorted(ACTIVATIONS)}, "
                         f"got {activation!r}")
    hidden = tuple(hidden)
    if any((not isinstance(h, int)) or h < 1 for h in hidden):
        raise ValueError(f"mlp: expected positive integer widths, got hidden={hidden}")
    layers, width = [], n_in
    for h in hidden:
        layers += [Linear(width, h, rng=rng), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(Dropout(dropout, rng=rng))
        width = h
    layers.append(Linear(width, n_out, rng=rng))
    return Sequential(*layers)
