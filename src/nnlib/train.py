"""A small, explicit training loop: mini-batches, history, progress bar.

``fit`` is the loop a chapter would otherwise write by hand::

    for epoch in range(epochs):
        for xb, yb in batches(X, y, batch_size, rng=rng):
            loss = loss_fn(model.forward(xb), yb)
            model.zero_grad(); model.backward(loss_fn.backward()); optimizer.step()
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .data import batches
from .module import Module
from .random import get_rng

__all__ = ["fit", "History", "accuracy", "predict", "progress_bar"]


def progress_bar(iterable, desc: str = "", enabled: bool = True, **kwargs):
    """A tqdm progress bar (a widget in Jupyter, text in a terminal).

    Off when ``enabled`` is false or the environment sets ``TQDM_DISABLE=1``,
    as the book's build and tests do: bars are for a reader at a live kernel.
    (tqdm's notebook bar ignores that variable by itself.)
    """
    import os

    from tqdm.auto import tqdm

    off = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
    return tqdm(iterable, desc=desc, disable=off or not enabled, leave=False, **kwargs)


def predict(model: Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class predictions (argmax of the scores), in evaluation mode."""
    was_training = model.training
    model.eval()
    out = np.concatenate([model.forward(X[i:i + batch_size]).argmax(axis=1)
                          for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: Module, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals the label."""
    return float(np.mean(predict(model, X) == np.asarray(y)))


@dataclass
class History:
    """Per-epoch records: mean training loss, and accuracies if labels are classes."""
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)


def fit(model: Module, loss_fn, optimizer, X, y, epochs: int, batch_size: int = 32,
        X_val=None, y_val=None, rng=None, progress: bool = True,
        classification: bool = True) -> History:
    """Train ``model`` in place with mini-batch gradient steps; return the history."""
    if epochs < 1:
        raise ValueError(f"fit: expected epochs >= 1, got {epochs}")
    if (X_val is None) != (y_val is None):
        raise ValueError("fit: give both X_val and y_val, or neither")
    rng = get_rng(rng)
    hist = History()
    bar = progress_bar(range(epochs), desc="epochs", enabled=progress)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches(X, y, batch_size, rng=rng):
            loss = loss_fn(model.forward(xb), yb)
            model.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            total += loss * len(xb)
            count += len(xb)
        hist.train_loss.append(total / count)
        if classification:
            hist.train_acc.append(accuracy(model, X, y))
            if X_val is not None:
                hist.val_acc.append(accuracy(model, X_val, y_val))
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.4f}")
    model.eval()
    return hist
