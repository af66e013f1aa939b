"""A decoder-only, character-level Transformer language model (GPT-style),
built from ``nnlib.layers.TransformerEncoderLayer`` blocks with a causal
mask, and generation with a key-value cache.

``CharTransformer(vocab_size, d_model, nhead, num_layers, ...)`` maps token
ids ``idx: (N, T)`` to next-token scores ``(N, T, vocab_size)``::

    x = tok_emb(idx) + P[:T]             token embedding + positions
    x = block_l(x, causal mask)          l = 1 ... L, pre-norm blocks
    scores = head(norm(x))               final LayerNorm, linear head

``P`` is a learned table (``pos_emb``, one vector per position, as GPT-2)
or the fixed sinusoids of ``nnlib.functional.sinusoidal_positions``. The
parameter names are those of the torch twin registered here (``tok_emb``,
``pos_emb``, ``blocks.0.self_attn.in_proj_weight``, ..., ``norm``,
``head``), so ``nnlib.testing.torch_twin`` gives the same model in torch
and weights move both ways by name.

Generation (``CharTransformer.generate``) draws one token at a time. Without
a cache every step runs the whole prefix again (step t costs a forward pass
over t tokens). With the key-value cache, each layer keeps the keys and
values of the positions already seen; a new token is pushed through the
layers alone, its query attends to the cached keys, and its own key and
value are appended. The arithmetic per position is the same as in the full
forward pass (the causal mask makes position t depend only on 1 ... t), so
the two give the same scores to rounding error.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .functional.attention import causal_mask, sinusoidal_positions
from .functional.basic import linear_forward
from .layers._twins import register_twin
from .layers.attention import TransformerEncoderLayer
from .layers.embedding import Embedding
from .layers.linear import Linear
from .layers.norm import LayerNorm
from .module import Module, Sequential, no_grad
from .random import get_rng
from ._checks import positive_int as _positive_int

__all__ = ["CharTransformer", "KVCache", "windowed_loss"]


class KVCache:
    """The keys and values a ``CharTransformer`` has computed so far, one
    pair per layer: ``keys[l], values[l]: (N, H, t, d_h)`` for the ``t``
    positions already processed (``length``). Made by
    ``CharTransformer.new_cache(N)``; ``CharTransformer.extend`` appends."""

    def __init__(self, num_layers: int, batch: int):
        self.keys = [None] * num_layers
        self.values = [None] * num_layers
        self.batch = batch
        self.length = 0

    def nbytes(self) -> int:
        """Bytes held by the cached arrays (2 L N H t d_h numbers)."""
        return int(sum(a.nbytes for a in self.keys + self.values if a is not None))


@contextlib.contextmanager
def _evaluating(model):
    """Evaluation mode (no dropout) inside, the caller's mode restored after."""
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


