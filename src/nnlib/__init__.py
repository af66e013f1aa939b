"""nnlib: NumPy reference implementations of neural-network layers, each checked
against PyTorch. The companion package of the book."""
from . import data, gan, gradcheck, init, losses, models, optim, plots, rl, train
from ._checks import NonFiniteError
from .layers import (GRU, LSTM, RNN, AvgPool2d, Conv2d, Dropout, Embedding, Flatten, LeakyReLU,
                     Linear, MaxPool2d, ReLU, Sigmoid, Tanh)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, Parameter, Sequential
from .optim import SGD, Adam, clip_grad_norm
from .random import get_rng, manual_seed

__version__ = "0.1.0"

__all__ = ["Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid",
           "Tanh", "Dropout", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
           "RNN", "LSTM", "GRU", "MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss", "SGD",
           "Adam", "clip_grad_norm", "manual_seed", "get_rng", "NonFiniteError", "data", "gan",
           "gradcheck", "init", "losses", "models", "optim", "plots", "rl", "train"]
