"""Multi-head attention and the Transformer encoder layer (Vaswani et al.,
2017), as ``torch.nn.MultiheadAttention`` and ``torch.nn.TransformerEncoderLayer``
with ``batch_first=True``: the same parameter names and layouts, so weights
copy by name between the two.

The core is ``nnlib.functional.scaled_dot_product_attention_forward``; the
projections are ``linear_forward``. Masks follow ``torch.nn.MultiheadAttention``:
a bool mask is True where a query may **not** attend (a float mask is added to
the scores), and ``key_padding_mask`` is True at padding keys.
"""
from __future__ import annotations

import numpy as np

from .. import init
from .._checks import as_float_array
from ..functional import norm as Fn
from ..functional.attention import (causal_mask, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward)
from ..functional.basic import linear_backward, linear_forward
from ..module import Module, Parameter
from ._twins import register_twin
from .activations import GELU, ReLU
from .dropout import Dropout
from .linear import Linear
from .norm import LayerNorm
from .._checks import positive_int as _positive_int

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


def _flag(where, name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{where}: expected {name} to be True or False, got {v!r}")
    return bool(v)


def _sequence(x, where, name, embed_dim, T_name):
    """A (N, T, E) float array, or an error that shows the expected shape."""
    x = as_float_array(x, where, name)
    if x.ndim != 3 or x.shape[-1] != embed_dim:
        raise ValueError(f"{where}: expected {name} of shape (N, {T_name}, {embed_dim}) "
                         f"(batch_first=True, embed_dim={embed_dim}), got {x.shape}")
    return x


def _mask(m, where, name, shapes):
    """A bool or float mask whose shape is one of ``shapes``."""
    if not isinstance(m, np.ndarray):
        m = np.asarray(m)
    if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.floating):
        raise TypeError(f"{where}: expected {name} to be a bool mask (True = may not "
                        f"attend) or a float additive mask, got dtype {m.dtype}")
    if m.shape not in shapes:
        shown = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{where}: expected {name} of shape {shown}, got {m.shape}")
    if m.dtype != np.bool_ and (np.isnan(m).any() or np.isposinf(m).any()):
        raise ValueError(f"{where}: expected {name} with no NaN and no +inf (a float mask "
                         "is added to the scores: 0 keeps a pair, -inf removes it)")
    return m


