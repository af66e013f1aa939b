"""Encoder–decoder (sequence-to-sequence) models, trained with teacher forcing
and decoded greedily or by beam search (chapters 5b and 5c).

The model (``Seq2Seq``) reads a source sequence ``src: (N, S)`` of token ids
with an ``Embedding`` and a ``GRU`` (the *encoder*, started at zero; with
``bidirectional=True`` one GRU in each direction) and writes the target one
token at a time with a ``GRUCell`` (the *decoder*), whose state starts at the
encoder's last state ``h_S`` (bidirectional: both directions' final states)::

    s_0 = h_S
    s_t = GRUCell(x_t, s_{t-1}),      logits_t = s_t W_out^T + b_out

where ``x_t`` is the embedding of the previous target token. In training
the previous token is the *true* one (teacher forcing): the decoder reads
``shift_right(tgt, bos)``, i.e. ``<bos>`` followed by ``tgt[:, :-1]``, and
predicts ``tgt``. With ``attention=True`` the decoder also reads a context
vector, an average of all encoder states weighted anew at every step by
additive (Bahdanau) attention queried with the previous decoder state::

    e_tj = v^T tanh(W_s s_{t-1} + W_h h_j),   alpha_t = softmax_j(e_t)
    c_t = sum_j alpha_tj h_j,                x_t = [embedding ; c_t]

Every module has an explicit ``backward``; the whole model matches the same
model written in PyTorch in float64 (``tests/test_seq2seq_model.py``).

Decoding: ``greedy`` takes the most probable token at every step;
``beam_search`` keeps the ``beam`` most probable partial sequences. Both
stop a sequence at ``<eos>`` (included in the returned sequence) or after
``max_len`` tokens, and return a ``Decoded(sequences, log_probs)``. All
sequences of one batch share one source length (bucket by length to train
on several).

Scoring outputs that have many right forms: ``corpus_bleu`` (BLEU, Papineni
et al., 2002) against one or more references per output.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from . import init
from .functional import gru_step_backward, gru_step_forward, log_softmax, softmax
from .layers import GRU, Embedding, Linear
from .layers.recurrent import Bidirectional
from .module import Module, Parameter, no_grad
from ._checks import positive_int as _positive_int

__all__ = ["GRUCell", "AdditiveAttention", "Seq2Seq", "Decoded", "shift_right",
           "sequence_log_prob", "greedy", "beam_search", "pad_sequences",
           "first_error", "corpus_bleu"]


def _token_array(x, where, name, vocab, ndim=2):
    """Integer ids of shape (N, L) with values in [0, vocab), or an error."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected {name} to be an integer NumPy array of "
                        f"token ids, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{where}: expected integer token ids in {name}, got dtype "
                        f"{x.dtype}; convert with {name}.astype(np.int64)")
    if x.ndim != ndim or 0 in x.shape:
        want = "(N, L)" if ndim == 2 else "(L,)"
        raise ValueError(f"{where}: expected {name} of shape {want} with N, L >= 1, "
                         f"got shape {x.shape}")
    if x.min() < 0 or x.max() >= vocab:
        bad = x[(x < 0) | (x >= vocab)].flat[0]
        raise ValueError(f"{where}: expected ids in {name} in [0, {vocab}), got {int(bad)}")
    return x


