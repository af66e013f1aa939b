"""Chapter 9's experiment: VGG16 on 8x8 digits upsampled to 32x32, pretrained
on printed digits or without labels, then fine-tuned by each of ``METHODS``
on few labels per class. The data (the handwritten digits' split, printed
digits rendered from matplotlib's fonts, label subsets), the network
(``small_vgg16``), a linear probe on frozen features, self-supervised
pretraining (a denoising autoencoder), and one cell of the table
(``transfer_run``). The training itself is ``nnlib.torch.finetune``.

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
           "METHODS", "PATIENCE", "small_vgg16", "schedule", "penultimate", "linear_probe",
           "ssl_pretrain", "transfer_run"]


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
    """The source task: the digits 0-9 printed in the fonts matplotlib ships,
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
    """The source task's split: ``printed_digits``, 70 / 15 / 15 %."""
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


# --- the case study's methods ---------------------------------------------------------

#: The ways of using (or not using) pretrained weights that the case study compares.
METHODS = ("scratch", "full", "probe", "bitfit", "ssl")


def small_vgg16(seed: int = 0) -> nn.Module:
    """The case study's network: VGG16 with channels divided by 8, BatchNorm,
    one input channel, 32x32 inputs (features end at 1x1), ten classes."""
    from .vgg import vgg16

    torch.manual_seed(seed)
    return vgg16(num_classes=10, width=8, in_channels=1, pool=1, batch_norm=True)


#: epochs without a better validation score before transfer_run stops a run
PATIENCE = 12


def schedule(n_train: int) -> dict:
    """Batch size and epoch limit for a training set of ``n_train`` examples:
    about the same number of steps whatever the number of labels."""
    batch = 32 if n_train < 300 else 64
    return {"batch_size": batch, "epochs": int(min(150, max(40, 4800 // n_train)))}


@torch.no_grad()
def penultimate(model, X, batch_size: int = 256) -> np.ndarray:
    """The features the last layer sees (output of ``classifier[:-1]``), in
    eval mode: what a linear probe is trained on."""
    model.eval()
    body = nn.Sequential(model.features, model.avgpool, nn.Flatten(), *model.classifier[:-1])
    return np.concatenate([body(torch.as_tensor(X[i:i + batch_size])).numpy()
                           for i in range(0, len(X), batch_size)])


def linear_probe(model, train, val, test, seed: int = 0) -> dict:
    """Logistic regression (scikit-learn) on standardized frozen features,
    its regularisation strength chosen on the validation set; the result is
    written into the network's last layer (standardization folded in), so the
    model is an ordinary VGG16 again. Returns accuracies."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    F_tr, F_va, F_te = (penultimate(model, X) for X in (train[0], val[0], test[0]))
    scaler = StandardScaler().fit(F_tr)
    best = None
    for C in (0.01, 0.1, 1.0, 10.0):
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        clf.fit(scaler.transform(F_tr), train[1])
        acc = clf.score(scaler.transform(F_va), val[1])
        if best is None or acc > best[0]:
            best = (acc, C, clf)
    val_acc, C, clf = best
    head = model.classifier[-1]
    scale = scaler.scale_.astype(np.float64)
    W = clf.coef_ / scale
    b = clf.intercept_ - W @ scaler.mean_
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(W, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
    return {"val": float(val_acc), "test": evaluate(model, *test), "C": C,
            "trainable": int(head.weight.numel() + head.bias.numel())}


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


def transfer_run(method: str, split, per_class: int | None, seed: int,
                 source_state: dict | None = None, ssl_state: dict | None = None,
                 progress: bool = False) -> dict:
    """One cell of the case study's table: train ``small_vgg16`` by ``method``
    on ``per_class`` labels per class (all with ``None``) of ``split``'s
    training set, early-stopped on its validation set; returns test accuracy
    and the bookkeeping. ``source_state``: weights pretrained on printed digits
    (same ten classes, so the last layer is kept); ``ssl_state``: weights whose
    features were pretrained without labels (method ``"ssl"``)."""
    if method not in METHODS:
        raise ValueError(f"transfer_run: expected method in {METHODS}, got {method!r}")
    keep = per_class_subset(split.y_train, per_class, seed=seed)
    train = (split.X_train[keep], split.y_train[keep])
    val, test = (split.X_val, split.y_val), (split.X_test, split.y_test)
    model = small_vgg16(seed)
    start = time.perf_counter()
    if method in ("full", "probe", "bitfit"):
        if source_state is None:
            raise ValueError(f"transfer_run: method {method!r} needs source_state")
        model.load_state_dict(source_state)
    if method == "ssl":
        if ssl_state is None:
            raise ValueError("transfer_run: method 'ssl' needs ssl_state")
        model.load_state_dict(ssl_state)
    if method == "probe":
        out = linear_probe(model, train, val, test, seed=seed)
        out.update(best_epoch=None)
    else:
        # BitFit trains few, small parameters: it needs a larger step (1e-2)
        config = TrainConfig(trainable="bias" if method == "bitfit" else "all", shift=2,
                             seed=seed, patience=PATIENCE, lr=1e-2 if method == "bitfit" else 1e-3,
                             **schedule(len(keep)))
        r = fit(model, train, val, config, progress=progress)
        out = {"val": r.best_val, "test": evaluate(model, *test),
               "best_epoch": r.best_epoch, "trainable": count_trainable(model)}
    out.update(method=method, per_class=per_class, seed=seed, n_train=int(len(keep)),
               seconds=round(time.perf_counter() - start, 1))
    return out
