"""Scaled dot-product attention as pure functions, and the causal mask.

For queries ``Q: (..., T_q, d)``, keys ``K: (..., T_k, d)`` and values
``V: (..., T_k, d_v)`` (Vaswani et al., 2017)::

    S = Q K^T / sqrt(d)          scores, (..., T_q, T_k)
    A = softmax(S + M)           over the keys (the last axis)
    O = A V                      (..., T_q, d_v)

``M`` is the mask. A **boolean** mask marks with True the pairs (query i,
key j) that may *not* attend -- ``torch.nn.MultiheadAttention``'s bool
``attn_mask`` convention (those scores become -inf, so their weights are
exactly 0). Beware: ``torch.nn.functional.scaled_dot_product_attention``
uses the opposite one (True = may attend); pass it ``~mask``. A **float**
mask is added to the scores (0 keeps a pair, -inf removes it).

Backward, with ``G = dL/dO`` (one matrix per leading index)::

    dV = A^T G                   (T_k, d_v)
    dA = G V^T                   (T_q, T_k)
    dS = A * (dA - rowsum(dA * A))   the softmax's vector-Jacobian product
    dQ = dS K / sqrt(d)          (T_q, d)
    dK = dS^T Q / sqrt(d)        (T_k, d)

A masked pair has A = 0, hence dS = 0: no gradient flows through it.

A query whose keys are *all* masked has no distribution to attend with
(softmax over nothing), and torch answers silently and not even
consistently: ``nn.MultiheadAttention`` returns NaN for that row when it
computes weights (``need_weights=True``), while
``F.scaled_dot_product_attention`` (also MHA's ``need_weights=False`` path)
returns a zero row. Here the forward raises a ``ValueError`` naming the row.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["scaled_dot_product_attention_forward", "scaled_dot_product_attention_backward",
           "causal_mask", "sinusoidal_positions", "AttentionCache"]


class AttentionCache(NamedTuple):
    """What ``scaled_dot_product_attention_backward`` needs: ``q: (..., T_q, d)``,
    ``k: (..., T_k, d)``, ``v: (..., T_k, d_v)``, the attention ``weights``
    ``A: (..., T_q, T_k)`` (rows summing to 1, exactly 0 where masked) and
    ``scale = 1 / sqrt(d)``."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray
    scale: float


def causal_mask(T: int, T_k: int | None = None) -> np.ndarray:
    """The mask that lets query i attend only to keys j <= i: True (may not
    attend) strictly above the diagonal. ``(T, T)`` bool, or ``(T, T_k)`` with
    the diagonal starting at the top left, as torch's ``is_causal``."""
    T_k = T if T_k is None else T_k
    for name, n in (("T", T), ("T_k", T_k)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"causal_mask: expected {name} to be a positive integer, "
                             f"got {n!r}")
    return np.triu(np.ones((int(T), int(T_k)), dtype=bool), k=1)


def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> np.ndarray:
    """The sinusoidal position encodings of Vaswani et al. (2017), ``(T, d)``:
    for position t and i = 0 ... d/2 - 1, with the frequency
    ``w_i = base ** (-2 i / d)``::

        P[t, 2 i] = sin(w_i t),   P[t, 2 i + 1] = cos(w_i t)

    Each pair of columns turns at its own frequency, so ``P[t + k]`` is
    ``P[t]`` rotated pair by pair through the angles ``w_i k``, the same
    linear map for every t. ``d`` must be even."""
    for name, n in (("T", T), ("d", d)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"sinusoidal_positions: expected {name} to be a positive "
                             f"integer, got {n!r}")
    if d % 2:
        raise ValueError(f"sinusoidal_positions: expected an even d (sine and cosine "
                         f"pairs), got d={d}")
    if not (isinstance(base, (int, float)) and not isinstance(base, bool) and base > 1):
        raise ValueError(f"sinusoidal_positions: expected base > 1, got {base!r}")
    w = float(base) ** (-np.arange(0, d, 2) / d)
    angle = np.arange(T)[:, None] * w[None, :]
    P = np.empty((int(T), int(d)))
    P[:, 0::2], P[:, 1::2] = np.sin(angle), np.cos(angle)
    return P


def _masked_scores(s, mask):
    if mask is None:
        return s
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return np.where(mask, -np.inf, s)
    if np.issubdtype(mask.dtype, np.floating):
        return s + mask
    raise TypeError(f"scaled_dot_product_attention_forward: expected a bool mask (True = "
                    f"may not attend) or a float additive mask, got dtype {mask.dtype}")


def scaled_dot_product_attention_forward(q, k, v, mask=None):
    """``O = softmax(q k^T / sqrt(d) + mask) v`` over the keys.

    ``q: (..., T_q, d)``, ``k: (..., T_k, d)``, ``v: (..., T_k, d_v)`` with the
    same leading dimensions; ``mask``: None, bool (True = may NOT attend) or
    float (added to the scores), broadcastable to ``(..., T_q, T_k)``.
    Returns ``(out, cache)``: ``out: (..., T_q, d_v)`` and an ``AttentionCache``
    whose ``weights: (..., T_q, T_k)`` are the attention probabilities.

    Raises ``ValueError`` when some query has every key masked (torch gives
    NaN or zeros for that row; see the module's docs)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = _masked_scores((q @ np.swapaxes(k, -1, -2)) * scale, mask)
    row_max = s.max(axis=-1, keepdims=True)
    dead = np.isneginf(row_max[..., 0])
    if dead.any():
        first = tuple(int(i) for i in np.argwhere(dead)[0])
        raise ValueError(
            f"scaled_dot_product_attention_forward: every key is masked for query row "
            f"{first} (indices into the leading dimensions, then the query position) -- "
            f"{int(dead.sum())} such row(s); softmax over no keys is undefined (torch "
            "returns NaN or zeros there). Leave at least one key unmasked for every query")
    e = np.exp(s - row_max)
    a = e / e.sum(axis=-1, keepdims=True)
    return a @ v, AttentionCache(q, k, v, a, scale)


def scaled_dot_product_attention_backward(dout, cache):
    """``dout: (..., T_q, d_v)`` -> ``(dq, dk, dv)`` of the shapes of q, k, v:
    dV = A^T dO, dA = dO V^T, dS = A * (dA - rowsum(dA * A)),
    dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d). No gradient for the mask."""
    q, k, v, a, scale = cache
    dv = np.swapaxes(a, -1, -2) @ dout
    da = dout @ np.swapaxes(v, -1, -2)
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
    dq = (ds @ k) * scale
    dk = (np.swapaxes(ds, -1, -2) @ q) * scale
    return dq, dk, dv
