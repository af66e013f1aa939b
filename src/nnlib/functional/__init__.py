"""nnlib.functional: each layer's maths as pure functions, in CS231n's shape.

``out, cache = f_forward(inputs..., params...)`` computes a layer and returns
what its backward needs; ``f_backward(dout, cache)`` returns the gradient with
respect to each array input and parameter, in the order of the forward's
arguments. No state, no parameters, no input checks (the layers in
``nnlib.layers`` own those), so a chapter can derive a gradient by hand and
check it against the function of the same name here.

=====================  ==========================================================
``basic``              linear, relu, leaky_relu, sigmoid, tanh, gelu, softmax,
                       log_softmax, dropout, embedding
``conv``               conv2d (im2col), max/avg pooling, adaptive average pooling
``recurrent``          RNN, LSTM and GRU: one step, and whole sequences (BPTT)
``norm``               batch norm, layer norm
``attention``          scaled dot-product attention (the core of multi-head
                       attention), causal masks
=====================  ==========================================================
"""
from .attention import *  # noqa: F401,F403
from .attention import __all__ as _attention
from .basic import *  # noqa: F401,F403
from .basic import __all__ as _basic
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv
from .norm import *  # noqa: F401,F403
from .norm import __all__ as _norm
from .recurrent import *  # noqa: F401,F403
from .recurrent import __all__ as _recurrent

__all__ = [*_basic, *_conv, *_recurrent, *_norm, *_attention]
