from .activations import LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .recurrent import GRU, LSTM, RNN

__all__ = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout", "Embedding", "Conv2d", "MaxPool2d",
           "AvgPool2d", "Flatten", "RNN", "LSTM", "GRU", "sigmoid"]
