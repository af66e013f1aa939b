"""Training and fine-tuning PyTorch models (the VGG16 case study): data on
32x32, which parameters train, a training loop with early stopping on
validation, a checkpoint every epoch that a run resumes from after an
interruption, mixed precision and channels-last on a GPU, and data-parallel
training under ``torchrun`` (DistributedDataParallel).

Data parallelism is exact: every step draws one global batch of
``batch_size`` examples from a permutation seeded by the epoch, and rank ``r``
of ``W`` processes takes rows ``r, r + W, ...`` of it. DDP averages the
gradients, so ``W`` processes take the same steps as one process with the same
global batch (``tests/test_finetune.py`` checks it with 2 processes). Exactly
so without dropout: each process draws its own dropout masks.

This module imports PyTorch; ``import nnlib`` alone does not.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["upsample", "printed_digits", "digits_split", "printed_split", "per_class_subset", "TrainConfig", "FitResult",
           "set_trainable", "TRAINABLE", "count_trainable", "fit", "evaluate",
           "save_checkpoint", "load_checkpoint", "CheckpointError", "dist_info", "METHODS",
           "small_vgg16", "schedule", "penultimate", "linear_probe", "ssl_pretrain",
           "transfer_run"]


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
    from .data import render_glyphs

    rng = np.random.default_rng(seed)
    X, y = render_glyphs("0123456789", n_per_char=n_per_digit, size=8, jitter=1.0, rng=rng)
    X = np.clip(X + noise * rng.standard_normal(X.shape), 0.0, 1.0)
    order = rng.permutation(len(X))
    return upsample(X[order], side), y[order]


def digits_split(side: int = 32, seed: int = 0):
    """The case study's split of scikit-learn's handwritten digits, upsampled
    to ``side``: 1,077 train, 270 validation, 450 test, stratified."""
    from .data import load_digits, train_val_test_split

    X, y = load_digits()
    return train_val_test_split(upsample(X, side), y, val=0.15, test=0.25, seed=seed)


def printed_split(n_per_digit: int = 500, side: int = 32, seed: int = 0):
    """The source task's split: ``printed_digits``, 70 / 15 / 15 %."""
    from .data import train_val_test_split

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


# --- what trains ----------------------------------------------------------------

#: ``"all"``: every parameter (full fine-tuning, or training from scratch);
#: ``"head"``: only the last layer (a linear probe on frozen features);
#: ``"bias"``: BitFit, every bias and the last layer.
TRAINABLE = ("all", "head", "bias")


def _head(model) -> nn.Module:
    return model.classifier[-1]


def set_trainable(model: nn.Module, mode: str) -> nn.Module:
    """Freeze or unfreeze parameters by ``mode`` (see ``TRAINABLE``)."""
    if mode not in TRAINABLE:
        raise ValueError(f"set_trainable: expected mode in {TRAINABLE}, got {mode!r}")
    head = {id(p) for p in _head(model).parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_(mode == "all" or id(p) in head
                         or (mode == "bias" and name.endswith(".bias")))
    return model


def count_trainable(model: nn.Module) -> int:
    """The number of parameters ``model`` would update (``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- checkpoints ------------------------------------------------------------------

class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to a different run."""


def save_checkpoint(path, model, optimizer, epoch: int, state: dict) -> None:
    """Write ``path`` atomically (a temporary file, then a rename), so that an
    interruption never leaves a half-written checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": "nnlib-finetune-1", "epoch": epoch,
                "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, config: dict | None = None) -> dict:
    """Read a checkpoint with ``weights_only=True``. Raises ``CheckpointError``
    naming the file if it is corrupt, not one of ours, or (with ``config``)
    written by a run with different settings."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                              f"{str(e)[:160]}); delete it to start afresh") from None
    if not isinstance(ck, dict) or ck.get("format") != "nnlib-finetune-1":
        raise CheckpointError(f"checkpoint {path} was not written by nnlib.finetune.fit "
                              f"(no 'format': 'nnlib-finetune-1' entry)")
    if config is not None:
        diff = {k: (ck["config"].get(k), v) for k, v in config.items()
                if k in _RESUME_KEYS and ck["config"].get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: {a!r} in the checkpoint, {b!r} now"
                              for k, (a, b) in diff.items())
            raise CheckpointError(f"checkpoint {path} belongs to a different run ({shown})")
    return ck


# --- training ---------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Settings of ``fit``. ``patience``: stop after this many epochs without a
    better validation accuracy (early stopping; the best epoch's weights are
    restored). ``shift``: random translation by up to this many pixels
    (augmentation). ``amp``: bfloat16 autocast on CUDA. ``channels_last``: NHWC
    memory layout (faster convolutions on recent GPUs)."""
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    patience: int | None = 8
    trainable: str = "all"
    shift: int = 0
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    device: str = "cpu"


# settings that must agree between a checkpoint and the run resuming from it
_RESUME_KEYS = ("lr", "batch_size", "weight_decay", "trainable", "shift", "seed")


@dataclass
class FitResult:
    history: list = field(default_factory=list)    # per epoch: loss, train/val accuracy
    best_epoch: int = 0
    best_val: float = float("nan")
    seconds: float = 0.0
    images_per_second: float = float("nan")
    resumed_from: int | None = None


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` unless torch.distributed is running."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _unwrap(model):
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _shift(x, k, gen):
    """Random translation by up to k pixels (zero padding), one offset per image."""
    if k == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (k, k, k, k))
    dy = torch.randint(0, 2 * k + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * k + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :]
    idx = torch.arange(n)[:, None, None, None]
    return padded[idx, torch.arange(x.shape[1])[None, :, None, None], rows, cols]


@torch.no_grad()
def evaluate(model, X, y, batch_size: int = 256, device: str = "cpu",
             channels_last: bool = False, amp: bool = False) -> float:
    """Accuracy of ``model`` on ``(X, y)`` (NumPy arrays), in eval mode."""
    model = _unwrap(model)
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(X), batch_size):
        xb = torch.as_tensor(X[i:i + batch_size], device=device)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", torch.bfloat16, enabled=amp and device.startswith("cuda")):
            pred = model(xb).argmax(1).cpu().numpy()
        correct += int((pred == y[i:i + batch_size]).sum())
    model.train(was)
    return correct / len(X)


def fit(model: nn.Module, train, val, config: TrainConfig, checkpoint=None,
        progress: bool = True) -> FitResult:
    """Train ``model`` on ``train = (X, y)`` with Adam and the cross-entropy
    loss, choosing the epoch by accuracy on ``val = (X, y)``.

    With ``checkpoint`` (a path), the state is saved after every epoch and a
    run finds it and resumes where it stopped. Under ``torchrun`` (the process
    group already initialised) the model is wrapped in DistributedDataParallel
    and each process trains on its share of every global batch; only rank 0
    writes the checkpoint. Returns a ``FitResult``; the model ends with the
    weights of its best validation epoch.
    """
    from .train import progress_bar

    Xtr, ytr = train
    Xva, yva = val
    for name, (X, y) in (("train", train), ("val", val)):
        if len(X) != len(y) or np.asarray(X).ndim != 4:
            raise ValueError(f"fit: expected {name} = (images (N, C, H, W), labels (N,)), "
                             f"got shapes {np.shape(X)} and {np.shape(y)}")
    rank, world = dist_info()
    if config.batch_size % world:
        raise ValueError(f"fit: expected batch_size divisible by the {world} processes, "
                         f"got {config.batch_size}")
    if len(Xtr) < config.batch_size:
        raise ValueError(f"fit: expected at least one batch of {config.batch_size} "
                         f"training examples, got {len(Xtr)}")
    device = config.device
    torch.manual_seed(config.seed)
    set_trainable(model, config.trainable)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    result, start_epoch = FitResult(), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = asdict(config)
    if checkpoint is not None and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint, cfg)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        best_state = ck["best_state"]
        result.history, result.best_epoch = list(ck["history"]), ck["best_epoch"]
        result.best_val = ck["best_val"]
        start_epoch = result.resumed_from = ck["epoch"]
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=None if device == "cpu"
                                                  else [torch.device(device).index])
    Xtr_t = torch.as_tensor(Xtr)
    ytr_t = torch.as_tensor(ytr, dtype=torch.int64)
    steps = len(Xtr) // config.batch_size             # whole global batches only
    seen, t0 = 0, time.perf_counter()
    bar = progress_bar(range(start_epoch, config.epochs), desc="epochs",
                       enabled=progress and rank == 0, initial=start_epoch,
                       total=config.epochs)
    for epoch in bar:
        if (config.patience is not None and result.history
                and epoch - result.best_epoch >= config.patience):
            break
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(Xtr), generator=gen)
        net.train()
        total = 0.0
        for step in range(steps):
            batch = order[step * config.batch_size:(step + 1) * config.batch_size]
            # augment the whole global batch, then take this process's rows, so
            # that the random shifts do not depend on the number of processes
            xb = _shift(Xtr_t[batch], config.shift, gen)[rank::world].to(device)
            yb = ytr_t[batch][rank::world].to(device)
            rows = batch[rank::world]
            if config.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", torch.bfloat16,
                                enabled=config.amp and device.startswith("cuda")):
                loss = F.cross_entropy(net(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            seen += len(rows)
        val_acc = evaluate(model, Xva, yva, device=device,
                           channels_last=config.channels_last, amp=config.amp)
        result.history.append({"epoch": epoch + 1, "loss": total / steps, "val": val_acc})
        if not result.best_val >= val_acc:          # also replaces the initial NaN
            result.best_val, result.best_epoch = val_acc, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / steps:.3f}", val=f"{val_acc:.3f}")
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, model, optimizer, epoch + 1,
                            {"config": cfg, "history": result.history,
                             "best_epoch": result.best_epoch, "best_val": result.best_val,
                             "best_state": best_state})
    if hasattr(bar, "close"):
        bar.close()
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    result.images_per_second = seen * world / max(result.seconds, 1e-9)
    return result


# --- the case study's methods ---------------------------------------------------------

#: The ways of using (or not using) pretrained weights that the case study compares.
METHODS = ("scratch", "full", "probe", "bitfit", "ssl")


def small_vgg16(seed: int = 0) -> nn.Module:
    """The case study's network: VGG16 with channels divided by 8, BatchNorm,
    one input channel, 32x32 inputs (features end at 1x1), ten classes."""
    from .vgg import vgg16

    torch.manual_seed(seed)
    return vgg16(num_classes=10, width=8, in_channels=1, pool=1, batch_norm=True)


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
    from .train import progress_bar

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
                             seed=seed, patience=12, lr=1e-2 if method == "bitfit" else 1e-3,
                             **schedule(len(keep)))
        r = fit(model, train, val, config, progress=progress)
        out = {"val": r.best_val, "test": evaluate(model, *test),
               "best_epoch": r.best_epoch, "trainable": count_trainable(model)}
    out.update(method=method, per_class=per_class, seed=seed, n_train=int(len(keep)),
               seconds=round(time.perf_counter() - start, 1))
    return out
