"""nnlib: NumPy reference implementations of neural-network layers, each checked
against PyTorch. The companion package of the book."""
from . import data, gan, init, losses, models, optim, rl, train, viz
from . import functional, testing
from .errors import (CheckpointError, DivergenceError, NonFiniteError,
                     WeightsMismatchError)
from .layers import (GELU, GRU, LSTM, RNN, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d,
                     BatchNorm2d, Conv2d, Dropout, Embedding, Flatten, LayerNorm, LeakyReLU,
                     Linear, LogSoftmax, LoRALinear, MaxPool2d, MultiheadAttention, ReLU,
                     Residual, Sigmoid, Softmax, Tanh, TransformerEncoderLayer)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, Parameter, Sequential, is_grad_enabled, no_grad
from .optim import (SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR,
                    StepLR, clip_grad_norm)
from .random import get_rng, manual_seed

__version__ = "1.0.0"

__all__ = ["Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid",
           "Tanh", "Dropout", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
           "RNN", "LSTM", "GRU", "GELU", "Softmax", "LogSoftmax", "AdaptiveAvgPool2d",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Residual", "LoRALinear", "MultiheadAttention",
           "TransformerEncoderLayer", "no_grad",
           "is_grad_enabled", "DivergenceError", "WeightsMismatchError", "CheckpointError",
           "functional", "testing", "MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss", "SGD",
           "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "LinearLR", "SequentialLR", "LambdaLR",
           "clip_grad_norm", "manual_seed", "get_rng", "NonFiniteError", "data", "gan",
           "init", "losses", "models", "optim", "rl", "train", "viz"]
