"""An explicit training loop: mini-batches, validation every epoch, early
stopping that restores the best weights, checkpoints, a progress bar, and a
clear stop when the loss diverges.

``fit`` is the loop a chapter would otherwise write by hand::

    for epoch in range(epochs):
        for xb, yb in batches(X, y, batch_size, rng=rng):
            loss = loss_fn(model.forward(xb), yb)
            model.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_finite
from .errors import DivergenceError, NonFiniteError
from .data import batches
from .module import Module, no_grad
from .random import get_rng

__all__ = ["fit", "History", "accuracy", "predict", "evaluate_loss", "progress_bar",
           "final_train_loss", "recompute_bn_stats",
           "DivergenceError"]


def progress_bar(iterable, desc: str = "", enabled: bool = True, **kwargs):
    """A tqdm progress bar: a widget in Jupyter, text in an interactive terminal,
    nothing when output goes to a file or a log (tqdm's ``disable=None``).

    Also off when ``enabled`` is false or the environment sets ``TQDM_DISABLE=1``,
    as the book's build and tests do: bars are for a reader at a live kernel.
    (tqdm's notebook bar ignores that variable by itself.)
    """
    from tqdm.auto import tqdm

    off = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
    return tqdm(iterable, desc=desc, disable=True if (off or not enabled) else None,
                leave=False, **kwargs)


def predict(model: Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class predictions (argmax of the scores), in evaluation mode, under
    ``no_grad`` (no cache is kept).
    ``X: (N, ...)`` (what ``model`` takes) ``-> (N,)`` int."""
    was_training = model.training
    model.eval()
    with no_grad():
        out = np.concatenate([model.forward(X[i:i + batch_size]).argmax(axis=1)
                              for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: Module, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals the label.
    ``X: (N, ...)``, ``y: (N,)`` int; returns a float in [0, 1]."""
    return float(np.mean(predict(model, X) == np.asarray(y)))


def evaluate_loss(model: Module, loss_fn, X, y) -> float:
    """The loss on ``(X, y)`` in evaluation mode (no dropout), without gradients."""
    was_training = model.training
    model.eval()
    with no_grad():
        value = loss_fn(model.forward(X), y)
    model.train(was_training)
    return float(value)


@dataclass
class History:
    """Per-epoch records. ``best_epoch`` (1-based) is the epoch whose weights the
    model holds at the end when early stopping restored them."""
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def _check_data(X, y, where, name="X"):
    if not isinstance(X, np.ndarray) or X.ndim < 2:
        raise ValueError(f"{where}: expected {name} as an array with one example per row "
                         f"(at least 2 dimensions), got "
                         f"{getattr(X, 'shape', type(X).__name__)}")
    if len(X) == 0:
        raise ValueError(f"{where}: expected at least one example, got an empty {name}")
    check_finite(np.asarray(X, dtype=np.float64), where, name)
    if y is None or len(y) != len(X):
        raise ValueError(f"{where}: expected one label per row of {name}: {len(X)} rows, "
                         f"got {None if y is None else len(y)} labels")


def fit(model: Module, loss_fn, optimizer, X, y, epochs: int, batch_size: int = 32,
        X_val=None, y_val=None, rng=None, progress: bool = True,
        classification: bool = True, patience: int | None = None,
        checkpoint: str | os.PathLike | None = None, callback=None) -> History:
    """Train ``model`` in place with mini-batch gradient steps; return the history.

    * Validation data, if given, is scored after every epoch (loss, and accuracy
      when ``classification``).
    * ``patience=k``: stop after ``k`` epochs without a lower validation loss and
      restore the weights of the best epoch (needs validation data).
    * ``checkpoint``: path of an ``.npz`` file that always holds the best weights
      so far (the last weights without validation data); ``model.load(path)``
      reads it back.
    * ``callback(epoch, history)`` runs after each epoch; return ``False`` to stop.
    * A loss that becomes NaN or infinite raises ``DivergenceError`` naming the
      epoch and step, instead of training on garbage.
    """
    where = "fit"
    _check_data(X, y, where)
    if (X_val is None) != (y_val is None):
        raise ValueError(f"{where}: give both X_val and y_val, or neither")
    if X_val is not None:
        _check_data(X_val, y_val, where, "X_val")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{where}: expected epochs to be an integer >= 1, got {epochs!r}")
    if patience is not None and (X_val is None or patience < 1):
        raise ValueError(f"{where}: early stopping (patience={patience!r}) needs an integer "
                         "patience >= 1 and validation data X_val, y_val")
    rng = get_rng(rng)
    hist = History()
    best_loss, best_state, waited = math.inf, None, 0
    step = 0
    bar = progress_bar(range(epochs), desc="epochs", enabled=progress)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches(X, y, batch_size, rng=rng):
            step += 1
            diverged = (f"fit: the training diverged at epoch {epoch + 1}, step {step} "
                        f"(after {count} examples of that epoch): the weights have blown "
                        "up. Lower the learning rate, or clip the gradients")
            # the data were checked to be finite, so NaN or infinity from here on
            # means divergence: report it once, with its step
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    loss = loss_fn(model.forward(xb), yb)
                    if not math.isfinite(loss):
                        raise NonFiniteError(f"the loss is {loss}")
                    model.zero_grad()
                    model.backward(loss_fn.backward())
                    optimizer.step()
            except (NonFiniteError, FloatingPointError) as e:
                raise DivergenceError(f"{diverged} ({e})") from e
            total += loss * len(xb)
            count += len(xb)
        hist.train_loss.append(total / count)
        if classification:
            hist.train_acc.append(accuracy(model, X, y))
        if X_val is not None:
            hist.val_loss.append(evaluate_loss(model, loss_fn, X_val, y_val))
            if classification:
                hist.val_acc.append(accuracy(model, X_val, y_val))
            if hist.val_loss[-1] < best_loss:
                best_loss, best_state, waited = hist.val_loss[-1], model.state_dict(), 0
                hist.best_epoch = epoch + 1
                if checkpoint is not None:
                    model.save(checkpoint)
            else:
                waited += 1
        elif checkpoint is not None:
            model.save(checkpoint)
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.4f}")
        if patience is not None and waited >= patience:
            hist.stopped_early = True
            break
        if callback is not None and callback(epoch + 1, hist) is False:
            break
    if patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return hist


def recompute_bn_stats(model: Module, X) -> Module:
    """Set the running mean and variance of every batch-norm layer of
    ``model`` that tracks them to the statistics of its input over all of
    ``X`` ("precise BN"), then leave ``model`` in evaluation mode.

    One forward pass over ``X`` as a single batch in training mode, with
    momentum 1 for that pass and no gradients kept, so no weight changes:
    each layer then normalises with the statistics of the whole of ``X`` at
    the current weights, where the running averages of training lag behind
    weights that kept moving. (The running variance is the unbiased one, as
    in training.) ``X: (N, ...)``, what ``model`` takes; returns ``model``.
    """
    from .layers.norm import _BatchNorm
    bns = [m for _, m in model.named_modules()
           if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    model.train()
    try:
        for m in bns:
            m.momentum = 1.0
        with no_grad():
            model.forward(X)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
    return model


def final_train_loss(model: Module, X, y, lr: float, epochs: int, batch_size: int = 64,
                     seed: int = 0, recompute_bn: bool = False) -> float:
    """Train ``model`` in place with ``Adam(lr)`` on the cross-entropy for
    ``epochs`` epochs of mini-batches of ``batch_size`` (batch order from
    ``np.random.default_rng(seed)``), then return the cross-entropy on all of
    ``(X, y)`` in evaluation mode (batch norm with its running statistics;
    with ``recompute_bn``, those are first set to the statistics of all of
    ``X`` at the final weights, by ``recompute_bn_stats``).

    The measure of an optimisation comparison (chapter 4b): the loss the
    training reached on the data it trained on, the same number of steps for
    every model. ``X: (N, ...)``, ``y: (N,)`` int labels.
    """
    from .losses import CrossEntropyLoss
    from .optim import Adam
    fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr), X, y, epochs=epochs,
        batch_size=batch_size, rng=np.random.default_rng(seed), progress=False,
        classification=False)
    if recompute_bn:
        recompute_bn_stats(model, X)
    return evaluate_loss(model, CrossEntropyLoss(), X, y)
