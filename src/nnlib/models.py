"""Ready-made models built from nnlib layers."""
from __future__ import annotations

import numpy as np

from .layers import LSTM, Dropout, Embedding, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .functional import softmax
from .module import Sequential
from .random import get_rng

__all__ = ["ACTIVATIONS", "mlp", "autoencoder", "char_lstm", "sample_chars", "conv_stack"]

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}


def mlp(n_in: int, n_out: int, hidden=(64,), activation: str = "relu",
        dropout: float = 0.0, rng=None) -> Sequential:
    """A multilayer perceptron: ``Linear -> activation [-> Dropout]`` for each
    width in ``hidden``, then a ``Linear`` output layer producing raw scores.

    ``mlp(64, 10, hidden=(128,))`` is 64 -> 128 -> 10 with ReLU.
    The network maps ``x: (N, n_in) -> (N, n_out)``.
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


def autoencoder(n_in: int, code: int, hidden=(64,), activation: str = "relu",
                out_activation: str | None = "sigmoid", rng=None) -> Sequential:
    """An autoencoder as ``Sequential(encoder, decoder)``: ``model[0]`` maps
    ``(N, n_in) -> (N, code)``, ``model[1]`` maps the code back to ``(N, n_in)``.

    The encoder is ``Linear -> activation`` for each width in ``hidden``, then a
    ``Linear`` to the code (no activation: the code may take any value). The
    decoder mirrors it (widths reversed) and ends in ``out_activation``
    (``"sigmoid"`` for pixels in [0, 1], or ``None``). With ``hidden=()`` and
    ``out_activation=None`` both halves are single linear maps: a *linear*
    autoencoder. Parameter names (``0.0.weight``, ..., ``1.2.bias``) are the
    ones ``torch.nn.Sequential`` gives, so ``nnlib.testing.torch_twin`` works.
    """
    for name, value in (("n_in", n_in), ("code", code)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"autoencoder: expected a positive integer {name}, got {value!r}")
    if out_activation is not None and out_activation not in ACTIVATIONS:
        raise ValueError(f"autoencoder: expected out_activation in {sorted(ACTIVATIONS)} "
                         f"or None, got {out_activation!r}")
    hidden = tuple(hidden)
    encoder = mlp(n_in, code, hidden, activation, rng=rng)
    decoder = mlp(code, n_in, hidden[::-1], activation, rng=rng)
    if out_activation is not None:
        decoder = Sequential(*decoder, ACTIVATIONS[out_activation]())
    return Sequential(encoder, decoder)


def char_lstm(vocab_size: int, embed: int = 32, hidden: int = 128, rng=None,
              dtype=np.float64) -> Sequential:
    """A character-level language model: ``Embedding -> LSTM -> Linear``.

    Input ``(N, T)`` character ids; output ``(N, T, vocab_size)`` scores for the
    next character at every position. Parameter names are PyTorch's
    (``0.weight``, ``1.weight_ih_l0``, ..., ``2.bias``), so ``nnlib.testing.torch_twin``
    gives the same model in torch and weights move both ways by name.
    """
    return Sequential(Embedding(vocab_size, embed, rng=rng, dtype=dtype),
                      LSTM(embed, hidden, rng=rng, dtype=dtype),
                      Linear(hidden, vocab_size, rng=rng, dtype=dtype))


def sample_chars(model: Sequential, vocab, prime: str, n: int, temperature: float = 1.0,
                 context: int = 100, rng=None) -> str:
    """Continue ``prime`` by ``n`` characters drawn one at a time from the model's
    softmax(scores / temperature); the model rereads at most the last ``context``
    characters at each step (simple, not fast)."""
    if not temperature > 0:
        raise ValueError(f"sample_chars: expected temperature > 0, got {temperature!r}")
    if not prime:
        raise ValueError("sample_chars: expected a non-empty prime string")
    rng = get_rng(rng)
    ids = list(vocab.encode(prime))
    for _ in range(n):
        scores = model(np.array([ids[-context:]]))[0, -1].astype(np.float64)
        ids.append(int(rng.choice(len(vocab), p=softmax(scores / temperature))))
    return vocab.decode(ids)


def conv_stack(depth: int, residual: bool, width: int = 8, n_in: int = 1,
               n_out: int = 10, rng=None) -> Sequential:
    """A small pre-activation CNN for 8x8 digits, plain or residual.

    ``Conv2d(n_in, width, 3, padding=1) -> MaxPool2d(2)`` (the stem: 8x8 maps
    to 4x4), then ``depth`` blocks ``F = BatchNorm2d -> ReLU -> Conv2d(width,
    width, 3, padding=1)``, each used as ``x -> F(x)`` (plain) or inside
    ``Residual`` as ``x -> x + F(x)``, then ``BatchNorm2d -> ReLU ->
    AdaptiveAvgPool2d(1) -> Flatten -> Linear(width, n_out)`` (global average
    pooling and one dense layer). The plain and the residual network of one
    depth have the same parameters, and the same initial values when built
    after the same ``nnlib.manual_seed`` (or from equal ``rng``). Maps
    ``x: (N, n_in, H, W) -> (N, n_out)`` scores, ``H`` and ``W`` even.
    """
    from .layers import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten,
                         MaxPool2d, Residual)
    for name, value in (("depth", depth), ("width", width), ("n_in", n_in),
                        ("n_out", n_out)):
        if not (isinstance(value, (int, np.integer)) and value >= (0 if name == "depth" else 1)):
            raise ValueError(f"conv_stack: expected a {'non-negative' if name == 'depth' else 'positive'} "
                             f"integer {name}, got {value!r}")
    blocks = [Sequential(BatchNorm2d(width), ReLU(),
                         Conv2d(width, width, 3, padding=1, rng=rng))
              for _ in range(depth)]
    if residual:
        blocks = [Residual(b) for b in blocks]
    return Sequential(Conv2d(n_in, width, 3, padding=1, rng=rng), MaxPool2d(2),
                      *blocks, BatchNorm2d(width), ReLU(), AdaptiveAvgPool2d(1),
                      Flatten(), Linear(width, n_out, rng=rng))
