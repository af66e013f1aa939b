"""nnlib's layers: thin stateful wrappers over ``nnlib.functional`` that own
parameters and caches. Each file registers its layer's PyTorch twin beside it
(``register_twin``), and ``tests/test_registry.py`` requires, for every layer
exported here, a twin, agreement with torch, a passing gradient check and a
docstring with shapes."""
from ..functional import sigmoid
from ._twins import register_twin
from .activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention, TransformerEncoderLayer
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Flatten, MaxPool2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .lora import LoRALinear
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN
from .residual import Residual

__all__ = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax",
           "Dropout", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "Flatten", "RNN", "LSTM", "GRU", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
           "Residual", "LoRALinear", "MultiheadAttention", "TransformerEncoderLayer", "sigmoid",
           "register_twin"]
