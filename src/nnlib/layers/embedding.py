"""Embedding: a lookup table from integer tokens to learned vectors."""
from __future__ import annotations

import numpy as np

from .. import init
from ..functional import embedding_backward, embedding_forward
from ..module import Module, Parameter
from ._twins import register_twin

__all__ = ["Embedding"]


class Embedding(Module):
    """``idx: (...) integers in [0, num_embeddings) -> (..., embedding_dim)``.

    ``weight`` has shape ``(num_embeddings, embedding_dim)`` and starts as
    N(0, 1), as ``torch.nn.Embedding``. Looking up row ``k`` is the same as
    multiplying the one-hot vector of ``k`` by ``weight``, without building the
    one-hot vectors. Backward adds each upstream gradient row into the row of
    ``weight`` it came from (``np.add.at``, since a token can repeat) and
    returns ``None``: there is no gradient with respect to integer indices.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, rng=None,
                 dtype=np.float64):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings),
                        ("embedding_dim", embedding_dim)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Embedding: expected {name} to be a positive integer, "
                                 f"got {v!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim),
                                         dtype=dtype))
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "Embedding":
        """N(0, 1) for every entry, as PyTorch."""
        self.weight.data[...] = init.normal(self.weight.shape, std=1.0, rng=rng,
                                            dtype=self.weight.data.dtype)
        return self

    def forward(self, idx):
        where = "Embedding.forward"
        if isinstance(idx, (list, tuple)):
            idx = np.asarray(idx)
        if not isinstance(idx, np.ndarray):
            raise TypeError(f"{where}: expected an integer NumPy array of token ids, "
                            f"got {type(idx).__name__}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{where}: expected integer token ids, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            bad = idx[(idx < 0) | (idx >= self.num_embeddings)].flat[0]
            raise IndexError(f"{where}: expected ids in [0, {self.num_embeddings}), "
                             f"got {int(bad)}")
        y, cache = embedding_forward(idx, self.weight.data)
        self.cache = cache
        return y

    def backward(self, grad_out):
        cache = self._cached()
        g = self._grad_out(grad_out, cache[0].shape + (self.embedding_dim,))
        self.weight.accumulate(embedding_backward(g, cache))
        return None

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


register_twin(Embedding, lambda m, nn: nn.Embedding(m.num_embeddings, m.embedding_dim))
