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
global batch (``tests/test_finetune.py`` checks it with 2 processes), up to
float32 rounding and without dropout (each process draws its own dropout
masks). With BatchNorm that holds only if the batch statistics are those of
the global batch: ``fit`` converts every BatchNorm layer to a synchronised
one when it runs on several processes (``convert_sync_batchnorm``:
PyTorch's ``nn.SyncBatchNorm`` on GPUs, ``SyncBatchNorm`` from this module,
which all-reduces with any backend, gloo included, on CPU).
``tests/test_real_path.py`` checks 2 gloo processes against 1 with BatchNorm,
and that without the synchronisation they differ.

Fine-tuning pretrained weights: ``head_lr`` gives the last layer (the new
head) its own learning rate, the others train at ``lr`` (two parameter
groups); ``probe_epochs`` trains only the head for that many epochs before
unfreezing ``trainable`` (LP-FT, linear probing then fine-tuning, with a
fresh optimizer at the switch).

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
           "evaluate", "save_checkpoint", "load_checkpoint", "CheckpointError", "dist_info",
           "SyncBatchNorm", "convert_sync_batchnorm", "param_groups", "OPTIMIZERS"]


# --- what trains ----------------------------------------------------------------

#: ``"all"``: every parameter (full fine-tuning, or training from scratch);
#: ``"head"``: only the last layer (a linear probe on frozen features);
#: ``"bias"``: BitFit, every bias and the last layer;
#: ``"lora"``: the low-rank updates of ``nnlib.torch.lora`` and the last layer.
TRAINABLE = ("all", "head", "bias", "lora")


def _head(model) -> nn.Module:
    return model.classifier[-1]