def _as_float_mask(m, dtype):
    return np.where(m, -np.inf, 0.0).astype(dtype) if m.dtype == np.bool_ else m


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention(embed_dim,
    num_heads, bias=bias, batch_first=True)``.

    ``query: (N, T_q, E), key: (N, T_k, E), value: (N, T_k, E) -> (N, T_q, E)``;
    ``forward(x)`` alone is self-attention (key = value = query).

    Parameters (torch's names): ``in_proj_weight (3E, E)`` -- the rows of
    W_q, W_k, W_v stacked --, ``in_proj_bias (3E,)``, and ``out_proj``, a
    ``Linear(E, E)`` (``out_proj.weight``, ``out_proj.bias``). Initialisation
    as torch: Xavier-uniform ``in_proj_weight``, zero biases, and
    ``out_proj.weight`` from Linear's U(-1/sqrt(E), 1/sqrt(E)).

    With H heads of size h = E / H, head i uses rows i h ... (i+1) h of each
    projection::

        Q = x_q W_q^T + b_q,  K = x_k W_k^T + b_k,  V = x_v W_v^T + b_v
        O_i = softmax(Q_i K_i^T / sqrt(h) + M) V_i      (T_q, h)
        y = [O_1 ... O_H] W_o^T + b_o

    ``forward`` returns only ``y``, so that ``backward`` takes dL/dy (the
    Module contract); the attention weights -- torch's second return value
    -- are kept in ``self.attn_weights``: ``(N, T_q, T_k)`` averaged over the
    heads, or ``(N, H, T_q, T_k)`` with ``average_attn_weights=False``
    (None with ``need_weights=False``).

    Backward for one head, with ``G = dL/dy`` and ``A`` its weights::

        dW_o = G^T [O_1 ... O_H],  db_o = sum_rows G,  dO_i = (G W_o)_i
        dV_i = A^T dO_i,  dA = dO_i V_i^T
        dS = A * (dA - rowsum(dA * A))         (softmax backward)
        dQ_i = dS K_i / sqrt(h),  dK_i = dS^T Q_i / sqrt(h)
        dW_q = dQ^T x_q,  db_q = sum_rows dQ,  dx_q = dQ W_q  (same for k, v)

    ``backward(g)`` returns dL/dquery after self-attention (the three input
    paths summed: dx_q + dx_k + dx_v), and the tuple ``(dquery, dkey,
    dvalue)`` when key and value were given, even if they are the same array.

    Masks, as torch: ``key_padding_mask (N, T_k)`` is True at padding keys;
    ``attn_mask (T_q, T_k)`` or ``(N * H, T_q, T_k)`` is True where a query
    may not attend; float masks of those shapes are added to the scores.
    ``is_causal=True`` without ``attn_mask`` uses ``causal_mask(T_q, T_k)``
    (torch requires the mask itself and treats ``is_causal`` as a hint;
    given one, nnlib uses ``attn_mask``, as torch does whenever it computes
    weights). A query that would attend to no key at all raises a
    ``ValueError`` naming it (torch returns NaN for it with
    ``need_weights=True`` and a zero attention row, i.e. ``out_proj.bias``,
    with ``need_weights=False``). No dropout on the
    attention weights (``dropout`` must be 0) and no ``add_bias_kv``,
    ``add_zero_attn``, ``kdim``/``vdim``.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True,
                 batch_first: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float64, *, dropout: float = 0.0):
        super().__init__()
        where = "MultiheadAttention"
        self.embed_dim = _positive_int(where, "embed_dim", embed_dim)
        self.num_heads = _positive_int(where, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{where}: expected embed_dim to be divisible by num_heads, got "
                             f"embed_dim={self.embed_dim} and num_heads={self.num_heads} "
                             f"({self.embed_dim} % {self.num_heads} = "
                             f"{self.embed_dim % self.num_heads})")
        bias = _flag(where, "bias", bias)
        if not _flag(where, "batch_first", batch_first):
            raise ValueError(f"{where}: only batch_first=True is supported (inputs of shape "
                             "(N, T, E)); transpose (T, N, E) inputs with x.transpose(1, 0, 2)")
        if dropout != 0:
            raise ValueError(f"{where}: attention dropout is not supported, expected "
                             f"dropout=0.0, got {dropout!r}")
        self.head_dim = self.embed_dim // self.num_heads
        E = self.embed_dim
        self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype=dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * E, dtype=dtype)) if bias else None
        self.out_proj = Linear(E, E, bias=bias, rng=rng, dtype=dtype)
        self.attn_weights = None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "MultiheadAttention":
        """As torch: Xavier-uniform ``in_proj_weight`` (fans E and 3E), zero
        ``in_proj_bias`` and ``out_proj.bias``, ``out_proj.weight`` from
        U(-1/sqrt(E), 1/sqrt(E)). Shapes ``(3E, E)``, ``(3E,)``, ``(E, E)``, ``(E,)``."""
        w = self.in_proj_weight.data
        w[...] = init.xavier_uniform(w.shape, rng=rng, dtype=w.dtype)
        if self.in_proj_bias is not None:
            self.in_proj_bias.data[...] = 0.0
        self.out_proj.reset_parameters(rng)
        if self.out_proj.bias is not None:
            self.out_proj.bias.data[...] = 0.0
        return self

    # --- heads --------------------------------------------------------------
    def _split(self, x):
        """(N, T, E) -> (N, H, T, h)."""
        n, t, _ = x.shape
        return x.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(x):
        """(N, H, T, h) -> (N, T, E)."""
        n, heads, t, h = x.shape
        return x.transpose(0, 2, 1, 3).reshape(n, t, heads * h)

    def _merged_mask(self, n, t_q, t_k, key_padding_mask, attn_mask, is_causal, dtype):
        """One mask broadcastable to (N, H, T_q, T_k), or None."""
        where = "MultiheadAttention.forward"
        parts = []
        if attn_mask is not None:
            m = _mask(attn_mask, where, "attn_mask",
                      [(t_q, t_k), (n * self.num_heads, t_q, t_k)])
            parts.append(m[None, None] if m.ndim == 2 else
                         m.reshape(n, self.num_heads, t_q, t_k))
        elif is_causal:
            parts.append(causal_mask(t_q, t_k)[None, None])
        if key_padding_mask is not None:
            m = _mask(key_padding_mask, where, "key_padding_mask", [(n, t_k)])
            parts.append(m[:, None, None, :])
        if not parts:
            return None
        if all(p.dtype == np.bool_ for p in parts):
            mask = parts[0] if len(parts) == 1 else parts[0] | parts[1]
            blocked = mask.all(axis=-1)
        else:
            mask = sum(_as_float_mask(p, dtype) for p in parts)
            blocked = np.isneginf(mask).all(axis=-1)
        blocked = np.broadcast_to(blocked, (n, self.num_heads, t_q))
        if blocked.any():
            b, h, i = (int(v) for v in np.argwhere(blocked)[0])
            raise ValueError(
                f"{where}: query position {i} of batch element {b} (head {h}) may attend "
                f"to no key -- key_padding_mask and attn_mask/is_causal mask all {t_k} keys "
                f"for it ({int(blocked.sum())} such (batch, head, query) rows); softmax over "
                "no keys is undefined (torch returns NaN or zeros there). Leave a key "
                "unmasked for every query: no sequence all padding, and under a causal mask "
                "key 0 must not be padding")
        return mask

    # --- the contract ---------------------------------------------------------
    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None,
                is_causal=False, need_weights=True, average_attn_weights=True):
        where = "MultiheadAttention.forward"
        E = self.embed_dim
        if (key is None) != (value is None):
            given = "key" if value is None else "value"
            raise ValueError(f"{where}: expected both key and value (cross-attention) or "
                             f"neither (self-attention), got only {given}")
        self_attention = key is None
        query = _sequence(query, where, "query", E, "T_q")
        n, t_q, _ = query.shape
        if self_attention:
            key = value = query
        else:
            key = _sequence(key, where, "key", E, "T_k")
            value = _sequence(value, where, "value", E, "T_k")
            if key.shape[0] != n:
                raise ValueError(f"{where}: expected key and value with the batch size of "
                                 f"query ({n}), got key of shape {key.shape}")
            if value.shape != key.shape:
                raise ValueError(f"{where}: expected value of the shape of key {key.shape}, "
                                 f"got {value.shape}")
        t_k = key.shape[1]
        is_causal = _flag(where, "is_causal", is_causal)
        mask = self._merged_mask(n, t_q, t_k, key_padding_mask, attn_mask, is_causal,
                                 query.dtype)

        W = self.in_proj_weight.data
        b = None if self.in_proj_bias is None else self.in_proj_bias.data
        if self_attention:                  # one packed projection, as torch
            qkv, proj = linear_forward(query, W, b)
            q, k, v = qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        else:
            outs, proj = [], []
            for i, x in enumerate((query, key, value)):
                y, c = linear_forward(x, W[i * E:(i + 1) * E],
                                      None if b is None else b[i * E:(i + 1) * E])
                outs.append(y)
                proj.append(c)
            q, k, v = outs
        o, att = scaled_dot_product_attention_forward(self._split(q), self._split(k),
                                                      self._split(v), mask)
        y = self.out_proj.forward(self._merge(o))
        if need_weights:
            self.attn_weights = att.weights.mean(axis=1) if average_attn_weights \
                else att.weights
        else:
            self.attn_weights = None
        self.cache = (self_attention, proj, att, y.shape)
        return y

    def backward(self, grad_out):
        self_attention, proj, att, shape = self._cached()
        g = self._grad_out(grad_out, shape)
        d_heads = self._split(self.out_proj.backward(g))
        dq, dk, dv = (self._merge(d) for d in
                      scaled_dot_product_attention_backward(d_heads, att))
        if self_attention:
            dx, dW, db = linear_backward(np.concatenate([dq, dk, dv], axis=-1), proj)
            grads = dx
        else:
            parts = [linear_backward(d, c) for d, c in zip((dq, dk, dv), proj)]
            grads = tuple(p[0] for p in parts)
            dW = np.concatenate([p[1] for p in parts], axis=0)
            db = None if self.in_proj_bias is None else \
                np.concatenate([p[2] for p in parts])
        self.in_proj_weight.accumulate(dW)
        if self.in_proj_bias is not None:
            self.in_proj_bias.accumulate(db)
        return grads

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"bias={self.in_proj_bias is not None}, batch_first=True")


