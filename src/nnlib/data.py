"""Data that needs no download: scikit-learn's bundled digits, toy 2-D sets,
stratified splits and mini-batches.

Every function takes ``seed`` or ``rng`` so that chapters print the same numbers
on every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .random import get_rng

__all__ = ["load_digits", "make_moons", "make_circles", "make_spirals", "Split",
           "train_val_test_split", "batches", "one_hot"]


def load_digits(images: bool = False):
    """The 1,797 handwritten digits (8x8, 16 grey levels) that ship with scikit-learn.

    Returns ``(X, y)``: ``X`` float64 scaled to [0, 1], shape ``(1797, 64)``, or
    ``(1797, 1, 8, 8)`` (NCHW) when ``images=True``; ``y`` int64 labels 0-9.
    Nothing is downloaded: the file is part of the scikit-learn package.
    """
    from sklearn.datasets import load_digits as _load

    d = _load()
    X = d.data.astype(np.float64) / 16.0
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return X, d.target.astype(np.int64)


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles (scikit-learn's ``make_moons``), labels 0/1."""
    from sklearn.datasets import make_moons as _moons

    X, y = _moons(n_samples=n, noise=noise, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_circles(n: int = 200, noise: float = 0.08, factor: float = 0.5, seed: int = 0):
    """A small circle inside a large one (scikit-learn's ``make_circles``)."""
    from sklearn.datasets import make_circles as _circles

    X, y = _circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0):
    """``classes`` interleaved spiral arms (the CS231n toy set; not in scikit-learn).

    Arm k at parameter t in [0, 1]: radius t, angle 4 t + 2 pi k / classes, plus
    Gaussian noise of std ``noise`` on the angle. ``n`` points in all.
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


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


def train_val_test_split(X, y, val: float = 0.15, test: float = 0.15, seed: int = 0,
                         stratify: bool = True) -> Split:
    """Split into train / validation / test, each keeping the class proportions.

    Uses scikit-learn's ``train_test_split`` twice (test first, then validation
    out of the rest). ``val`` and ``test`` are fractions of the whole data set.
    """
    from sklearn.model_selection import train_test_split

    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"train_val_test_split: expected as many labels as rows, "
                         f"got {len(X)} rows and {len(y)} labels")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"train_val_test_split: expected 0 < val, test and val + test "
                         f"< 1, got val={val}, test={test}")
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test, random_state=seed, stratify=y if stratify else None)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val / (1 - test), random_state=seed + 1,
        stratify=y_rest if stratify else None)
    return Split(X_train, y_train, X_val, y_val, X_test, y_test)


def batches(X, y, batch_size: int, shuffle: bool = True, rng=None):
    """Yield ``(X_batch, y_batch)`` covering every row once; the last may be smaller."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: expected a positive integer batch_size, got {batch_size!r}")
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"batches: expected as many labels as rows, got {n} rows and "
                         f"{len(y)} labels")
    order = get_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], (None if y is None else y[idx])


def one_hot(y, n_classes: int) -> np.ndarray:
    """Integer labels ``(N,)`` to a float64 matrix ``(N, n_classes)``."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise TypeError(f"one_hot: expected a 1-D integer array, got dtype {y.dtype} "
                        f"and shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"one_hot: expected labels in [0, {n_classes}), got "
                         f"{y.min()}..{y.max()}")
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out
