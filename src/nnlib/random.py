"""The random number generator that nnlib uses when a call is not given one.

``nnlib.manual_seed(0)`` makes every later initialisation and shuffle repeatable,
like ``torch.manual_seed``. Pass ``rng=np.random.default_rng(...)`` to a call to
keep it independent of the shared generator.
"""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset nnlib's shared generator to ``seed`` and return it."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an integer seed, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def get_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """``rng`` itself if given, else the shared generator."""
    if rng is None:
        return _rng
    if not isinstance(rng, np.random.Generator):
        raise TypeError("expected rng to be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng
