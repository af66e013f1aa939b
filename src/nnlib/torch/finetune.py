"""The fine-tuning engine for PyTorch models: which parameters train, a
training loop with early stopping on validation, a checkpoint every epoch that
a run resumes from after an interruption, mixed precision and channels-last
on a GPU, and data-parallel training under ``torchrun``
(DistributedDataParallel). Chapter 9's experiment, built on it, is
``nnlib.torch.case_study``.

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

from ..errors import CheckpointError

__all__ = ["TrainConfig", "FitResult", "set_trainable", "TRAINABLE", "count_trainable", "fit",
           "evaluate", "save_checkpoint", "load_checkpoint", "CheckpointError", "dist_info"]


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
        raise CheckpointError(f"checkpoint {path} was not written by nnlib.torch.finetune.fit "
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
    from ..train import progress_bar

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
