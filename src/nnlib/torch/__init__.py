"""Code that needs PyTorch: VGG16 in PyTorch and its NumPy twin (``vgg``), the
fine-tuning engine (``finetune``: what trains, early stopping, checkpoints and
resume, mixed precision, DistributedDataParallel), LoRA (``lora``) and chapter
9's experiment built on them (``case_study``).

``import nnlib`` does not import this package, so the NumPy core needs no
PyTorch; ``import nnlib.torch`` (or ``from nnlib.torch import vgg``) does.
Inside it, ``import torch`` is PyTorch itself (imports are absolute).
"""
from . import case_study, finetune, lora, vgg

__all__ = ["vgg", "finetune", "lora", "case_study"]