class CharTransformer(Module):
    """Decoder-only Transformer language model: ``idx: (N, T) ints in [0,
    vocab_size) -> (N, T, vocab_size)`` scores for the next token at every
    position, with ``T <= max_len``.

    Children (torch's names): ``tok_emb`` (Embedding(vocab_size, d_model)),
    ``pos_emb`` (Embedding(max_len, d_model), only with
    ``positions="learned"``), ``blocks`` (``num_layers`` pre-norm
    ``TransformerEncoderLayer(d_model, nhead, dim_feedforward,
    norm_first=True)``, run with the causal mask), ``norm`` (the final
    LayerNorm that pre-norm needs) and ``head`` (Linear(d_model,
    vocab_size)). ``dropout`` goes to every block's three Dropout layers
    (default 0), not to the attention weights, in nnlib and in the torch
    twin alike. Initialisation: each layer's own (as
    torch), except the two embedding tables, which start as N(0, 0.02^2) as
    GPT-2's (``embed_std``): with torch's N(0, 1) each input vector has a
    length of about sqrt(d_model), large against what the blocks add to the
    residual stream at first, and training crawls (measured: a validation loss of 2.52 after 450 steps of the
    script, against 2.12 with 0.02; float32, seed 0, no dropout).

    ``backward(g)`` takes ``g = dL/dscores: (N, T, vocab_size)``, adds every
    parameter gradient (the position table receives the sum over the batch)
    and returns None (no gradient for integer ids).
    """

    def __init__(self, vocab_size: int, d_model: int = 96, nhead: int = 4,
                 num_layers: int = 3, dim_feedforward: int = 288, max_len: int = 256,
                 positions: str = "learned", activation: str = "relu",
                 embed_std: float = 0.02, dropout: float = 0.0,
                 rng: np.random.Generator | None = None, dtype=np.float64):
        super().__init__()
        where = "CharTransformer"
        self.vocab_size = _positive_int(where, "vocab_size", vocab_size)
        self.d_model = _positive_int(where, "d_model", d_model)
        self.nhead = _positive_int(where, "nhead", nhead)
        self.num_layers = _positive_int(where, "num_layers", num_layers)
        self.dim_feedforward = _positive_int(where, "dim_feedforward", dim_feedforward)
        self.max_len = _positive_int(where, "max_len", max_len)
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"{where}: expected positions 'learned' or 'sinusoidal', "
                             f"got {positions!r}")
        if self.d_model % self.nhead:
            raise ValueError(f"{where}: expected d_model to be divisible by nhead, got "
                             f"d_model={self.d_model} and nhead={self.nhead}")
        if positions == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"{where}: sinusoidal positions need an even d_model, got "
                             f"{self.d_model}")
        if not (isinstance(embed_std, (int, float)) and not isinstance(embed_std, bool)
                and embed_std > 0 and math.isfinite(embed_std)):
            raise ValueError(f"{where}: expected embed_std > 0, got {embed_std!r}")
        self.embed_std = float(embed_std)
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"{where}: expected a dropout probability in [0, 1), got "
                             f"{dropout!r}")
        self.dropout_p = float(dropout)
        self.positions = positions
        self.activation = activation
        self.dtype = np.dtype(dtype)
        rng = get_rng(rng)
        self.tok_emb = Embedding(self.vocab_size, self.d_model, rng=rng, dtype=dtype)
        if positions == "learned":
            self.pos_emb = Embedding(self.max_len, self.d_model, rng=rng, dtype=dtype)
        else:
            self.pos_table = sinusoidal_positions(self.max_len, self.d_model).astype(dtype)
        self.blocks = Sequential(*[
            TransformerEncoderLayer(self.d_model, self.nhead, self.dim_feedforward,
                                    dropout=self.dropout_p, activation=activation,
                                    norm_first=True,
                                    rng=rng, dtype=dtype)
            for _ in range(self.num_layers)])
        self.norm = LayerNorm(self.d_model, dtype=dtype)
        self.head = Linear(self.d_model, self.vocab_size, rng=rng, dtype=dtype)
        self._scale_embeddings()

    def _scale_embeddings(self):
        for table in (self.tok_emb, getattr(self, "pos_emb", None)):
            if table is not None:
                table.weight.data *= self.embed_std     # N(0, 1) -> N(0, std^2)

    # --- input checks ---------------------------------------------------------
    def _ids(self, idx, where, start=0):
        if isinstance(idx, (list, tuple)):
            idx = np.asarray(idx)
        if not isinstance(idx, np.ndarray) or not np.issubdtype(idx.dtype, np.integer):
            got = type(idx).__name__ if not isinstance(idx, np.ndarray) else \
                f"dtype {idx.dtype}"
            raise TypeError(f"{where}: expected an integer array of token ids of shape "
                            f"(N, T), got {got}")
        if idx.ndim != 2 or idx.shape[1] < 1:
            raise ValueError(f"{where}: expected token ids of shape (N, T) with T >= 1, "
                             f"got shape {idx.shape}")
        if start + idx.shape[1] > self.max_len:
            raise ValueError(f"{where}: the model has positions for max_len="
                             f"{self.max_len} tokens, got {start + idx.shape[1]} "
                             f"(T={idx.shape[1]}" + (f" after {start} cached" if start
                                                     else "") + ")")
        if idx.size and (idx.min() < 0 or idx.max() >= self.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.vocab_size)].flat[0]
            raise IndexError(f"{where}: expected ids in [0, {self.vocab_size}), "
                             f"got {int(bad)}")
        return idx

    def _embed(self, idx, start):
        """Token embedding plus positions start ... start + T - 1: (N, T, E)."""
        x = self.tok_emb.forward(idx)
        t = idx.shape[1]
        if self.positions == "learned":
            return x + self.pos_emb.forward(np.arange(start, start + t))
        return x + self.pos_table[start:start + t]

    # --- the contract ---------------------------------------------------------
    def forward(self, idx):
        idx = self._ids(idx, "CharTransformer.forward")
        T = idx.shape[1]
        x = self._embed(idx, 0)
        mask = causal_mask(T)
        for block in self.blocks:
            x = block.forward(x, src_mask=mask)
        y = self.head.forward(self.norm.forward(x))
        self.cache = y.shape
        return y

    def backward(self, grad_out):
        shape = self._cached()
        g = self._grad_out(grad_out, shape)
        g = self.norm.backward(self.head.backward(g))
        for block in reversed(list(self.blocks)):
            g = block.backward(g)
        if self.positions == "learned":
            self.pos_emb.backward(g.sum(axis=0))     # one table, shared by the batch
        self.tok_emb.backward(g)
        return None

    # --- attention maps -------------------------------------------------------
    def attention_maps(self, idx) -> np.ndarray:
        """The attention weights of every head of every layer, ``idx: (N, T)
        -> (L, N, H, T, T)``: entry ``[l, n, h, i, j]`` is how much query
        position i attends to key position j in head h of layer l (0 above the
        diagonal, rows summing to 1). Runs under ``no_grad``, in evaluation
        mode."""
        idx = self._ids(idx, "CharTransformer.attention_maps")
        T = idx.shape[1]
        mask = causal_mask(T)
        maps = []
        with no_grad(), _evaluating(self):
            x = self._embed(idx, 0)
            for block in self.blocks:
                block.self_attn.forward(block.norm1.forward(x), attn_mask=mask,
                                        need_weights=True, average_attn_weights=False)
                maps.append(block.self_attn.attn_weights)
                block.self_attn.attn_weights = None
                x = block.forward(x, src_mask=mask)
        return np.stack(maps)

    # --- incremental decoding -----------------------------------------------------
    def new_cache(self, batch: int = 1) -> KVCache:
        """An empty key-value cache for ``batch`` sequences (``extend`` fills it)."""
        return KVCache(self.num_layers, _positive_int("CharTransformer.new_cache",
                                                      "batch", batch))

    def extend(self, idx, cache: KVCache) -> np.ndarray:
        """Scores for new tokens given the cached ones: ``idx: (N, T_new)``,
        the tokens at positions ``cache.length ... cache.length + T_new - 1``
        -> ``(N, T_new, vocab_size)``. Each layer computes queries, keys and
        values for the new positions only, attends with them to the cached
        keys and values plus their own (causally), and appends its new keys
        and values to ``cache``. No gradient is kept (``no_grad``)."""
        where = "CharTransformer.extend"
        if not isinstance(cache, KVCache) or len(cache.keys) != self.num_layers:
            raise TypeError(f"{where}: expected a KVCache from new_cache() with "
                            f"{self.num_layers} layers, got {type(cache).__name__}")
        idx = self._ids(idx, where, start=cache.length)
        if idx.shape[0] != cache.batch:
            raise ValueError(f"{where}: expected {cache.batch} sequences (the cache's "
                             f"batch), got idx of shape {idx.shape}")
        start, t_new = cache.length, idx.shape[1]
        n, E, H = idx.shape[0], self.d_model, self.nhead
        h = E // H
        # new query i (position start + i) may not see key j > start + i
        mask = np.triu(np.ones((t_new, start + t_new), dtype=bool), k=start + 1)
        with no_grad(), _evaluating(self):
            x = self._embed(idx, start)
            for l, block in enumerate(self.blocks):
                att = block.self_attn
                b = att.in_proj_bias
                qkv, _ = linear_forward(block.norm1.forward(x), att.in_proj_weight.data,
                                        None if b is None else b.data)
                q, k, v = (att._split(qkv[..., i * E:(i + 1) * E]) for i in range(3))
                if start:
                    k = np.concatenate([cache.keys[l], k], axis=2)
                    v = np.concatenate([cache.values[l], v], axis=2)
                cache.keys[l], cache.values[l] = k, v
                s = (q @ np.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(h))
                s = np.where(mask, -np.inf, s)
                w = np.exp(s - s.max(axis=-1, keepdims=True))
                w /= w.sum(axis=-1, keepdims=True)
                x = x + att.out_proj.forward(att._merge(w @ v))
                x = x + block._ff(block.norm2.forward(x))
            y = self.head.forward(self.norm.forward(x))
        cache.length = start + t_new
        assert y.shape == (n, t_new, self.vocab_size)
        return y

    def generate(self, prime, n: int, temperature: float = 1.0, rng=None,
                 use_cache: bool = True, return_logits: bool = False):
        """Continue the token ids ``prime: (P,)`` by ``n`` tokens, each drawn from
        ``softmax(scores / temperature)`` of the last position; returns the ids
        ``(P + n,)`` (prime included), and with ``return_logits=True`` also the
        scores ``(n, vocab_size)`` (float64) each draw was made from.

        ``use_cache=True`` runs the prime once through ``extend`` and then one
        new token per step; ``use_cache=False`` runs ``forward`` over the
        whole sequence so far at every step. Both draw with the same random
        numbers (one uniform number per token, compared with the cumulative
        probabilities), so they give the same tokens as long as their scores
        agree. ``P + n`` may not exceed ``max_len``."""
        where = "CharTransformer.generate"
        prime = np.asarray(prime)
        if prime.ndim != 1 or prime.size < 1 or not np.issubdtype(prime.dtype, np.integer):
            raise ValueError(f"{where}: expected prime to be a non-empty 1-D array of "
                             f"integer token ids, got shape {prime.shape} and dtype "
                             f"{prime.dtype}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{where}: expected n >= 0 tokens to generate, got {n!r}")
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"{where}: expected temperature > 0, got {temperature!r}")
        if prime.size + n > self.max_len:
            raise ValueError(f"{where}: the model has positions for max_len="
                             f"{self.max_len} tokens, got a prime of {prime.size} plus "
                             f"n={n} new ones ({prime.size + n}); generate at most "
                             f"{self.max_len - prime.size} here")
        self._ids(prime[None], where)
        rng = get_rng(rng)
        ids = [int(i) for i in prime]
        logits = []
        if use_cache:
            cache = self.new_cache(1)
            scores = self.extend(prime[None], cache)[0, -1]
        for step in range(n):
            if not use_cache:
                with no_grad(), _evaluating(self):
                    scores = self.forward(np.array([ids]))[0, -1]
            z = scores.astype(np.float64)
            logits.append(z)
            p = np.exp((z - z.max()) / temperature)
            cdf = np.cumsum(p / p.sum())
            token = int(min(np.searchsorted(cdf, rng.random(), side="right"),
                            self.vocab_size - 1))
            ids.append(token)
            if use_cache and step < n - 1:
                scores = self.extend(np.array([[token]]), cache)[0, -1]
        out = np.array(ids, dtype=np.int64)
        if return_logits:
            return out, np.array(logits).reshape(n, self.vocab_size)
        return out

    def reset_parameters(self, rng=None) -> "CharTransformer":
        """Each child's own initialisation, the embedding tables then scaled to
        N(0, embed_std^2) (the sinusoidal table is fixed)."""
        for m in self.children():
            m.reset_parameters(rng)
        self._scale_embeddings()
        return self

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, d_model={self.d_model}, "
                f"nhead={self.nhead}, num_layers={self.num_layers}, "
                f"dim_feedforward={self.dim_feedforward}, max_len={self.max_len}, "
                f"positions={self.positions!r}")