class _BiaslessLayerNorm(LayerNorm):
    """``LayerNorm`` with a weight and no bias, as torch's ``LayerNorm(d,
    bias=False)``: ``x: (..., d) -> (..., d)``."""

    def __init__(self, d: int, eps: float, dtype=np.float64):
        super().__init__(d, eps, dtype=dtype)
        self.bias = None

    def reset_parameters(self, rng=None):
        self.weight.data[...] = 1.0
        return self

    def forward(self, x):
        x = self._input(x)
        if x.shape[-1:] != self.normalized_shape:
            raise ValueError(f"LayerNorm.forward: expected x of shape (..., "
                             f"{self.normalized_shape[0]}), got {x.shape}")
        y, cache = Fn.layer_norm_forward(x, 1, self.weight.data, 0.0, self.eps)
        self.cache = (cache, x.shape)
        return y

    def backward(self, grad_out):
        cache, shape = self._cached()
        dx, dw, _ = Fn.layer_norm_backward(self._grad_out(grad_out, shape), cache)
        self.weight.accumulate(dw)
        return dx


class TransformerEncoderLayer(Module):
    """Self-attention and a position-wise MLP, each wrapped in a residual
    connection and a layer norm, as ``torch.nn.TransformerEncoderLayer(...,
    batch_first=True)``.

    ``src: (N, T, d_model) -> (N, T, d_model)``. Children, with torch's names
    (so ``state_dict`` keys match torch's): ``self_attn`` (MultiheadAttention),
    ``linear1 (d_model -> dim_feedforward)``, ``dropout``, ``linear2
    (dim_feedforward -> d_model)``, ``norm1``, ``norm2`` (LayerNorm),
    ``dropout1``, ``dropout2`` (Dropout with p=dropout), and ``activation``
    (ReLU or GELU, no parameters). With ``sa(x) = dropout1(self_attn(x))`` and
    ``ff(x) = dropout2(linear2(dropout(act(linear1(x)))))``::

        post-norm (norm_first=False):
            x = norm1(x + sa(x));  x = norm2(x + ff(x))
        pre-norm (norm_first=True):
            x = x + sa(norm1(x));  x = x + ff(norm2(x))

    Backward runs the same steps in reverse; each residual adds the upstream
    gradient to its branch's input gradient. ``bias=False`` removes every
    bias (projections, linears and the norms' shifts), as torch.

    ``src_mask`` (``(T, T)`` or ``(N * nhead, T, T)``, bool True = may not
    attend, or float) and ``src_key_padding_mask (N, T)`` (True = padding)
    go to ``self_attn`` as ``attn_mask`` and ``key_padding_mask``;
    ``is_causal=True`` without ``src_mask`` applies the causal mask. One
    difference from torch in training mode with ``dropout > 0``: torch also
    drops attention weights inside ``self_attn``; nnlib does not (evaluation
    mode, or ``dropout=0``, agree exactly). For that reason ``dropout``
    defaults to 0.0 here, where torch's default is 0.1: pass it explicitly.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.0, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float64):
        super().__init__()
        where = "TransformerEncoderLayer"
        self.d_model = _positive_int(where, "d_model", d_model)
        self.nhead = _positive_int(where, "nhead", nhead)
        self.dim_feedforward = _positive_int(where, "dim_feedforward", dim_feedforward)
        if self.d_model % self.nhead:
            raise ValueError(f"{where}: expected d_model to be divisible by nhead, got "
                             f"d_model={self.d_model} and nhead={self.nhead}")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"{where}: expected activation 'relu' or 'gelu', got "
                             f"{activation!r}")
        if not _flag(where, "batch_first", batch_first):
            raise ValueError(f"{where}: only batch_first=True is supported (src of shape "
                             "(N, T, d_model))")
        if not (isinstance(layer_norm_eps, (int, float)) and layer_norm_eps > 0):
            raise ValueError(f"{where}: expected layer_norm_eps > 0, got {layer_norm_eps!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"{where}: expected a dropout probability in [0, 1), got "
                             f"{dropout!r}")
        self.activation_name = activation
        self.dropout_p = float(dropout)
        self.layer_norm_eps = float(layer_norm_eps)
        self.has_bias = _flag(where, "bias", bias)
        d, f = self.d_model, self.dim_feedforward
        self.self_attn = MultiheadAttention(d, self.nhead, bias=self.has_bias, rng=rng,
                                            dtype=dtype)
        self.linear1 = Linear(d, f, bias=self.has_bias, rng=rng, dtype=dtype)
        self.dropout = Dropout(self.dropout_p, rng=rng)
        self.linear2 = Linear(f, d, bias=self.has_bias, rng=rng, dtype=dtype)
        self.norm_first = _flag(where, "norm_first", norm_first)
        norm = (lambda: LayerNorm(d, self.layer_norm_eps, dtype=dtype)) if self.has_bias \
            else (lambda: _BiaslessLayerNorm(d, self.layer_norm_eps, dtype=dtype))
        self.norm1 = norm()
        self.norm2 = norm()
        self.dropout1 = Dropout(self.dropout_p, rng=rng)
        self.dropout2 = Dropout(self.dropout_p, rng=rng)
        self.activation = ReLU() if activation == "relu" else GELU()

    def _sa(self, x, mask_args):
        return self.dropout1.forward(self.self_attn.forward(x, **mask_args))

    def _sa_backward(self, g):
        return self.self_attn.backward(self.dropout1.backward(g))

    def _ff(self, x):
        h = self.activation.forward(self.linear1.forward(x))
        return self.dropout2.forward(self.linear2.forward(self.dropout.forward(h)))

    def _ff_backward(self, g):
        g = self.dropout.backward(self.linear2.backward(self.dropout2.backward(g)))
        return self.linear1.backward(self.activation.backward(g))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = _sequence(src, "TransformerEncoderLayer.forward", "src", self.d_model, "T")
        mask_args = dict(attn_mask=src_mask, key_padding_mask=src_key_padding_mask,
                         is_causal=is_causal, need_weights=False)
        if self.norm_first:
            x = x + self._sa(self.norm1.forward(x), mask_args)
            x = x + self._ff(self.norm2.forward(x))
        else:
            x = self.norm1.forward(x + self._sa(x, mask_args))
            x = self.norm2.forward(x + self._ff(x))
        self.cache = x.shape
        return x

    def backward(self, grad_out):
        g = self._grad_out(grad_out, self._cached())
        if self.norm_first:         # x1 = src + sa(norm1(src)); y = x1 + ff(norm2(x1))
            g1 = g + self.norm2.backward(self._ff_backward(g))
            return g1 + self.norm1.backward(self._sa_backward(g1))
        h = self.norm2.backward(g)  # x1 = norm1(src + sa(src)); y = norm2(x1 + ff(x1))
        g1 = h + self._ff_backward(h)
        h = self.norm1.backward(g1)
        return h + self._sa_backward(h)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, nhead={self.nhead}, "
                f"dim_feedforward={self.dim_feedforward}, dropout={self.dropout_p}, "
                f"activation={self.activation_name!r}, norm_first={self.norm_first}")


def _mha_twin(m, nn):
    """torch's MultiheadAttention with forward(x) = self-attention output only
    (a subclass, so the parameter names stay torch's)."""
    class MultiheadAttentionTwin(nn.MultiheadAttention):
        def forward(self, x):
            return super().forward(x, x, x, need_weights=False)[0]
    return MultiheadAttentionTwin(m.embed_dim, m.num_heads, bias=m.in_proj_bias is not None,
                                  batch_first=True)


register_twin(MultiheadAttention, _mha_twin)
register_twin(_BiaslessLayerNorm, lambda m, nn: nn.LayerNorm(m.normalized_shape, m.eps,
                                                             bias=False))
register_twin(TransformerEncoderLayer, lambda m, nn: nn.TransformerEncoderLayer(
    m.d_model, m.nhead, m.dim_feedforward, m.dropout_p, m.activation_name,
    m.layer_norm_eps, batch_first=True, norm_first=m.norm_first, bias=m.has_bias))
