"""Toy 2-D data sets for classifiers you can draw: moons, circles, spirals and
XOR, each seeded; and one toy sequence task, ``first_before_last``."""
from __future__ import annotations

import numpy as np

__all__ = ["make_moons", "make_circles", "make_spirals", "make_xor", "make_toy", "TOY_SETS",
           "first_before_last"]


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles (scikit-learn's ``make_moons``), labels 0/1.
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64."""
    from sklearn.datasets import make_moons as _moons

    X, y = _moons(n_samples=n, noise=noise, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_circles(n: int = 200, noise: float = 0.08, factor: float = 0.5, seed: int = 0):
    """A small circle inside a large one (scikit-learn's ``make_circles``).
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64 (1: the inner circle)."""
    from sklearn.datasets import make_circles as _circles

    X, y = _circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0):
    """``classes`` interleaved spiral arms (the CS231n toy set; not in scikit-learn).

    Arm k at parameter t in [0, 1]: radius t, angle 4 t + 2 pi k / classes, plus
    Gaussian noise of std ``noise`` on the angle. ``n`` points in all.
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64 in [0, classes).
    """
    if classes < 2 or n < classes:
        raise ValueError(f"make_spirals: expected classes >= 2 and n >= classes, "
                         f"got n={n}, classes={classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = rng.uniform(0.05, 1.0, n)
    angle = 4.0 * t + 2 * np.pi * y / classes + noise * rng.standard_normal(n)
    X = np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1)
    return X, y.astype(np.int64)


def make_xor(n: int = 200, noise: float = 0.15, seed: int = 0):
    """Four Gaussian blobs at (+-1, +-1); the label is 1 where the signs differ (XOR).
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    X = signs + noise * 2 * rng.standard_normal((n, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(np.int64)
    return X * 0.5, y


TOY_SETS = {"moons": make_moons, "circles": make_circles, "spiral": make_spirals,
            "xor": make_xor}


def make_toy(name: str, n: int = 300, seed: int = 0):
    """One of the toy 2-D sets by name: 'moons', 'circles', 'spiral' or 'xor'.
    Returns ``X: (n, 2)`` and ``y: (n,)``."""
    if name not in TOY_SETS:
        raise ValueError(f"make_toy: expected one of {sorted(TOY_SETS)}, got {name!r}")
    return TOY_SETS[name](n=n, seed=seed)


def first_before_last(n: int, rng, length: int = 6, vocab: int = 8):
    """The order task of chapter 5's attention sections: sequences of ``length``
    random tokens from ``range(vocab)``, labelled 1 if the first token is
    smaller than the last, else 0; sequences whose first and last tokens are
    equal are dropped, so fewer than ``n`` come back.

    ``rng``: a ``numpy.random.Generator`` (one ``integers`` call of shape
    ``(n, length)`` is drawn from it). Returns ``x: (m, length)`` int64 and
    ``y: (m,)`` int64 with ``m <= n``. The label needs the order of the
    tokens: the same tokens in another order can change it."""
    for what, v, low in (("n", n, 1), ("length", length, 2), ("vocab", vocab, 2)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ValueError(f"first_before_last: expected {what} to be an integer "
                             f">= {low}, got {v!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"first_before_last: expected rng to be a numpy.random."
                        f"Generator, got {type(rng).__name__}")
    x = rng.integers(vocab, size=(n, length))
    x = x[x[:, 0] != x[:, -1]]                # no ties
    return x, (x[:, 0] < x[:, -1]).astype(np.int64)
