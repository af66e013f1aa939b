"""Train or fine-tune a VGG16 on digits: the case study's script.

On one process:

    python scripts/vgg_finetune.py --task symbols --epochs 40 --save source.pth
    python scripts/vgg_finetune.py --init source.pth --labels-per-class 50

Data-parallel on N processes (CPU: gloo; GPU: nccl, one GPU per process):

    torchrun --nproc_per_node=2 scripts/vgg_finetune.py --init source.pth

torchvision's ImageNet weights (``vgg16-397923af.pth``, which you put on disk:
nothing is downloaded), the standard recipe: the 1000-way head replaced by a
10-way one, grey digits resized to 224x224, replicated to 3 channels and
normalised with ImageNet's mean and std, the new head at 10 times the rate of
the pretrained layers; ``--trainable head`` is a linear probe, ``--probe-epochs
N`` is LP-FT (the head alone for N epochs, then everything):

    python scripts/vgg_finetune.py --imagenet --init vgg16-397923af.pth \\
        --labels-per-class 50 --lr 1e-4 --head-lr 1e-3 --probe-epochs 5 \\
        --batch-size 32 --device cuda --amp --channels-last

Full size on a GPU, timing only (images/s and peak memory), the same path:

    python scripts/vgg_finetune.py --imagenet --benchmark 30 \\
        --batch-size 64 --device cuda --amp --channels-last

Tasks: ``digits`` (scikit-learn's handwritten digits, or MNIST with ``--mnist
DIR`` holding its IDX files), ``symbols`` (chapter 9's source task: 43
printed letters and symbols rendered from matplotlib's fonts, no digits) and
``printed`` (printed digits, the same ten classes as the target). A file given
to ``--init`` whose head has another number of classes than the task (43 for
symbols, 10 for digits) is loaded and its head replaced by a new one, as for
ImageNet's weights. Images are upsampled to ``--side`` (32,
or 224 with ``--imagenet``). With
``--checkpoint PATH`` the run saves every epoch and, started again with the
same command, resumes where it stopped. The last line printed is a JSON
summary.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

from nnlib import data
from nnlib.torch import case_study, finetune, vgg


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=["digits", "symbols", "printed"], default="digits")
    p.add_argument("--mnist", help="directory with MNIST's IDX files (task digits)")
    p.add_argument("--printed-per-digit", type=int, default=500,
                   help="images per class of the printed tasks (symbols: 200 in the chapter)")
    p.add_argument("--labels-per-class", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None, help="keep only this many training examples")
    p.add_argument("--n-eval", type=int, default=None,
                   help="evaluate on only the first N validation and test images")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--width", type=int, default=None,
                   help="divide every channel count by this (default 8; 1 with --imagenet)")
    p.add_argument("--side", type=int, default=None,
                   help="image side (default 32; 224 with --imagenet)")
    p.add_argument("--imagenet", action="store_true",
                   help="--init is torchvision's ImageNet VGG16 (vgg16-397923af.pth; "
                        "with --batch-norm vgg16_bn-6c64b313.pth): load it into the full "
                        "network, replace its 1000-way head by a 10-way one; images are "
                        "replicated to 3 channels and normalised with ImageNet's mean/std")
    p.add_argument("--batch-norm", action="store_true")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--init", help="start from these weights (a .pth state dict)")
    p.add_argument("--reset-head", action="store_true",
                   help="re-initialise the last layer after --init (new task)")
    p.add_argument("--trainable", choices=finetune.TRAINABLE, default="all",
                   help="all: full fine-tuning; head: a linear probe; bias: BitFit")
    p.add_argument("--probe-epochs", type=int, default=0, metavar="N",
                   help="LP-FT: train only the head for N epochs, then --trainable")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3,
                   help="learning rate (of the pretrained layers, with --head-lr)")
    p.add_argument("--head-lr", type=float, default=None,
                   help="learning rate of the last layer, the new head (default: --lr; "
                        "10 x --lr with --imagenet)")
    p.add_argument("--optimizer", choices=finetune.OPTIMIZERS, default="adam")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum")
    p.add_argument("--keep-last", action="store_true",
                   help="end with the last epoch's weights, not the best validation epoch's")
    p.add_argument("--no-sync-batchnorm", action="store_true",
                   help="on several processes, let each normalise with its own share's "
                        "statistics (the steps then differ from one process's)")
    p.add_argument("--batch-size", type=int, default=64, help="global batch, all processes")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--shift", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--checkpoint", help="save every epoch here; resume from it if present")
    p.add_argument("--save", help="write the best weights here (.pth)")
    p.add_argument("--benchmark", type=int, default=0, metavar="STEPS",
                   help="only time STEPS training steps on random images")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before --benchmark")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.imagenet and args.width not in (None, 1):
        p.error(f"--imagenet: torchvision's weights have width 1, got --width {args.width}")
    if args.imagenet and not args.init and not args.benchmark:
        p.error("--imagenet: expected --init PATH to torchvision's vgg16-397923af.pth "
                "(nothing is downloaded)")
    if args.width is None:
        args.width = 1 if args.imagenet else 8
    if args.side is None:
        args.side = 224 if args.imagenet else 32
    if args.head_lr is None and args.imagenet:
        args.head_lr = 10 * args.lr
    return args


def load_task(args):
    if args.task == "printed":
        return case_study.printed_split(args.printed_per_digit, args.side, args.split_seed)
    if args.task == "symbols":
        return case_study.symbols_split(args.printed_per_digit, args.side, args.split_seed)
    if args.mnist:
        Xtr, ytr = data.load_mnist(args.mnist, "train", images=True)
        Xte, yte = data.load_mnist(args.mnist, "test", images=True)
        cut = int(0.9 * len(Xtr))
        return data.Split(case_study.upsample(Xtr[:cut], args.side), ytr[:cut],
                          case_study.upsample(Xtr[cut:], args.side), ytr[cut:],
                          case_study.upsample(Xte, args.side), yte)
    return case_study.digits_split(args.side, args.split_seed)


def peak_memory_mb(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux


def benchmark(model, args):
    """Time ``args.benchmark`` training steps on random images (after
    ``args.warmup`` untimed ones): images per second, and peak memory."""
    device = args.device
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch_size, 1, args.side, args.side, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    def step():
        with torch.autocast("cuda", torch.bfloat16, enabled=args.amp and device.startswith("cuda")):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(args.benchmark):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return {"benchmark_steps": args.benchmark, "images_per_second":
            args.benchmark * args.batch_size / seconds, "peak_memory_mb": peak_memory_mb(device),
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "amp": args.amp, "channels_last": args.channels_last, "side": args.side,
            "width": args.width, "batch_size": args.batch_size}


def build_model(args):
    """The network the run starts from: with ``--imagenet`` the full VGG16
    with torchvision's weights from ``--init`` and a new 10-way head
    (``vgg.imagenet_vgg16``), otherwise a ``vgg.vgg16`` of ``--width`` on
    1-channel images with one output per class of the task, with ``--init``
    loaded; if the file's head has another number of classes, it is loaded
    with that head, which is then replaced by a new one (``vgg.replace_head``)."""
    torch.manual_seed(args.seed)
    classes = len(case_study.SYMBOLS) if args.task == "symbols" else 10
    if args.imagenet:
        return vgg.imagenet_vgg16(args.init, num_classes=classes, batch_norm=args.batch_norm,
                                  dropout=args.dropout, seed=args.seed)
    in_file = classes
    if args.init:
        head = torch.load(args.init, map_location="cpu", weights_only=True).get(
            "classifier.6.weight") if os.path.isfile(args.init) else None
        in_file = classes if head is None else int(head.shape[0])
    model = vgg.vgg16(num_classes=in_file, width=args.width, in_channels=1,
                      pool=max(1, args.side // 32), batch_norm=args.batch_norm,
                      dropout=args.dropout)
    if args.init:
        vgg.load_vgg16_weights(model, args.init)
        if in_file != classes:
            print(f"vgg_finetune: {args.init} has a {in_file}-way head; replaced by a new "
                  f"{classes}-way one", file=sys.stderr)
            vgg.replace_head(model, classes, seed=args.seed)
        if args.reset_head:
            head = model.classifier[-1]
            torch.nn.init.normal_(head.weight, 0, 0.01)
            torch.nn.init.zeros_(head.bias)
    return model


def main(argv=None):
    """Parse ``argv``, train (or benchmark), print the JSON summary (rank 0)
    and return it."""
    return run(parse(argv))[1]


def run(args):
    """The whole run for parsed ``args``: ``(model, summary, fit_result)``
    (``fit_result`` is ``None`` in benchmark mode)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if args.device.startswith("cuda"):
            local = int(os.environ["LOCAL_RANK"])
            torch.cuda.set_device(local)
            args.device = f"cuda:{local}"
        torch.distributed.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    rank = int(os.environ.get("RANK", "0"))
    model = build_model(args)
    result = None
    if args.benchmark:
        summary = benchmark(model, args)
        summary["imagenet"] = args.imagenet
    else:
        split = load_task(args)
        keep = case_study.per_class_subset(split.y_train, args.labels_per_class, seed=args.seed)
        if args.n_train:
            keep = keep[:args.n_train]
        n_eval = args.n_eval or None
        config = finetune.TrainConfig(
            epochs=args.epochs, lr=args.lr, batch_size=min(args.batch_size, len(keep)),
            weight_decay=args.weight_decay, patience=args.patience, trainable=args.trainable,
            shift=args.shift, seed=args.seed, amp=args.amp, channels_last=args.channels_last,
            device=args.device, head_lr=args.head_lr, probe_epochs=args.probe_epochs,
            optimizer=args.optimizer, momentum=args.momentum, restore_best=not args.keep_last,
            sync_batchnorm=not args.no_sync_batchnorm)
        result = finetune.fit(model, (split.X_train[keep], split.y_train[keep]),
                              (split.X_val[:n_eval], split.y_val[:n_eval]), config,
                              checkpoint=args.checkpoint, progress=not args.no_progress)
        summary = {"task": args.task, "train_examples": int(len(keep)),
                   "trainable_parameters": finetune.count_trainable(model),
                   "best_epoch": result.best_epoch, "val_accuracy": result.best_val,
                   "test_accuracy": finetune.evaluate(model, split.X_test[:n_eval],
                                                      split.y_test[:n_eval],
                                                      device=args.device),
                   "epochs_run": len(result.history), "resumed_from": result.resumed_from,
                   "seconds": round(result.seconds, 2), "processes": world,
                   "images_per_second": round(result.images_per_second, 1),
                   "imagenet": args.imagenet, "side": args.side,
                   "sync_batchnorm": world > 1 and args.batch_norm
                   and not args.no_sync_batchnorm,
                   "phases": [{"first_epoch": ph["first_epoch"], "trainable": ph["trainable"],
                               "groups": [{k: g[k] for k in ("name", "lr", "parameters")}
                                          for g in ph["groups"]]} for ph in result.phases]}
        if args.save and rank == 0:
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, args.save)
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank == 0:
        print(json.dumps(summary))
    return model, summary, result


if __name__ == "__main__":
    try:
        main()
    except (finetune.CheckpointError, FileNotFoundError, KeyError, ValueError) as e:
        sys.exit(f"vgg_finetune: {e}")
