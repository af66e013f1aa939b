"""VGG16 (Simonyan & Zisserman, 2015, configuration D), in PyTorch and in NumPy.

``vgg16()`` builds the PyTorch network with torchvision's parameter names
(``features.0.weight`` ... ``classifier.6.bias``), so a reader who has
torchvision's ImageNet file ``vgg16-397923af.pth`` on disk loads it with
``load_vgg16_weights(model, path)`` (``torch.load(..., weights_only=True)``),
without torchvision. At 1000 classes it has 138,357,544 parameters.

``width`` divides every channel count and the hidden width of the classifier
(``width=8``: 64 -> 8 channels in the first layer); ``pool`` is the side of the
adaptive average pooling before the classifier (7 for 224x224 images, as in
torchvision; 1 suits 32x32 inputs, whose features are already 1x1). The
sixteen weight layers stay: 13 convolutions (3x3, padding 1) in five blocks,
each block ending in a 2x2 max pooling, then 3 fully connected layers.

``imagenet_vgg16(path)`` is the real fine-tuning path: the full network
with the 1000-way ImageNet head, ``path`` (torchvision's file) loaded into
it, then the head replaced by a new ``num_classes``-way layer
(``replace_head``). It takes grey images ``(N, 1, H, W)`` (or RGB ones) with
values in [0, 1], replicates grey to three channels and normalises them with
ImageNet's mean and standard deviation (``IMAGENET_MEAN``, ``IMAGENET_STD``),
as the pretrained weights expect. Nothing is downloaded.

``vgg16_numpy(...)`` is the same network built from nnlib's layers (no
BatchNorm), with the same names, and ``to_numpy(model)`` copies a PyTorch
VGG16's weights into it: the NumPy reference the tests compare against.

This module imports PyTorch; ``import nnlib`` alone does not.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import weights_mismatch
from ..layers import AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ..module import Module, Sequential

__all__ = ["CONFIG_D", "VGG", "vgg16", "vgg16_numpy", "VGG16Numpy", "to_numpy",
           "load_vgg16_weights", "layer_table", "IMAGENET_PARAMETERS", "ImageNetVGG",
           "imagenet_vgg16", "replace_head", "IMAGENET_MEAN", "IMAGENET_STD"]

#: Channels of each 3x3 convolution, "M" for a 2x2 max pooling (configuration D).
CONFIG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
            512, 512, 512, "M", 512, 512, 512, "M"]
#: Parameters of torchvision's ``vgg16()`` (1000 classes).
IMAGENET_PARAMETERS = 138_357_544
#: The per-channel (R, G, B) mean and standard deviation of ImageNet's
#: training images, in [0, 1]: torchvision's pretrained weights expect inputs
#: normalised with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_config(where, num_classes, width, in_channels, pool, dropout):
    for name, value in (("num_classes", num_classes), ("width", width),
                        ("in_channels", in_channels), ("pool", pool)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{where}: expected a positive integer {name}, got {value!r}")
    if 64 % width:
        raise ValueError(f"{where}: expected width to divide 64 (1, 2, 4, 8, 16, 32 "
                         f"or 64), got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{where}: expected dropout in [0, 1), got {dropout!r}")


class VGG(nn.Module):
    """torchvision's VGG layout: ``features``, ``avgpool``, ``classifier``."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, pool: int,
                 config: dict):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = classifier
        self.config = dict(config)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"VGG.forward: expected images of shape (N, "
                             f"{self.config['in_channels']}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"VGG.forward: expected images of at least 32x32 (five "
                             f"2x2 poolings), got {tuple(x.shape[-2:])}")
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class ImageNetVGG(VGG):
    """A full-size ``VGG`` that takes images with values in [0, 1], grey
    ``(N, 1, H, W)`` or RGB ``(N, 3, H, W)``: grey is replicated to three
    channels, then each channel is normalised with ``IMAGENET_MEAN`` and
    ``IMAGENET_STD`` (buffers that are not saved: the state dict keeps
    torchvision's keys)."""

    def __init__(self, features, classifier, pool, config):
        super().__init__(features, classifier, pool, config)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ImageNetVGG.forward: expected grey (N, 1, H, W) or RGB "
                             f"(N, 3, H, W) images, got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        w = self.features[0].weight
        if not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)   # as the model is stored
        return super().forward(x)


