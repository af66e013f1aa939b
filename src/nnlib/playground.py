"""The network playground's training: a small MLP trained on a toy 2-D set,
with snapshots of its weights along the way. ``nnlib.viz.widgets.playground``
is the live panel that calls ``train_toy``; ``nnlib.viz.plots.draw_toy_run``
draws a run and ``nnlib.viz.animations.playground_animation`` renders its
static twin for the HTML book."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import data, models, optim
from .losses import CrossEntropyLoss
from .train import DivergenceError, fit

__all__ = ["ToyRun", "train_toy"]


@dataclass
class ToyRun:
    """What ``train_toy`` returns: the data, the model, per-epoch losses and
    accuracies, and ``(epoch, state_dict)`` snapshots; ``error`` holds the
    message if training diverged (the losses then stop at the last good epoch)."""
    X: np.ndarray
    y: np.ndarray
    model: object
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    error: str | None = None
    config: dict = field(default_factory=dict)


def train_toy(dataset: str = "spiral", hidden_layers: int = 2, width: int = 16,
              activation: str = "tanh", lr: float = 0.03, weight_decay: float = 0.0,
              epochs: int = 150, n: int = 300, seed: int = 0,
              snapshot_every: int = 10) -> ToyRun:
    """Train an MLP (Adam, full-batch-ish mini-batches of 50) on a toy set."""
    where = "train_toy"
    if dataset not in data.TOY_SETS:
        raise ValueError(f"{where}: expected dataset in {sorted(data.TOY_SETS)}, got {dataset!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{where}: expected a learning rate > 0, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"{where}: expected weight_decay >= 0, got {weight_decay!r}")
    for name, v, lo in (("hidden_layers", hidden_layers, 0), ("width", width, 1),
                        ("epochs", epochs, 1), ("n", n, 4), ("snapshot_every", snapshot_every, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{where}: expected an integer {name} >= {lo}, got {v!r}")
    X, y = data.make_toy(dataset, n=n, seed=seed)
    rng = np.random.default_rng(seed)
    model = models.mlp(2, int(y.max()) + 1, hidden=(width,) * hidden_layers,
                       activation=activation, rng=rng)
    opt = optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    run = ToyRun(X, y, model, config=dict(dataset=dataset, hidden_layers=hidden_layers,
                                          width=width, activation=activation, lr=lr,
                                          weight_decay=weight_decay))
    run.snapshots.append((0, model.state_dict()))

    def record(epoch, hist):
        run.train_loss.append(hist.train_loss[-1])
        run.train_acc.append(hist.train_acc[-1])
        if epoch % snapshot_every == 0 or epoch == epochs:
            run.snapshots.append((epoch, model.state_dict()))

    try:
        fit(model, CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=50, rng=rng,
            progress=False, callback=record)
    except DivergenceError as e:
        run.error = str(e)
    return run