def set_trainable(model: nn.Module, mode: str) -> nn.Module:
    """Freeze or unfreeze parameters by ``mode`` (see ``TRAINABLE``)."""
    if mode not in TRAINABLE:
        raise ValueError(f"set_trainable: expected mode in {TRAINABLE}, got {mode!r}")
    head = {id(p) for p in _head(model).parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_(mode == "all" or id(p) in head
                         or (mode == "bias" and name.endswith(".bias"))
                         or (mode == "lora" and ".lora_" in f".{name}"))
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
        defaults = asdict(TrainConfig())      # settings older checkpoints lack
        diff = {k: (ck["config"].get(k, defaults[k]), v) for k, v in config.items()
                if k in _RESUME_KEYS and ck["config"].get(k, defaults[k]) != v}
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
    memory layout (faster convolutions on recent GPUs).

    ``head_lr``: the learning rate of the last layer (the new head); the other
    layers train at ``lr`` (``None``: everything at ``lr``, one parameter
    group). ``probe_epochs``: train only the head for this many epochs, then
    ``trainable`` (LP-FT); early stopping waits for the end of the probe.
    ``optimizer``: ``"adam"`` or ``"sgd"`` (with ``momentum``).
    ``restore_best``: end with the best validation epoch's weights (else the
    last epoch's). ``sync_batchnorm``: on several processes, compute
    BatchNorm's statistics over the global batch."""
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
    head_lr: float | None = None
    probe_epochs: int = 0
    optimizer: str = "adam"
    momentum: float = 0.9
    restore_best: bool = True
    sync_batchnorm: bool = True


#: The optimizers ``fit`` knows.
OPTIMIZERS = ("adam", "sgd")

# settings that must agree between a checkpoint and the run resuming from it
_RESUME_KEYS = ("lr", "batch_size", "weight_decay", "trainable", "shift", "seed", "head_lr",
                "probe_epochs", "optimizer", "momentum", "sync_batchnorm")


@dataclass
class FitResult:
    history: list = field(default_factory=list)    # per epoch: loss, train/val accuracy
    best_epoch: int = 0
    best_val: float = float("nan")
    seconds: float = 0.0
    images_per_second: float = float("nan")
    resumed_from: int | None = None
    # per phase (one, or two with LP-FT): its first epoch, what trained, and the
    # optimizer's parameter groups (name, learning rate, parameters, tensor names)
    phases: list = field(default_factory=list)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` unless torch.distributed is running."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


# --- BatchNorm over several processes ------------------------------------------

class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _AllReduceSum.apply(grad.contiguous(), ctx.group), None


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, over
    every process of ``process_group`` (default: all), with any backend (gloo
    on CPU included: PyTorch's ``nn.SyncBatchNorm`` refuses CPU tensors). The
    mean and the biased variance are all-reduced sums (two passes), the
    running variance uses the unbiased global variance, and the backward
    pass sums the statistics' gradients over processes. Outside training,
    or on one process, it is ordinary BatchNorm. Made by
    ``convert_sync_batchnorm``."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input, got "
                             f"{input.dim()}D")

    def forward(self, input):
        dist = torch.distributed
        group = self.process_group or (dist.group.WORLD if dist.is_available() else None)
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(group) > 1):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:              # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.new_full((1,), input.numel() / input.shape[1])
        total = _AllReduceSum.apply(torch.cat([input.sum(dims), count]), group)
        n = total[-1]
        mean = total[:-1] / n
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), group) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                unbiased = var.detach() * (n.detach() / (n.detach() - 1))
                self.running_var.mul_(1 - factor).add_(factor * unbiased)
        return out


def convert_sync_batchnorm(module: nn.Module, device: str = "cpu", process_group=None):
    """Every BatchNorm layer of ``module`` made synchronised over processes,
    sharing its parameters and buffers: PyTorch's
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` on a GPU (``device`` not
    ``"cpu"``), this module's ``SyncBatchNorm`` on CPU (DDP refuses
    ``nn.SyncBatchNorm`` on CPU). Returns the converted module (``module``
    itself unless it is a BatchNorm layer)."""
    if not str(device).startswith("cpu"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, SyncBatchNorm):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, device, process_group))
    return out


def _has_batchnorm(model) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


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


def param_groups(model: nn.Module, lr: float, head_lr: float | None = None) -> list:
    """The optimizer's parameter groups for the trainable parameters of
    ``model``: one group at ``lr`` if ``head_lr`` is ``None``, else
    ``"pretrained"`` (every layer but the last) at ``lr`` and ``"head"`` (the
    last layer, ``model.classifier[-1]``) at ``head_lr``, leaving out a group
    with nothing to train. Each group: ``params``, ``lr``, ``name``, ``names``."""
    model = _unwrap(model)
    head = {id(p) for p in _head(model).parameters()}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if head_lr is None:
        return [{"params": [p for _, p in named], "lr": lr, "name": "all",
                 "names": [n for n, _ in named]}]
    groups = []
    for name, rate, inside in (("pretrained", lr, False), ("head", head_lr, True)):
        chosen = [(n, p) for n, p in named if (id(p) in head) == inside]
        if chosen:
            groups.append({"params": [p for _, p in chosen], "lr": rate, "name": name,
                           "names": [n for n, _ in chosen]})
    return groups


def _optimizer(model, config):
    if config.head_lr is None:      # one group, exactly as before head_lr existed
        params = [p for p in model.parameters() if p.requires_grad]
        groups = param_groups(model, config.lr)
    else:
        groups = param_groups(model, config.lr, config.head_lr)
        params = [{"params": g["params"], "lr": g["lr"]} for g in groups]
    if config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
    return opt, [{"name": g["name"], "lr": g["lr"], "parameters":
                  sum(p.numel() for p in g["params"]), "tensors": g["names"]}
                 for g in groups]


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
    """Train ``model`` on ``train = (X, y)`` with Adam (or SGD, see
    ``TrainConfig``) and the cross-entropy loss, choosing the epoch by
    accuracy on ``val = (X, y)``.

    With ``checkpoint`` (a path), the state is saved after every epoch and a
    run finds it and resumes where it stopped. Under ``torchrun`` (the process
    group already initialised) the model is wrapped in DistributedDataParallel
    and each process trains on its share of every global batch, its BatchNorm
    layers synchronised (``convert_sync_batchnorm``, unless
    ``config.sync_batchnorm`` is false); only rank 0 writes the checkpoint.
    Returns a ``FitResult``; the model ends with the weights of its best
    validation epoch (unless ``config.restore_best`` is false).
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
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"fit: expected optimizer in {OPTIMIZERS}, got {config.optimizer!r}")
    if not (isinstance(config.probe_epochs, int) and config.probe_epochs >= 0):
        raise ValueError(f"fit: expected probe_epochs a non-negative integer, got "
                         f"{config.probe_epochs!r}")
    if config.trainable not in TRAINABLE:
        raise ValueError(f"fit: expected trainable in {TRAINABLE}, got {config.trainable!r}")
    device = config.device
    torch.manual_seed(config.seed)
    if world > 1 and config.sync_batchnorm and _has_batchnorm(model):
        # one set of batch statistics over the global batch, as one process computes
        model = convert_sync_batchnorm(model, device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    result, start_epoch, ck = FitResult(), 0, None
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = asdict(config)
    if checkpoint is not None and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint, cfg)
        model.load_state_dict(ck["model"])
        torch.set_rng_state(ck["torch_rng"])
        best_state = ck["best_state"]
        result.history, result.best_epoch = list(ck["history"]), ck["best_epoch"]
        result.best_val = ck["best_val"]
        result.phases = list(ck.get("phases", []))
        start_epoch = result.resumed_from = ck["epoch"]

    def start_phase(epoch):
        """What trains from ``epoch`` on, a fresh optimizer, and (on several
        processes) a DDP wrapper that knows which parameters train."""
        mode = "head" if epoch < config.probe_epochs else config.trainable
        set_trainable(model, mode)
        opt, groups = _optimizer(model, config)
        if not result.phases or result.phases[-1]["first_epoch"] != epoch + 1:
            result.phases.append({"first_epoch": epoch + 1, "trainable": mode,
                                  "groups": groups})
        net = model
        if world > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=None if device == "cpu" else [torch.device(device).index])
        return opt, net

    optimizer, net = start_phase(start_epoch)
    # the optimizer's state carries over unless the run stopped at the switch
    if ck is not None and start_epoch != config.probe_epochs:
        optimizer.load_state_dict(ck["optimizer"])
    Xtr_t = torch.as_tensor(Xtr)
    ytr_t = torch.as_tensor(ytr, dtype=torch.int64)
    steps = len(Xtr) // config.batch_size             # whole global batches only
    seen, t0 = 0, time.perf_counter()
    bar = progress_bar(range(start_epoch, config.epochs), desc="epochs",
                       enabled=progress and rank == 0, initial=start_epoch,
                       total=config.epochs)
    for epoch in bar:
        if (config.patience is not None and result.history
                and epoch - max(result.best_epoch, config.probe_epochs) >= config.patience):
            break
        if epoch == config.probe_epochs and epoch > start_epoch:      # LP-FT: unfreeze
            del net, optimizer          # the old DDP wrapper's hooks go with it
            optimizer, net = start_phase(epoch)
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
                             "best_state": best_state, "phases": result.phases})
    if hasattr(bar, "close"):
        bar.close()
    if config.restore_best:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    result.images_per_second = seen * world / max(result.seconds, 1e-9)
    return result
