"""Preparing data for training: stratified train / validation / test splits,
mini-batches, one-hot labels, standardization fitted on the training set, and
augmentation by shifting images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_finite
from ..random import get_rng

__all__ = ["Split", "train_val_test_split", "batches", "one_hot", "Standardizer",
           "shift_images"]


@dataclass
class Split:
    """What ``train_val_test_split`` returns: ``X_train: (n_train, ...)`` with
    ``y_train: (n_train,)``, and likewise for the validation and test sets."""
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
    ``X: (N, ...)``, ``y: (N,)``; returns a ``Split`` whose six arrays keep
    ``X``'s trailing shape (images stay ``(n, C, H, W)``).
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


class Standardizer:
    """Subtract the mean and divide by the standard deviation of each feature,
    with statistics **fitted on the training set only** (``fit``), then applied
    to any set (``transform``). Features that are constant in the training set
    (std 0, like the digits' corner pixels) are only centred.

    A thin wrapper around scikit-learn's ``StandardScaler`` that adds the
    book's input checks (2-D, non-empty, finite, right number of features)
    and exposes ``mean`` and ``std`` as arrays. ``X: (N, D) -> (N, D)``;
    ``mean``, ``std``: ``(D,)``.
    """

    def __init__(self):
        from sklearn.preprocessing import StandardScaler

        self._scaler = StandardScaler()
        self._fitted = False

    @property
    def mean(self):
        return self._scaler.mean_ if self._fitted else None

    @property
    def std(self):
        return self._scaler.scale_ if self._fitted else None

    def fit(self, X) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"Standardizer.fit: expected a non-empty (N, features) array, "
                             f"got shape {X.shape}")
        check_finite(X, "Standardizer.fit", "X")
        self._scaler.fit(X)
        self._fitted = True
        return self

    def transform(self, X) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError("Standardizer.transform: call fit(X_train) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise ValueError(f"Standardizer.transform: expected (N, {len(self.mean)}), "
                             f"got {X.shape}")
        check_finite(X, "Standardizer.transform", "X")
        return self._scaler.transform(X)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)


def shift_images(images, max_shift: int = 1, rng=None) -> np.ndarray:
    """Data augmentation: move each image by a random whole number of pixels,
    from ``-max_shift`` to ``max_shift`` in each direction, filling with 0.

    ``images``: (N, H, W) or (N, H*W) for square images; returns the same shape.
    Pixels are moved, not interpolated: the result equals
    ``scipy.ndimage.shift(img, move, order=0, mode="constant")`` for every image
    (checked in tests/test_fast_paths.py), computed for all images at once.
    """
    images = np.asarray(images, dtype=np.float64)
    flat = images.ndim == 2
    if flat:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"shift_images: expected square images, got rows of "
                             f"{images.shape[1]} pixels")
        images = images.reshape(-1, side, side)
    if images.ndim != 3:
        raise ValueError(f"shift_images: expected (N, H, W) or (N, H*W), got {images.shape}")
    rng = get_rng(rng)
    moves = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
    # pad with max_shift zeros, then read each image's window at its offset:
    # out[i, r, c] = images[i, r - dr, c - dc] (0 outside), as
    # scipy.ndimage.shift(order=0, mode="constant") gives, for all at once
    n, h, w = images.shape
    k = max(int(max_shift), 0)
    padded = np.pad(images, ((0, 0), (k, k), (k, k)))
    rows = np.arange(h)[None, :, None] + k - moves[:, 0, None, None]
    cols = np.arange(w)[None, None, :] + k - moves[:, 1, None, None]
    out = padded[np.arange(n)[:, None, None], rows, cols]
    return out.reshape(len(out), -1) if flat else out