# --- the two new building blocks ---------------------------------------------
class GRUCell(Module):
    """One GRU step, as ``torch.nn.GRUCell``: ``x: (N, D)``, ``h: (N, H)`` ->
    ``h': (N, H)``, with the gates and layouts of ``nnlib.GRU``
    (``weight_ih: (3H, D)``, ``weight_hh: (3H, H)``, biases ``(3H,)``, gates
    r, z, n). A decoder calls it once per output step; the backward calls come
    in the reverse order and each returns ``(dx, dh)``, ``(N, D)`` and ``(N, H)``.
    """

    max_cache_depth = 100_000          # one cache per step of a long sequence

    def __init__(self, input_size: int, hidden_size: int, rng=None, dtype=np.float64):
        super().__init__()
        self.input_size = _positive_int("GRUCell", "input_size", input_size)
        self.hidden_size = _positive_int("GRUCell", "hidden_size", hidden_size)
        g, h = 3 * self.hidden_size, self.hidden_size
        self.weight_ih = Parameter(np.empty((g, self.input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((g, h), dtype=dtype))
        self.bias_ih = Parameter(np.empty(g, dtype=dtype))
        self.bias_hh = Parameter(np.empty(g, dtype=dtype))
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "GRUCell":
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every weight and
        bias, as PyTorch, in the order weight_ih, weight_hh, bias_ih, bias_hh."""
        init.fill_uniform(self.parameters(), 1.0 / math.sqrt(self.hidden_size), rng)
        return self

    def forward(self, x, h):
        """``x: (N, D)``, ``h: (N, H)`` -> the next state ``(N, H)``."""
        h_new, cache = gru_step_forward(x, h, self.weight_ih.data, self.weight_hh.data,
                                        self.bias_ih.data, self.bias_hh.data)
        self.cache = cache
        return h_new

    def backward(self, grad_out):
        """``grad_out: (N, H)`` (dL/dh') -> ``(dx, dh)``: ``(N, D)``, ``(N, H)``."""
        cache = self._cached()
        g = self._grad_out(grad_out, cache[1].shape)
        dx, dh, dw_ih, dw_hh, db_ih, db_hh = gru_step_backward(g, cache)
        for p, d in zip(self.parameters(), (dw_ih, dw_hh, db_ih, db_hh)):
            p.accumulate(d)
        return dx, dh

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class AdditiveAttention(Module):
    """Additive (Bahdanau) attention of one query over a set of keys, which
    are also the values::

        e_j = v^T tanh(W_s s + W_h h_j)
        alpha = softmax(e)
        c = sum_j alpha_j h_j

    ``query s: (N, Q)``, ``keys h: (N, S, K)`` -> ``context c: (N, K)``.
    ``query_weight`` is ``W_s: (A, Q)``, ``key_weight`` is ``W_h: (A, K)``,
    ``v: (A,)`` (no biases, as in the formula); all start as
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). After ``forward``, ``weights`` holds
    alpha, ``(N, S)``. ``backward(dc)`` returns ``(ds, dh)``, ``(N, Q)`` and
    ``(N, S, K)``.
    """

    max_cache_depth = 100_000

    def __init__(self, query_size: int, key_size: int, attention_dim: int, rng=None,
                 dtype=np.float64):
        super().__init__()
        where = "AdditiveAttention"
        self.query_size = _positive_int(where, "query_size", query_size)
        self.key_size = _positive_int(where, "key_size", key_size)
        self.attention_dim = _positive_int(where, "attention_dim", attention_dim)
        a = self.attention_dim
        self.query_weight = Parameter(np.empty((a, self.query_size), dtype=dtype))
        self.key_weight = Parameter(np.empty((a, self.key_size), dtype=dtype))
        self.v = Parameter(np.empty(a, dtype=dtype))
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> "AdditiveAttention":
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W_s, W_h and v, in that order."""
        for p, fan in ((self.query_weight, self.query_size),
                       (self.key_weight, self.key_size), (self.v, self.attention_dim)):
            init.fill_uniform((p,), 1.0 / math.sqrt(fan), rng)
        return self

    def forward(self, query, keys):
        """``query: (N, Q)``, ``keys: (N, S, K)`` -> ``context: (N, K)``."""
        where = "AdditiveAttention.forward"
        if query.ndim != 2 or keys.ndim != 3 or query.shape[0] != keys.shape[0] \
                or query.shape[1] != self.query_size or keys.shape[2] != self.key_size:
            raise ValueError(f"{where}: expected query (N, {self.query_size}) and keys "
                             f"(N, S, {self.key_size}), got {query.shape} and {keys.shape}")
        n, s_len, k = keys.shape
        pre = (keys.reshape(-1, k) @ self.key_weight.data.T).reshape(n, s_len, -1)
        pre += (query @ self.query_weight.data.T)[:, None]
        e = np.tanh(pre)                                   # (N, S, A)
        alpha = softmax(e @ self.v.data, axis=1)           # (N, S)
        context = np.matmul(alpha[:, None, :], keys)[:, 0]
        self.weights = alpha
        self.cache = (query, keys, e, alpha)
        return context

    def backward(self, grad_out):
        """``grad_out: (N, K)`` (dL/dc) -> ``(dquery, dkeys)``."""
        query, keys, e, alpha = self._cached()
        g = self._grad_out(grad_out, (keys.shape[0], keys.shape[2]))
        d_alpha = np.matmul(keys, g[:, :, None])[:, :, 0]
        d_keys = alpha[:, :, None] * g[:, None, :]           # through the average
        d_score = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))
        a = self.attention_dim
        self.v.accumulate(d_score.reshape(-1) @ e.reshape(-1, a))
        d_pre = d_score[:, :, None] * self.v.data * (1.0 - e ** 2)   # (N, S, A)
        d_q = d_pre.sum(axis=1)                                      # (N, A)
        self.query_weight.accumulate(d_q.T @ query)
        self.key_weight.accumulate(d_pre.reshape(-1, a).T @ keys.reshape(-1, keys.shape[2]))
        d_keys += d_pre @ self.key_weight.data
        return d_q @ self.query_weight.data, d_keys

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}, " \
               f"attention_dim={self.attention_dim}"


# --- the model -----------------------------------------------------------------
def shift_right(tgt, bos: int):
    """Teacher forcing's decoder input: ``<bos>`` then ``tgt`` without its last
    token. ``tgt: (N, T)`` integer ids -> ``(N, T)``."""
    if not isinstance(tgt, np.ndarray) or tgt.ndim != 2 or \
            not np.issubdtype(tgt.dtype, np.integer):
        raise ValueError(f"shift_right: expected tgt as an integer array of shape "
                         f"(N, T), got {getattr(tgt, 'shape', type(tgt).__name__)}")
    out = np.empty_like(tgt)
    out[:, 0] = bos
    out[:, 1:] = tgt[:, :-1]
    return out


class Seq2Seq(Module):
    """An encoder–decoder of two GRUs, optionally with additive attention.

    ``forward(src, tgt_in)``: ``src: (N, S)`` source ids in [0, src_vocab),
    ``tgt_in: (N, T)`` the decoder's input ids in [0, tgt_vocab) (in training,
    ``shift_right(tgt, bos)``) -> ``logits: (N, T, tgt_vocab)``; logits[:, t]
    scores the token that follows ``tgt_in[:, :t + 1]``.
    ``backward(grad_logits)`` accumulates every parameter's gradient and
    returns None (the inputs are integers). After ``forward``, with attention,
    ``attention_weights`` is ``(N, T, S)``: row t is alpha of output step t.

    Children (PyTorch-like names): ``src_embed`` (Embedding(src_vocab, E)),
    ``encoder`` (GRU(E, H); with ``bidirectional=True`` a
    ``Bidirectional`` of two GRU(E, H/2), whose states are [forward ;
    backward] and whose first decoder state is [h_S forward ; h_1 backward]),
    ``tgt_embed`` (Embedding(tgt_vocab, E)), ``attention``
    (AdditiveAttention(H, H, A), only with attention; A = H unless
    ``attention_dim`` is given), ``decoder`` (GRUCell(E, H), or
    GRUCell(E + H, H) with attention) and ``out`` (Linear(H, tgt_vocab)).
    ``bos`` and ``eos`` are target ids; ``bos`` is read by the decoder but is
    never a training target.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_dim: int, hidden_size: int,
                 bos: int, eos: int, attention: bool = False,
                 attention_dim: int | None = None, bidirectional: bool = False,
                 rng=None, dtype=np.float64):
        super().__init__()
        where = "Seq2Seq"
        self.src_vocab = _positive_int(where, "src_vocab", src_vocab)
        self.tgt_vocab = _positive_int(where, "tgt_vocab", tgt_vocab)
        self.embed_dim = _positive_int(where, "embed_dim", embed_dim)
        self.hidden_size = _positive_int(where, "hidden_size", hidden_size)
        for name, v in (("bos", bos), ("eos", eos)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) \
                    or not 0 <= v < self.tgt_vocab:
                raise ValueError(f"{where}: expected {name} to be a target id in "
                                 f"[0, {self.tgt_vocab}), got {v!r}")
        if bos == eos:
            raise ValueError(f"{where}: expected different ids for bos and eos, got "
                             f"{bos} for both")
        self.bos, self.eos = int(bos), int(eos)
        self.use_attention = bool(attention)
        if attention_dim is not None and not self.use_attention:
            raise ValueError(f"{where}: attention_dim={attention_dim!r} given but "
                             "attention=False")
        e, h = self.embed_dim, self.hidden_size
        self.bidirectional = bool(bidirectional)
        if self.bidirectional and h % 2:
            raise ValueError(f"{where}: expected an even hidden_size with "
                             f"bidirectional=True (H/2 per direction), got {h}")
        self.src_embed = Embedding(self.src_vocab, e, rng=rng, dtype=dtype)
        if self.bidirectional:
            self.encoder = Bidirectional(GRU(e, h // 2, rng=rng, dtype=dtype),
                                         GRU(e, h // 2, rng=rng, dtype=dtype))
        else:
            self.encoder = GRU(e, h, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(self.tgt_vocab, e, rng=rng, dtype=dtype)
        if self.use_attention:
            a = h if attention_dim is None else attention_dim
            self.attention = AdditiveAttention(h, h, a, rng=rng, dtype=dtype)
        self.decoder = GRUCell(e + (h if self.use_attention else 0), h, rng=rng,
                               dtype=dtype)
        self.out = Linear(h, self.tgt_vocab, rng=rng, dtype=dtype)

    # -- pieces shared by training and decoding
    def encode(self, src):
        """``src: (N, S)`` -> every encoder state ``(N, S, H)``."""
        src = _token_array(src, "Seq2Seq.encode", "src", self.src_vocab)
        return self.encoder(self.src_embed(src))

    def initial_state(self, enc):
        """The decoder's first state from the encoder states ``enc: (N, S, H)``
        -> ``(N, H)``: the last state h_S; bidirectional, the final state of each
        direction, [h_S (forward half) ; h_1 (backward half)]."""
        if not self.bidirectional:
            return enc[:, -1]
        half = self.hidden_size // 2
        return np.concatenate([enc[:, -1, :half], enc[:, 0, half:]], axis=1)

    def _step(self, emb, s, enc):
        """One decoder step: ``emb: (M, E)``, ``s: (M, H)``, ``enc: (M, S, H)``
        -> (new state ``(M, H)``, attention weights ``(M, S)`` or None)."""
        if self.use_attention:
            ctx = self.attention(s, enc)
            return self.decoder(np.concatenate([emb, ctx], axis=1), s), \
                self.attention.weights
        return self.decoder(emb, s), None

    def forward(self, src, tgt_in):
        where = "Seq2Seq.forward"
        src = _token_array(src, where, "src", self.src_vocab)
        tgt_in = _token_array(tgt_in, where, "tgt_in", self.tgt_vocab)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"{where}: expected src and tgt_in with the same batch size "
                             f"N, got {src.shape[0]} and {tgt_in.shape[0]}")
        enc = self.encode(src)
        emb = self.tgt_embed(tgt_in)
        s, states, weights = self.initial_state(enc), [], []
        for t in range(tgt_in.shape[1]):
            s, w = self._step(emb[:, t], s, enc)
            states.append(s)
            weights.append(w)
        if self.use_attention:
            self.attention_weights = np.stack(weights, axis=1)
        self.cache = (src.shape, tgt_in.shape)
        return self.out(np.stack(states, axis=1))

    def backward(self, grad_out):
        (n, s_len), (_, t_len) = self._cached()
        g = self._grad_out(grad_out, (n, t_len, self.tgt_vocab))
        d_states = self.out.backward(g)                       # (N, T, H)
        e, h = self.embed_dim, self.hidden_size
        d_emb = np.zeros((n, t_len, e), dtype=d_states.dtype)
        d_enc = np.zeros((n, s_len, h), dtype=d_states.dtype)
        d_s = np.zeros((n, h), dtype=d_states.dtype)          # dL/ds_t from step t + 1
        for t in reversed(range(t_len)):
            dx, d_s = self.decoder.backward(d_states[:, t] + d_s)
            d_emb[:, t] = dx[:, :e]
            if self.use_attention:                             # its query was s_{t-1}
                d_query, d_keys = self.attention.backward(dx[:, e:])
                d_s = d_s + d_query
                d_enc += d_keys
        self.tgt_embed.backward(d_emb)
        if self.bidirectional:                                # s_0 = [h_S ; h_1]
            half = self.hidden_size // 2
            d_enc[:, -1, :half] += d_s[:, :half]
            d_enc[:, 0, half:] += d_s[:, half:]
        else:
            d_enc[:, -1] += d_s                               # s_0 = h_S
        self.src_embed.backward(self.encoder.backward(d_enc))
        return None

    def extra_repr(self) -> str:
        return (f"src_vocab={self.src_vocab}, tgt_vocab={self.tgt_vocab}, "
                f"attention={self.use_attention}, bos={self.bos}, eos={self.eos}")


# --- scoring and decoding --------------------------------------------------------
class Decoded(NamedTuple):
    """What ``greedy`` and ``beam_search`` return: ``sequences``, a list of N
    integer arrays ``(L_i,)`` (ending with ``eos`` unless cut at ``max_len``),
    and ``log_probs: (N,)``, each sequence's log-probability under the model,
    sum_t ln p(y_t | y_<t, src), over the tokens returned (eos included)."""
    sequences: list
    log_probs: np.ndarray


def _check_model(model, where):
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"{where}: expected an nnlib.seq2seq.Seq2Seq model, got "
                        f"{type(model).__name__}")


def sequence_log_prob(model: Seq2Seq, src, tgt) -> np.ndarray:
    """ln p(tgt | src) by teacher forcing: ``src: (N, S)``, ``tgt: (N, T)``
    target ids (the full sequence, eos included if it ends there) -> ``(N,)``.
    Runs under ``no_grad``."""
    _check_model(model, "sequence_log_prob")
    tgt = _token_array(tgt, "sequence_log_prob", "tgt", model.tgt_vocab)
    with no_grad():
        logp = log_softmax(model(src, shift_right(tgt, model.bos)), axis=2)
    return np.take_along_axis(logp, tgt[:, :, None], axis=2)[:, :, 0].sum(axis=1)


def _check_decode_args(model, src, max_len, where):
    _check_model(model, where)
    src = _token_array(src, where, "src", model.src_vocab)
    return src, _positive_int(where, "max_len", max_len)


def greedy(model: Seq2Seq, src, max_len: int) -> Decoded:
    """Greedy decoding: at each step the most probable next token (ties: the
    lowest id), until ``eos`` or ``max_len`` tokens. ``src: (N, S)`` ->
    ``Decoded`` with N sequences ``(L_i,)`` and ``log_probs: (N,)``."""
    src, max_len = _check_decode_args(model, src, max_len, "greedy")
    n = src.shape[0]
    with no_grad():
        enc = model.encode(src)
        s, prev = model.initial_state(enc), np.full(n, model.bos)
        tokens = np.zeros((n, max_len), dtype=np.int64)
        total, done = np.zeros(n), np.zeros(n, dtype=bool)
        lengths = np.full(n, max_len)
        for t in range(max_len):
            s, _ = model._step(model.tgt_embed(prev), s, enc)
            logp = log_softmax(model.out(s), axis=1)
            prev = logp.argmax(axis=1)
            total += np.where(done, 0.0, logp[np.arange(n), prev])
            tokens[:, t] = prev
            ended = ~done & (prev == model.eos)
            lengths[ended] = t + 1
            done |= ended
            if done.all():
                break
    return Decoded([tokens[i, :lengths[i]].copy() for i in range(n)], total)


def beam_search(model: Seq2Seq, src, beam: int, max_len: int,
                length_penalty: float = 0.0) -> Decoded:
    """Beam search. ``src: (N, S)`` -> ``Decoded`` with N sequences ``(L_i,)``
    and their ``log_probs: (N,)`` (the plain sum of log-probabilities, whatever
    the penalty).

    For each source, the ``beam`` highest-scoring partial sequences are kept:
    at every step each is extended by every token, and of all extensions the
    ``beam`` best are kept; those that end with ``eos`` leave the beam as
    finished hypotheses (so the beam narrows as they finish), the others go
    on. It stops when no partial sequence is left or after ``max_len`` tokens
    (partial sequences then count as finished, cut), and returns the finished
    hypothesis with the best score. ``beam=1`` is greedy decoding.

    Score: with ``length_penalty = 0`` (default) the log-probability itself,
    and the search also stops early, exactly, once the best finished score is
    at least the best partial one (extensions only lower a log-probability).
    With ``length_penalty = a > 0`` the score is log-probability / L^a for a
    sequence of L tokens (eos counted), which favours longer sequences than
    the plain sum does; then there is no early stop. With a beam of at least
    V^max_len (V = tgt_vocab) nothing is ever pruned, and the result is the
    most probable sequence of at most max_len tokens.
    """
    where = "beam_search"
    src, max_len = _check_decode_args(model, src, max_len, where)
    beam = _positive_int(where, "beam", beam)
    if not isinstance(length_penalty, (int, float)) or isinstance(length_penalty, bool) \
            or not (np.isfinite(length_penalty) and length_penalty >= 0):
        raise ValueError(f"{where}: expected length_penalty to be a number >= 0, got "
                         f"{length_penalty!r}")
    n, v = src.shape[0], model.tgt_vocab

    def score(logp, length):
        return logp / length ** length_penalty if length_penalty else logp

    with no_grad():
        enc_all = model.encode(src)
        owner = np.arange(n)                          # the source of each hypothesis
        seqs = np.zeros((n, 0), dtype=np.int64)
        logps = np.zeros(n)
        s = model.initial_state(enc_all)
        prev = np.full(n, model.bos)
        finished = [[] for _ in range(n)]             # (score, logp, sequence)
        for t in range(max_len):
            enc = enc_all[owner] if model.use_attention else enc_all
            s, _ = model._step(model.tgt_embed(prev), s, enc)
            cand = logps[:, None] + log_softmax(model.out(s), axis=1)    # (M, V)
            keep_rows, keep_tok = [], []
            for i in range(n):
                rows = np.flatnonzero(owner == i)
                if rows.size == 0:
                    continue
                flat = cand[rows].ravel()
                k = min(beam, flat.size)
                # the k best, highest first; ties broken by position (stable)
                top = np.argsort(-flat, kind="stable")[:k]
                r, tok = rows[top // v], top % v
                eos = tok == model.eos
                for rr, lp in zip(r[eos], flat[top][eos]):
                    seq = np.append(seqs[rr], model.eos)
                    finished[i].append((score(lp, t + 1), lp, seq))
                keep_rows.append(r[~eos])
                keep_tok.append(tok[~eos])
            rows = np.concatenate(keep_rows) if keep_rows else np.zeros(0, int)
            toks = np.concatenate(keep_tok) if keep_tok else np.zeros(0, int)
            logps = cand[rows, toks]
            seqs = np.concatenate([seqs[rows], toks[:, None]], axis=1)
            owner, s, prev = owner[rows], s[rows], toks
            if not length_penalty:                    # exact early stop, per source
                alive = np.ones(len(rows), dtype=bool)
                for i in range(n):
                    mine = owner == i
                    if finished[i] and mine.any() and \
                            max(f[0] for f in finished[i]) >= logps[mine].max():
                        alive &= ~mine
                owner, s, prev = owner[alive], s[alive], prev[alive]
                logps, seqs = logps[alive], seqs[alive]
            if owner.size == 0:
                break
        for j in range(owner.size):                   # cut at max_len
            finished[owner[j]].append((score(logps[j], seqs.shape[1]), logps[j], seqs[j]))
    out_seqs, out_logp = [], np.zeros(n)
    for i in range(n):
        best = max(range(len(finished[i])), key=lambda j: finished[i][j][0])
        out_seqs.append(np.asarray(finished[i][best][2], dtype=np.int64))
        out_logp[i] = finished[i][best][1]
    return Decoded(out_seqs, out_logp)


# --- comparing decoded outputs with targets ------------------------------------------
def pad_sequences(sequences, length: int, fill: int = -1) -> np.ndarray:
    """Decoded sequences of different lengths as one array: ``sequences``, a
    list of N integer arrays ``(L_i,)`` (``Decoded.sequences``) -> ``(N, length)``,
    each cut after ``length`` tokens or padded with ``fill``. The default -1 is
    no token id, so a padded position never matches a target."""
    length = _positive_int("pad_sequences", "length", length)
    out = np.full((len(sequences), length), fill, dtype=np.int64)
    for i, s in enumerate(sequences):
        s = np.asarray(s)[:length]
        out[i, :len(s)] = s
    return out


def first_error(pred, tgt) -> np.ndarray:
    """Per row, the first position where ``pred`` differs from ``tgt``, both
    ``(N, T)`` -> ``(N,)`` integers; ``T`` for a row without a difference."""
    pred, tgt = np.asarray(pred), np.asarray(tgt)
    if pred.ndim != 2 or pred.shape != tgt.shape:
        raise ValueError(f"first_error: expected pred and tgt of one shape (N, T), "
                         f"got {pred.shape} and {tgt.shape}")
    wrong = pred != tgt
    return np.where(wrong.any(axis=1), wrong.argmax(axis=1), tgt.shape[1])


def _ngrams(seq, n):
    """Counter of the n-grams (tuples of n consecutive tokens) of ``seq``."""
    return Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))


def corpus_bleu(outputs, references, max_n: int = 4) -> float:
    """Corpus-level BLEU (Papineni et al., 2002), without smoothing.

    ``outputs``: a list of N token sequences (lists or 1-D arrays of any
    hashable tokens: ids or words); ``references``: a list of N lists, the
    one or more reference sequences of each output. -> a float in [0, 1]::

        BLEU = BP * exp(mean over n = 1..max_n of ln p_n)
        p_n  = sum over outputs of the clipped n-gram matches
               / sum over outputs of their n-grams
        BP   = min(1, exp(1 - len_ref / len_out))

    Clipping: an n-gram of an output is credited at most as many times as
    it occurs in the one reference of that output that has it most often
    (the largest of its counts over the references, not their sum).
    ``len_out`` is the outputs' total length; ``len_ref``, the *effective
    reference length*,
    adds up, for each output, the length of its reference closest in length
    to it (the shorter of two equally close). The counts are pooled over the
    corpus before the ratios are taken; the score is 0 when some ``p_n`` is
    0 (no n-gram of that order matches anywhere), as in Papineni et al.
    """
    max_n = _positive_int("corpus_bleu", "max_n", max_n)
    outputs, references = list(outputs), list(references)
    if len(outputs) != len(references):
        raise ValueError(f"corpus_bleu: expected one list of references per "
                         f"output, got {len(outputs)} outputs and "
                         f"{len(references)} lists of references")
    match, total = np.zeros(max_n), np.zeros(max_n)
    len_out = len_ref = 0
    for i, (out, refs) in enumerate(zip(outputs, references)):
        if isinstance(refs, np.ndarray) or not isinstance(refs, (list, tuple)) \
                or len(refs) == 0:
            raise ValueError(f"corpus_bleu: expected references[{i}] to be a "
                             f"non-empty list of reference sequences, got "
                             f"{refs!r}")
        if any(np.ndim(ref) != 1 for ref in refs) or np.ndim(out) != 1:
            raise ValueError(f"corpus_bleu: expected outputs[{i}] to be a "
                             f"sequence of tokens and references[{i}] a list "
                             f"of them, got {out!r} and {refs!r}")
        out, refs = list(out), [list(ref) for ref in refs]
        len_out += len(out)
        len_ref += min((abs(len(ref) - len(out)), len(ref)) for ref in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(out, n)
            most = Counter()                    # max count over references
            for ref in refs:
                most |= _ngrams(ref, n)
            match[n - 1] += sum(min(k, most[g]) for g, k in counts.items())
            total[n - 1] += max(len(out) - n + 1, 0)
    if len_out == 0 or np.any(match == 0):
        return 0.0
    bp = min(1.0, math.exp(1 - len_ref / len_out))
    return float(bp * math.exp(np.mean(np.log(match / total))))
