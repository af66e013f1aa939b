"""Chapter 9's experiment: VGG16 on 8x8 digits upsampled to 32x32,
pretrained on printed letters and symbols (no digit among them, so the head
is replaced and only features can transfer) or without labels, then trained
on few labels per class by each of ``STUDY_METHODS``, every method with the
same step budget, its own learning rate chosen on validation, and validation
labels taken from inside the label budget. The data (the handwritten digits'
split, printed characters rendered from matplotlib's fonts, label budgets),
the network (``small_vgg16``), linear probes at several depths, LoRA
(``nnlib.torch.lora``), self-supervised pretraining (a denoising
autoencoder), one run of the study (``study_run``) and the choice of a
learning rate (``tune``). The training itself is ``nnlib.torch.finetune``;
``scripts/vgg_fair_study.py`` runs the whole study.

This module imports PyTorch; ``import nnlib`` alone does not.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .finetune import TrainConfig, _shift, count_trainable, evaluate, fit

__all__ = ["upsample", "printed_digits", "digits_split", "printed_split", "per_class_subset",
           "small_vgg16", "ssl_pretrain", "SYMBOLS", "STUDY_METHODS", "LR_GRIDS", "C_GRID",
           "DEPTHS", "STEPS", "PATIENCE_STEPS", "LORA_RANK", "VAL_SHARE", "printed_symbols",
           "symbols_split", "symbols_vgg16", "transfer_state", "budget_split", "study_schedule",
           "depth_features", "probe_run", "study_model", "study_config", "study_run", "tune"]


# --- data ---------------------------------------------------------------------

def upsample(X, side: int = 32) -> np.ndarray:
    """Images ``(N, C, h, w)`` (or ``(N, h*w)``, taken as square and
    single-channel) resized to ``side x side`` by bilinear interpolation, as
    float32: the 8x8 digits become inputs a VGG16 can pool five times."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 2:
        h = int(round(np.sqrt(X.shape[1])))
        if h * h != X.shape[1]:
            raise ValueError(f"upsample: expected square images, got rows of {X.shape[1]} "
                             f"values")
        X = X.reshape(len(X), 1, h, h)
    if X.ndim != 4:
        raise ValueError(f"upsample: expected images (N, C, h, w) or (N, h*w), got "
                         f"shape {X.shape}")
    out = F.interpolate(torch.from_numpy(X), size=(side, side), mode="bilinear",
                        align_corners=False)
    return out.numpy()


def printed_digits(n_per_digit: int, seed: int = 0, noise: float = 0.05, side: int = 32):
    """The digits 0-9 printed in the fonts matplotlib ships (the earlier
    stand-in's source task, and chapter 9's printed-digit probe),
    rendered like scikit-learn's digits (8x8 ink counts) with random rotation,
    size and shift (``nnlib.data.render_glyphs`` with ``jitter=1``), plus
    Gaussian pixel noise of std ``noise``, clipped to [0, 1] and upsampled to
    ``side``. Returns ``(X (N, 1, side, side) float32, y int64)``."""
    from ..data import render_glyphs

    rng = np.random.default_rng(seed)
    X, y = render_glyphs("0123456789", n_per_char=n_per_digit, size=8, jitter=1.0, rng=rng)
    X = np.clip(X + noise * rng.standard_normal(X.shape), 0.0, 1.0)
    order = rng.permutation(len(X))
    return upsample(X[order], side), y[order]


def digits_split(side: int = 32, seed: int = 0):
    """The case study's split of scikit-learn's handwritten digits, upsampled
    to ``side``: 1,077 train, 270 validation, 450 test, stratified."""
    from ..data import load_digits, train_val_test_split

    X, y = load_digits()
    return train_val_test_split(upsample(X, side), y, val=0.15, test=0.25, seed=seed)


def printed_split(n_per_digit: int = 500, side: int = 32, seed: int = 0):
    """``printed_digits`` split 70 / 15 / 15 %."""
    from ..data import train_val_test_split

    X, y = printed_digits(n_per_digit, seed=seed, side=side)
    return train_val_test_split(X, y, val=0.15, test=0.15, seed=seed)


