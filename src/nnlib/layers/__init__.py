from .activations import LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .dropout import Dropout
from .linear import Linear

__all__ = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout", "sigmoid"]