def vgg16(num_classes: int = 1000, width: int = 1, in_channels: int = 3, pool: int = 7,
          batch_norm: bool = False, dropout: float = 0.5) -> VGG:
    """VGG16 in PyTorch, initialised as torchvision does (He-normal convolutions,
    N(0, 0.01) linear layers, zero biases). ``batch_norm=True`` adds a
    BatchNorm2d after each convolution, as torchvision's ``vgg16_bn`` (whose
    names it then has)."""
    return _build(VGG, "vgg16", num_classes, width, in_channels, pool, batch_norm, dropout)


def _build(cls, where, num_classes, width, in_channels, pool, batch_norm, dropout):
    _check_config(where, num_classes, width, in_channels, pool, dropout)
    layers, c = [], in_channels
    for v in CONFIG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(c, v // width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v // width))
        layers.append(nn.ReLU(inplace=True))
        c = v // width
    hidden = 4096 // width
    classifier = nn.Sequential(
        nn.Linear(c * pool * pool, hidden), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes))
    config = dict(num_classes=num_classes, width=width, in_channels=in_channels,
                  pool=pool, batch_norm=batch_norm, dropout=dropout)
    model = cls(nn.Sequential(*layers), classifier, pool, config)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def load_vgg16_weights(model: nn.Module, path) -> nn.Module:
    """Load a state dict saved with ``torch.save`` (torchvision's
    ``vgg16-397923af.pth``, or a checkpoint of ``vgg16()``) into ``model``, with
    ``torch.load(..., weights_only=True)``: tensors only, no code is run.
    Raises ``nnlib.errors.WeightsMismatchError`` (a ``KeyError`` and a
    ``ValueError``) naming the file, and the keys that are missing or
    unexpected, or the first key whose shapes differ, with both shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_vgg16_weights: expected a weights file at {path}, "
                                f"found none (nothing is downloaded: put the file there)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # pickle errors, truncated zip files, non-tensor objects
        raise ValueError(f"load_vgg16_weights: {path} is not a PyTorch state dict of "
                         f"tensors ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"load_vgg16_weights: expected {path} to hold a dict of "
                         f"tensors, got {type(state).__name__}")
    weights_mismatch("load_vgg16_weights",
                     {k: tuple(v.shape) for k, v in model.state_dict().items()},
                     {k: tuple(v.shape) for k, v in state.items()}, source=str(path))
    model.load_state_dict(state)
    return model


def replace_head(model: VGG, num_classes: int, seed: int = 0) -> VGG:
    """Replace the last layer (``classifier.6``) of ``model`` by a new
    ``num_classes``-way linear layer, initialised as ``vgg16`` initialises it
    (weights N(0, 0.01) drawn from a generator seeded with ``seed``, zero
    biases), on the old layer's device and dtype; the global random generator
    is left as it was. Returns ``model``."""
    if not (isinstance(num_classes, int) and not isinstance(num_classes, bool)
            and num_classes >= 1):
        raise ValueError(f"replace_head: expected a positive integer num_classes, "
                         f"got {num_classes!r}")
    old = model.classifier[-1]
    if not isinstance(old, nn.Linear):
        raise ValueError(f"replace_head: expected the last layer of model.classifier "
                         f"to be a Linear layer, got {type(old).__name__}")
    with torch.random.fork_rng(devices=[]):       # leave the global generator as it was
        new = nn.Linear(old.in_features, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=gen) * 0.01)
        new.bias.zero_()
    model.classifier[-1] = new.to(device=old.weight.device, dtype=old.weight.dtype)
    model.config["num_classes"] = num_classes
    return model


def imagenet_vgg16(path=None, num_classes: int = 10, batch_norm: bool = False,
                   dropout: float = 0.5, seed: int = 0) -> ImageNetVGG:
    """The real fine-tuning path's network: the full VGG16 with the 1000-way
    ImageNet head (3 channels, width 1, 7x7 pooling, torchvision's names),
    ``path`` loaded into it with ``load_vgg16_weights`` (torchvision's
    ``vgg16-397923af.pth``, or with ``batch_norm=True`` ``vgg16_bn-6c64b313.pth``;
    ``None``: no weights, for timing only), then its head replaced by a new
    ``num_classes``-way layer (``replace_head`` with ``seed``). The model takes
    grey or RGB images in [0, 1] (``ImageNetVGG``). Nothing is downloaded."""
    model = _build(ImageNetVGG, "imagenet_vgg16", 1000, 1, 3, 7, batch_norm, dropout)
    if path is not None:
        load_vgg16_weights(model, path)
    return replace_head(model, num_classes, seed)


def layer_table(model: nn.Module, input_shape=(1, 3, 224, 224)) -> list:
    """One row per layer of a ``vgg16()``: ``(name, layer, output shape,
    parameters)``, from one forward pass of zeros of ``input_shape``."""
    rows, hooks = [], []
    for prefix in ("features", "avgpool", "classifier"):
        part = getattr(model, prefix)
        children = part.named_children() if isinstance(part, nn.Sequential) else [("", part)]
        for name, layer in children:
            full = f"{prefix}.{name}" if name else prefix

            def hook(mod, inp, out, full=full):
                rows.append((full, type(mod).__name__, tuple(out.shape),
                             sum(p.numel() for p in mod.parameters())))
            hooks.append(layer.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, dtype=next(model.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


# --- the NumPy reference ------------------------------------------------------

class VGG16Numpy(Module):
    """VGG16 built from nnlib layers, with torchvision's names. Input
    ``(N, in_channels, H, W)``; the features' side must equal ``pool`` or be a
    multiple of it (adaptive average pooling then averages equal blocks)."""

    def __init__(self, num_classes: int = 1000, width: int = 1, in_channels: int = 3,
                 pool: int = 7, dropout: float = 0.5, rng=None):
        super().__init__()
        _check_config("vgg16_numpy", num_classes, width, in_channels, pool, dropout)
        layers, c = [], in_channels
        for v in CONFIG_D:
            if v == "M":
                layers.append(MaxPool2d(2, 2))
            else:
                layers += [Conv2d(c, v // width, 3, padding=1, rng=rng), ReLU()]
                c = v // width
        hidden = 4096 // width
        self.features = Sequential(*layers)
        self.flatten = Flatten()
        self.classifier = Sequential(
            Linear(c * pool * pool, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
            Linear(hidden, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
            Linear(hidden, num_classes, rng=rng))
        self.pool, self.in_channels = pool, in_channels
        object.__setattr__(self, "_avg", None)

    def forward(self, x):
        x = self._input(x, ndim=4)
        if x.shape[1] != self.in_channels or min(x.shape[-2:]) < 32:
            raise ValueError(f"VGG16Numpy.forward: expected images of shape (N, "
                             f"{self.in_channels}, H, W) with H, W >= 32, got {x.shape}")
        f = self.features(x)
        side = f.shape[-1]
        if f.shape[-2] != side or side % self.pool:
            raise ValueError(f"VGG16Numpy.forward: features of side {f.shape[-2:]} cannot "
                             f"be average-pooled to {self.pool}x{self.pool} in equal "
                             f"blocks; choose pool to divide it")
        object.__setattr__(self, "_avg", AvgPool2d(side // self.pool) if side > self.pool
                           else None)
        if self._avg is not None:
            f = self._avg(f)
        return self.classifier(self.flatten(f))

    def backward(self, grad_out):
        g = self.flatten.backward(self.classifier.backward(grad_out))
        if self._avg is not None:
            g = self._avg.backward(g)
        return self.features.backward(g)


def vgg16_numpy(num_classes: int = 1000, width: int = 1, in_channels: int = 3,
                pool: int = 7, dropout: float = 0.5, rng=None) -> VGG16Numpy:
    """The NumPy VGG16 (see ``VGG16Numpy``)."""
    return VGG16Numpy(num_classes, width, in_channels, pool, dropout, rng)


def to_numpy(model: VGG, dtype=np.float64) -> VGG16Numpy:
    """A ``VGG16Numpy`` with the weights of the PyTorch ``model`` (no BatchNorm)."""
    cfg = model.config
    if cfg["batch_norm"]:
        raise ValueError("to_numpy: expected a VGG16 without BatchNorm (nnlib has no "
                         "BatchNorm layer), got batch_norm=True")
    ref = VGG16Numpy(cfg["num_classes"], cfg["width"], cfg["in_channels"], cfg["pool"],
                     cfg["dropout"])
    ref.load_state_dict({k: v.detach().cpu().numpy().astype(dtype)
                         for k, v in model.state_dict().items()})
    return ref