def per_class_subset(y, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` examples of each class (all when ``None``),
    drawn without replacement with ``seed``; sorted."""
    y = np.asarray(y)
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if per_class > len(members):
            raise ValueError(f"per_class_subset: class {c} has {len(members)} examples, "
                             f"fewer than the {per_class} asked for")
        picked.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picked))


# --- the network and self-supervised pretraining ---------------------------------------

def small_vgg16(seed: int = 0) -> nn.Module:
    """The case study's network: VGG16 with channels divided by 8, BatchNorm,
    one input channel, 32x32 inputs (features end at 1x1), ten classes."""
    from .vgg import vgg16

    torch.manual_seed(seed)
    return vgg16(num_classes=10, width=8, in_channels=1, pool=1, batch_norm=True)


class _Decoder(nn.Module):
    """1x1 feature map -> 32x32 image, five 2x upsamplings (transposed convolutions)."""

    def __init__(self, channels: int):
        super().__init__()
        widths = [channels, 32, 16, 8, 8]
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.BatchNorm2d(b),
                       nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], 1, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


def ssl_pretrain(model, X, epochs: int = 30, noise: float = 0.3, lr: float = 1e-3,
                 batch_size: int = 64, seed: int = 0, progress: bool = True) -> list:
    """Self-supervised pretraining of ``model.features`` without labels: a
    denoising autoencoder (chapter 6's idea) whose encoder is the VGG16
    feature extractor and whose decoder is thrown away afterwards. Returns the
    reconstruction loss per epoch."""
    from ..train import progress_bar

    torch.manual_seed(seed)
    channels = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
    decoder = _Decoder(channels)
    params = list(model.features.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    Xt = torch.as_tensor(X)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for epoch in progress_bar(range(epochs), desc="self-supervised", enabled=progress):
        order = torch.randperm(len(Xt), generator=gen)
        total, steps = 0.0, 0
        for i in range(0, len(Xt) - batch_size + 1, batch_size):
            clean = _shift(Xt[order[i:i + batch_size]], 2, gen)
            noisy = clean + noise * torch.randn(clean.shape, generator=gen)
            loss = F.mse_loss(torch.sigmoid(decoder(model.features(noisy))), clean)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / steps)
    return losses


# --- the fair study: a source task with other classes, every method tuned ---------
#
# The source task above shares the target's ten classes, so a model pretrained
# on it keeps its head: that is domain adaptation. The study below pretrains on
# printed letters and symbols instead (no digit among them, and none of the
# letters that look most like one), so that only features can transfer: the
# head is replaced. Every method gets the same step budget, with a patience
# that ends most runs before it, its learning rate chosen on validation from a
# grid that is widened until the choice is not at its edge, and its validation
# images drawn from inside its label budget (or, the other way, the 270
# validation digits).

#: The source task's classes: 21 capitals, 10 small letters and 12 symbols.
#: Left out: the digits, and the letters that look most like one at 8x8
#: (O o I l S s Z z B b g q), and small letters that look like their capital.
SYMBOLS = "ACDEFGHJKLMNPQRTUVWXYadefhimnrt#%&+=?@<>*$!"

#: What the study trains (``"probe"`` fits a logistic regression instead).
STUDY_METHODS = ("scratch", "probe", "full", "lp-ft", "bitfit", "lora", "ssl")

#: Each method's starting grid of learning rates (of the pretrained layers for
#: full and lp-ft, whose new head trains at ten times the rate; of everything
#: that trains otherwise). ``tune`` widens a grid whose best value is at an edge.
LR_GRIDS = {"scratch": (3e-4, 1e-3, 3e-3), "full": (1e-4, 3e-4, 1e-3),
            "lp-ft": (1e-4, 3e-4, 1e-3), "bitfit": (1e-3, 3e-3, 1e-2),
            "lora": (1e-3, 3e-3, 1e-2), "ssl": (1e-4, 3e-4, 1e-3)}

#: The probe's grid of inverse regularisation strengths (scikit-learn's C).
C_GRID = (0.001, 0.01, 0.1, 1.0)

#: The depths at which a linear probe reads the frozen network: the outputs of
#: the third, fourth and fifth convolutional blocks (after pooling), and of the
#: first and second dense layers (after ReLU).
DEPTHS = ("block3", "block4", "block5", "fc1", "fc2")

#: Steps every trained method gets, the patience in steps (rounded up to whole
#: epochs), the LoRA rank, and the share of a label budget kept for validation.
STEPS, PATIENCE_STEPS, LORA_RANK, VAL_SHARE = 800, 200, 4, 0.2


def printed_symbols(n_per_class: int, seed: int = 0, noise: float = 0.05, side: int = 32):
    """The fair study's source task: the characters of ``SYMBOLS`` printed in
    the fonts matplotlib ships, rendered and noised as ``printed_digits``.
    Returns ``(X (N, 1, side, side) float32, y int64)``, ``y`` indexing
    ``SYMBOLS``."""
    from ..data import render_glyphs

    rng = np.random.default_rng(seed)
    X, y = render_glyphs(SYMBOLS, n_per_char=n_per_class, size=8, jitter=1.0, rng=rng)
    X = np.clip(X + noise * rng.standard_normal(X.shape), 0.0, 1.0)
    order = rng.permutation(len(X))
    return upsample(X[order], side), y[order]


def symbols_split(n_per_class: int = 100, side: int = 32, seed: int = 0):
    """``printed_symbols`` split 70 / 15 / 15 %."""
    from ..data import train_val_test_split

    X, y = printed_symbols(n_per_class, seed=seed, side=side)
    return train_val_test_split(X, y, val=0.15, test=0.15, seed=seed)


def symbols_vgg16(seed: int = 0) -> nn.Module:
    """``small_vgg16`` with one output per character of ``SYMBOLS``."""
    from .vgg import vgg16

    torch.manual_seed(seed)
    return vgg16(num_classes=len(SYMBOLS), width=8, in_channels=1, pool=1, batch_norm=True)


def transfer_state(source_state: dict) -> dict:
    """The source model's weights without its head (``classifier.6``): what a
    new ten-way model loads (``load_state_dict(..., strict=False)``)."""
    return {k: v for k, v in source_state.items() if not k.startswith("classifier.6.")}


def budget_split(split, per_class: int, seed: int, val_mode: str = "inside"):
    """``(train, val)`` for a label budget of ``per_class`` handwritten digits
    per class, drawn with ``seed`` from ``split``'s training set. ``"inside"``:
    ``VAL_SHARE`` of each class's labels (at least one) are the validation set,
    so early stopping and tuning spend labels of the budget; ``"outside"``: all
    of them train and the validation set is ``split``'s 270 digits."""
    if val_mode not in ("inside", "outside"):
        raise ValueError(f"budget_split: expected val_mode 'inside' or 'outside', got "
                         f"{val_mode!r}")
    keep = per_class_subset(split.y_train, per_class, seed=seed)
    if val_mode == "outside":
        return (split.X_train[keep], split.y_train[keep]), (split.X_val, split.y_val)
    n_val = max(1, int(round(VAL_SHARE * per_class)))
    if n_val >= per_class:
        raise ValueError(f"budget_split: expected per_class >= 2 to keep labels for both "
                         f"training and validation, got {per_class}")
    rng = np.random.default_rng(seed + 7_919)
    val_idx = np.concatenate([rng.choice(keep[split.y_train[keep] == c], n_val, replace=False)
                              for c in np.unique(split.y_train[keep])])
    tr_idx = np.setdiff1d(keep, val_idx)
    return ((split.X_train[tr_idx], split.y_train[tr_idx]),
            (split.X_train[np.sort(val_idx)], split.y_train[np.sort(val_idx)]))


def study_schedule(n_train: int, steps: int | None = None) -> dict:
    """Batch size, epoch cap and patience (epochs) for ``n_train`` images: the
    cap gives ``steps`` steps (default ``STEPS``), the patience a quarter of
    them (``PATIENCE_STEPS`` by default), both rounded up to whole epochs."""
    steps = STEPS if steps is None else steps
    patience = PATIENCE_STEPS * steps // STEPS
    batch = min(16 if n_train < 200 else 32, n_train)
    per_epoch = n_train // batch
    return {"batch_size": batch, "epochs": -(-steps // per_epoch),
            "patience": -(-patience // per_epoch)}


@torch.no_grad()
def refresh_batchnorm(model: nn.Module, X) -> nn.Module:
    """Re-estimate every BatchNorm layer's running mean and variance on the
    images ``X`` (one pass in training mode, no labels, no weight changes),
    as AdaBN (Li et al., 2016) does for a new domain. Returns ``model`` in
    eval mode, its statistics those of ``X``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("refresh_batchnorm: expected a model with BatchNorm layers, got none")
    if len(X) < 2:
        raise ValueError(f"refresh_batchnorm: expected at least 2 images, got {len(X)}")
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = 1.0                  # the running stats become this batch's
    model.train()
    model(torch.as_tensor(X))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return model.eval()


@torch.no_grad()
def depth_features(model, X, depth: str, batch_size: int = 256) -> np.ndarray:
    """The frozen ``model``'s activations at ``depth`` (one of ``DEPTHS``), in
    eval mode, flattened to ``(N, features)``."""
    if depth not in DEPTHS:
        raise ValueError(f"depth_features: expected depth in {DEPTHS}, got {depth!r}")
    model.eval()
    pools = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
    if depth.startswith("block"):
        body = nn.Sequential(*model.features[:pools[int(depth[5:]) - 1] + 1], nn.Flatten())
    else:
        dense = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.ReLU)]
        upto = dense[int(depth[2:]) - 1] + 1
        body = nn.Sequential(model.features, model.avgpool, nn.Flatten(),
                             *model.classifier[:upto])
    return np.concatenate([body(torch.as_tensor(X[i:i + batch_size])).numpy()
                           for i in range(0, len(X), batch_size)])


def _widen(grid: tuple, tied, factor: float) -> tuple | None:
    """The grid widened by one value at each of its edges that is among the
    ``tied`` best values, or ``None`` when neither edge is."""
    low = (grid[0] / factor,) if grid[0] in tied else ()
    high = (grid[-1] * factor,) if grid[-1] in tied else ()
    return low + tuple(grid) + high if low or high else None


def _choose(grid, score, factor: float = 3.0, max_widen: int = 3):
    """Evaluate ``score(value)`` on ``grid``, widening it while an edge value
    scores as well as the best (at most ``max_widen`` times). Returns ``(best
    value, grid, scores)``; of tied values, the middle one (the lower of two).
    An edge ties the best only if the widening ran out (``edge_tied``)."""
    grid, scores = tuple(grid), {}
    for round_ in range(max_widen + 1):
        for v in grid:
            if v not in scores:
                scores[v] = score(v)
        top = max(scores[v] for v in grid)
        tied = [v for v in grid if scores[v] == top]
        best = tied[(len(tied) - 1) // 2]           # ties: the middle one
        wider = _widen(grid, tied, factor)
        if wider is None or round_ == max_widen:
            break
        grid = wider
    return best, grid, scores


def edge_tied(grid, scores) -> bool:
    """Whether an edge of ``grid`` scores as well as its best value: the
    search could not tell that a value beyond the grid is not better."""
    top = max(scores[v] for v in grid)
    return scores[grid[0]] == top or scores[grid[-1]] == top


def probe_run(model, train, val, test, depth: str, seed: int = 0,
              adapt_bn: bool = False) -> dict:
    """A linear probe at ``depth``: logistic regression (scikit-learn) on the
    standardized frozen features, its C chosen on ``val`` (grid ``C_GRID``,
    widened tenfold at an edge). ``adapt_bn``: first re-estimate a copy's
    BatchNorm statistics on the training images (``refresh_batchnorm``, no
    labels used). Returns validation and test accuracy, C."""
    import copy

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if adapt_bn:
        model = refresh_batchnorm(copy.deepcopy(model), train[0])

    F_tr, F_va, F_te = (depth_features(model, X, depth) for X in (train[0], val[0], test[0]))
    scaler = StandardScaler().fit(F_tr)
    F_tr, F_va, F_te = (scaler.transform(F) for F in (F_tr, F_va, F_te))
    fitted = {}

    def score(C):
        fitted[C] = LogisticRegression(C=C, max_iter=1000, random_state=seed).fit(F_tr, train[1])
        return fitted[C].score(F_va, val[1])

    C, grid, scores = _choose(C_GRID, score, factor=10.0, max_widen=2)
    return {"val": float(scores[C]), "test": float(fitted[C].score(F_te, test[1])),
            "C": C, "at_edge": edge_tied(grid, scores), "depth": depth}


def study_model(method: str, seed: int, source_state: dict | None,
                ssl_state: dict | None = None) -> nn.Module:
    """A ten-way ``small_vgg16`` (head drawn with ``seed``), its other layers
    from ``source_state`` (from ``ssl_state`` for ``"ssl"``, none for
    ``"scratch"``), wrapped for LoRA when ``method`` is ``"lora"``."""
    model = small_vgg16(seed)
    state = ssl_state if method == "ssl" else source_state
    if method != "scratch":
        if state is None:
            need = "ssl_state" if method == "ssl" else "source_state"
            raise ValueError(f"study_model: method {method!r} needs {need}")
        missing, unexpected = model.load_state_dict(transfer_state(state), strict=False)
        if unexpected or set(missing) != {"classifier.6.weight", "classifier.6.bias"}:
            raise ValueError(f"study_model: expected source weights for every layer but "
                             f"the head, missing {missing}, unexpected {unexpected}")
    if method == "lora":
        from .lora import add_lora
        add_lora(model, r=LORA_RANK)
    return model


def study_config(method: str, lr: float, n_train: int, seed: int,
                 steps: int | None = None) -> TrainConfig:
    """``TrainConfig`` of a trained method (not the probe) at ``lr``."""
    s = study_schedule(n_train, steps)
    kw = {"scratch": {}, "full": {"head_lr": 10 * lr}, "ssl": {"head_lr": 10 * lr},
          "lp-ft": {"head_lr": 10 * lr, "probe_epochs": s["patience"]},
          "bitfit": {"trainable": "bias"}, "lora": {"trainable": "lora"}}[method]
    return TrainConfig(lr=lr, shift=2, seed=seed, **s, **kw)


def study_run(method: str, split, per_class: int, seed: int, lr: float | None = None,
              source_state: dict | None = None, val_mode: str = "inside",
              depth: str | None = None, ssl_state: dict | None = None,
              steps: int | None = None) -> dict:
    """One run of the fair study: ``method`` on a label budget of
    ``per_class`` digits per class (``budget_split``), at learning rate
    ``lr`` (a trained method) or at ``depth`` (the probe; ``None``: the depth
    chosen on validation among ``DEPTHS``). Returns test and validation
    accuracy and the bookkeeping: the epoch cap, the best epoch, whether
    patience ended the run, the parameters trained."""
    if method not in STUDY_METHODS:
        raise ValueError(f"study_run: expected method in {STUDY_METHODS}, got {method!r}")
    train, val = budget_split(split, per_class, seed, val_mode)
    test = (split.X_test, split.y_test)
    start = time.perf_counter()
    model = study_model(method, seed, source_state, ssl_state)
    if method == "probe":
        probes = [probe_run(model, train, val, test, d, seed)
                  for d in ([depth] if depth else DEPTHS)]
        best = max(probes, key=lambda r: r["val"])   # ties: the shallower depth
        out = dict(best, trainable=None, best_epoch=None, cap=None, stopped_early=None,
                   by_depth={p["depth"]: {k: p[k] for k in ("val", "test", "C")}
                             for p in probes})
    else:
        if lr is None:
            raise ValueError(f"study_run: method {method!r} needs a learning rate lr")
        config = study_config(method, lr, len(train[1]), seed, steps)
        r = fit(model, train, val, config, progress=False)
        out = {"val": r.best_val, "test": evaluate(model, *test), "lr": lr,
               "best_epoch": r.best_epoch, "cap": config.epochs,
               "stopped_early": len(r.history) < config.epochs,
               "trainable": count_trainable(model)}
    out.update(method=method, per_class=per_class, seed=seed, val_mode=val_mode,
               n_train=int(len(train[1])), n_val=int(len(val[1])),
               seconds=round(time.perf_counter() - start, 1))
    return out


def tune(method: str, split, per_class: int, seeds, source_state: dict | None,
         val_mode: str = "inside", grid: tuple | None = None,
         ssl_state: dict | None = None, steps: int | None = None) -> dict:
    """The learning rate of ``method`` chosen by validation accuracy averaged
    over the budget splits of ``seeds`` (tuning seeds, none of them a reported
    one), from ``LR_GRIDS[method]`` (or ``grid``), widened threefold while an
    edge ties the best. Returns ``lr``, the grid, each rate's mean and
    per-seed validation accuracy and whether an edge still ties the best."""
    seeds = (seeds,) if isinstance(seeds, int) else tuple(seeds)
    by_seed = {}

    def score(v):
        by_seed[v] = [study_run(method, split, per_class, s, v, source_state, val_mode,
                                ssl_state=ssl_state, steps=steps)["val"] for s in seeds]
        return float(np.mean(by_seed[v]))

    lr, grid, scores = _choose(grid or LR_GRIDS[method], score)
    return {"method": method, "per_class": per_class, "seeds": list(seeds),
            "val_mode": val_mode, "lr": lr, "grid": list(grid),
            "val": {str(k): v for k, v in sorted(scores.items())},
            "val_by_seed": {str(k): v for k, v in sorted(by_seed.items())},
            "at_edge": edge_tied(grid, scores)}