def windowed_loss(score, ids, window: int, stride: int | None = None,
                  batch: int = 16) -> float:
    """Mean cross-entropy (nats per token) of a model that reads at most
    ``window`` tokens, over a long token sequence ``ids: (n,)``.

    ``score`` maps windows ``(B, W)`` of token ids to next-token scores
    ``(B, W, V)`` (a NumPy array; any model, nnlib or torch). Windows of
    ``W = min(window, n - 1)`` tokens start every ``stride`` tokens
    (default ``window // 2``), the last one flush with the end; each of the
    ``n - 1`` targets ``ids[1:]`` is scored exactly once, by the first
    window that predicts it and has not scored it before. So the targets
    of the first window see 0 ... W - 1 earlier tokens, and every later one
    at least ``W - stride``. ``exp`` of the result is the perplexity."""
    where = "windowed_loss"
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size < 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{where}: expected a 1-D integer array of at least 2 token ids, "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    window = _positive_int(where, "window", window)
    n_targets = ids.size - 1
    W = min(window, n_targets)
    stride = max(W // 2, 1) if stride is None else _positive_int(where, "stride", stride)
    if stride > W:
        raise ValueError(f"{where}: expected stride <= window ({W}), got {stride} (targets "
                         "between windows would never be scored)")
    batch = _positive_int(where, "batch", batch)
    starts = list(range(0, n_targets - W + 1, stride))
    if starts[-1] != n_targets - W:
        starts.append(n_targets - W)
    total, count, scored_to = 0.0, 0, 0
    for b in range(0, len(starts), batch):
        chunk = starts[b:b + batch]
        x = np.stack([ids[s:s + W] for s in chunk])
        y = np.stack([ids[s + 1:s + W + 1] for s in chunk])
        z = np.asarray(score(x), dtype=np.float64)
        if z.shape[:2] != x.shape or z.ndim != 3:
            raise ValueError(f"{where}: expected score to map windows {x.shape} to "
                             f"scores of shape ({x.shape[0]}, {W}, V), got {z.shape}")
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        for row, s in zip(picked, chunk):
            first = scored_to - s              # targets before it were scored
            total -= float(row[first:].sum())
            count += W - first
            scored_to = s + W
    assert count == n_targets
    return total / count


def _char_transformer_twin(m, nn):
    """torch's version of ``m``: the same children, names and arithmetic."""
    import torch

    class CharTransformerTwin(nn.Module):
        def __init__(self):
            super().__init__()
            E = m.d_model
            self.tok_emb = nn.Embedding(m.vocab_size, E)
            if m.positions == "learned":
                self.pos_emb = nn.Embedding(m.max_len, E)
            else:
                self.register_buffer("pos_table", torch.from_numpy(
                    sinusoidal_positions(m.max_len, E)), persistent=False)
            self.blocks = nn.ModuleList([
                nn.TransformerEncoderLayer(E, m.nhead, m.dim_feedforward, m.dropout_p,
                                           m.activation, batch_first=True,
                                           norm_first=True)
                for _ in range(m.num_layers)])
            for block in self.blocks:   # nnlib drops no attention weights (and
                block.self_attn.dropout = 0.0   # torch's CPU kernel is 3x slower then)
            self.norm = nn.LayerNorm(E)
            self.head = nn.Linear(E, m.vocab_size)

        def forward(self, idx):
            T = idx.shape[1]
            pos = torch.arange(T, device=idx.device)
            x = self.tok_emb(idx) + (self.pos_emb(pos) if m.positions == "learned"
                                     else self.pos_table[:T])
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=idx.device), 1)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.head(self.norm(x))

    return CharTransformerTwin()


register_twin(CharTransformer, _char_transformer_twin)
