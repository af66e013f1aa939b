from .activations import LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .linear import Linear

__all__ = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "sigmoid"]
