"""The exercises of section 5b: the perplexity of a padded batch, and one
step of beam search (the step ``nnlib.seq2seq.beam_search`` takes), checked
against nnlib's own.

=======================  ====================  ==============================
exercise                 chapter               returns
=======================  ====================  ==============================
``padded_perplexity``    05b-sequence-models   ``perplexity`` (a number)
``beam_search_step``     05b-sequence-models   ``(rows, tokens, new_scores)``
=======================  ====================  ==============================
"""
from __future__ import annotations

import numpy as np

from ._core import Case, Diagnoser, register

__all__ = ["padded_perplexity", "beam_search_step"]


def _ppl_cases(rng):
    # (N, T, V, lengths or None for random ones), logit scale, offset, note
    settings = [((3, 6, 5, (6, 2, 4)), 2.0, 0.0, ""),
                ((1, 4, 7, (4,)), 2.0, 0.0, "batch of 1"),
                ((4, 5, 3, (5, 5, 5, 5)), 2.0, 0.0, "no padding"),
                ((3, 7, 9, (1, 7, 3)), 2.0, 0.0, "a sequence of length 1"),
                ((5, 3, 11, None), 2.0, 0.0, "odd sizes"),
                ((2, 6, 4, (3, 6)), 2.0, 1000.0,
                 "large logits (about 1000 and 2000 at alternate positions)"),
                ((2, 8, 6, (8, 5)), 0.0, 0.0, "a uniform model (every logit 0)")]
    out = []
    for (n, t, v, lengths), scale, offset, note in settings:
        lengths = (rng.integers(1, t + 1, size=n) if lengths is None
                   else np.array(lengths))
        logits = rng.standard_normal((n, t, v)) * scale
        if offset:      # 1000 or 2000 by turns: one maximum per batch or sequence fails
            turns = (np.arange(n)[:, None] + np.arange(t)[None, :]) % 2
            logits = logits + offset * (1.0 + turns[..., None])
        targets = rng.integers(0, v, size=(n, t))
        targets[0, 0] = 0                                # a real token with the padding's id
        pad = np.arange(t)[None, :] >= lengths[:, None]
        targets[pad] = 0                                 # the padding id
        if scale:                                        # arbitrary scores there
            logits[pad] = rng.standard_normal((int(pad.sum()), v)) * 5.0 + offset
        out.append(Case((logits, targets, lengths), note))
    return out


def _ppl_variant(pad="skip", average="tokens", logp="log-softmax", base="e",
                 sign=-1.0, take_exp=True, axis=-1, shift=False):
    """The perplexity of a padded batch with a known mistake: padding
    counted (``pad="count"``), per-sequence averages (``average``:
    "tokens", the right one; "sequences": the mean of the sequences' mean
    losses; "perplexities": the mean of the sequences' perplexities), the
    logits taken as log-probabilities (``logp="logits"``) or a softmax
    without its maximum subtracted ("unstable"), 2 ** loss (``base``), the
    loss's sign flipped, or no exp at all (``take_exp``). ``pad`` also
    names wrong masks: "targets" (``targets != 0``), "one more" (``t <=
    length``), "one less" (``t < length - 1``); ``average="all"`` sums the
    real positions' losses and divides by all N T positions; ``axis``, the
    axis of the softmax; ``shift``, the targets shifted by one as for a
    language model's windows (scores at t against ``targets[:, t + 1]``)."""
    def variant(logits, targets, lengths):
        n, t, v = logits.shape
        if logp == "logits":
            if float(np.max(logits)) > 700:    # exp(-logit) is 0: other mistakes give 0 too
                raise ValueError("this mistake cannot be told apart here")
            lp = logits
        elif logp == "unstable":
            e = np.exp(logits)
            lp = np.log(e / e.sum(axis=-1, keepdims=True))
        else:
            z = logits - logits.max(axis=axis, keepdims=True)
            lp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        if shift:
            if t < 2:
                raise ValueError("nothing to shift")
            lp, targets, t = lp[:, :-1], targets[:, 1:], t - 1
            lengths = lengths - 1
        nll = sign * np.take_along_axis(lp, targets[..., None], axis=-1)[..., 0]
        pos, ends = np.arange(t)[None, :], lengths[:, None]
        keep = {"count": np.ones((n, t), bool), "targets": targets != 0,
                "one more": pos <= ends, "one less": pos < ends - 1,
                "skip": pos < ends}[pad]
        if not keep.any():
            raise ValueError("no position left")
        exp = ((lambda x: 2.0 ** x) if base == "2" else np.exp) if take_exp else (
            lambda x: x)
        if average == "tokens":
            return float(exp(nll[keep].sum() / keep.sum()))
        if average == "all":
            return float(exp(nll[keep].sum() / (n * t)))
        per = np.where(keep, nll, 0.0).sum(axis=1) / keep.sum(axis=1)
        if average == "sequences":
            return float(exp(per.mean()))
        return float(np.mean(exp(per)))
    return variant


def _not_a_perplexity(args, got, expected):
    """On large logits the learner's perplexity is NaN, infinite or below
    1 (0 when an infinite loss went into exp): none can be a perplexity."""
    g = got[0]
    return (g is not None and np.ndim(g) == 0 and float(np.max(args[0])) > 700
            and (not np.isfinite(g) or float(g) < 1.0))


@register("padded_perplexity", chapter="05b-sequence-models",
          args=("logits", "targets", "lengths"), outputs=("perplexity",),
          scalar_outputs=("perplexity",), cases=_ppl_cases,
          diagnosers=[
              Diagnoser("the padding is counted: average the loss over the "
                        "real tokens only, position t of sequence n when t < "
                        "lengths[n]", variant=_ppl_variant(pad="count")),
              Diagnoser("averaged per sequence first: perplexity is exp of "
                        "the mean loss per token of the whole batch, so a "
                        "long sequence weighs more than a short one",
                        variant=_ppl_variant(average="sequences")),
              Diagnoser("averaged the sequences' perplexities: take exp once, "
                        "of the mean loss per token of the whole batch",
                        variant=_ppl_variant(average="perplexities")),
              Diagnoser("used the logits as log-probabilities: take the log-"
                        "softmax over the vocabulary (the last axis) first",
                        variant=_ppl_variant(logp="logits")),
              Diagnoser("the loss has the wrong sign: it is the mean of -ln p, "
                        "so the perplexity is at least 1",
                        variant=_ppl_variant(sign=1.0)),
              Diagnoser("used base 2 with a loss in nats: perplexity is e to "
                        "the mean loss in nats (2 to the power is for a loss "
                        "in bits)", variant=_ppl_variant(base="2")),
              Diagnoser("zeroed the padding's losses but divided by all N T "
                        "positions: divide by the number of real positions, "
                        "lengths.sum()", variant=_ppl_variant(average="all")),
              Diagnoser("found the padding from the targets (targets != 0): a "
                        "real token can have the padding's id; the real "
                        "positions are t < lengths[n]", variant=_ppl_variant(pad="targets")),
              Diagnoser("the mask is one position too long (t <= lengths[n]): "
                        "with positions counted from 0, the real ones are t < "
                        "lengths[n]", variant=_ppl_variant(pad="one more")),
              Diagnoser("the mask is one position too short (t < lengths[n] - 1): "
                        "with positions counted from 0, the real ones are t < "
                        "lengths[n]", variant=_ppl_variant(pad="one less")),
              Diagnoser("returned the mean loss: the perplexity is e to that "
                        "power", variant=_ppl_variant(take_exp=False)),
              Diagnoser("the softmax is over the positions (axis 1): each "
                        "position's logits are a distribution over the V tokens, "
                        "the last axis", variant=_ppl_variant(axis=1)),
              Diagnoser("shifted the targets by one, as for a language model's "
                        "windows: here targets[n, t] is already the token that "
                        "the logits at position t score", variant=_ppl_variant(shift=True)),
              Diagnoser("a NaN, an infinity or a 0 came out on large logits: "
                        "subtract each position's own largest logit before exp "
                        "(a stable log-softmax, chapter 1; one maximum for the "
                        "whole batch or for a whole sequence leaves exp(-1000) "
                        "= 0, and log 0 = -inf, at a position whose logits lie "
                        "far below it), and keep the padding out by "
                        "selecting the real positions rather than multiplying by "
                        "a 0/1 mask (-inf times 0 is NaN)", test=_not_a_perplexity),
          ])
def padded_perplexity(logits, targets, lengths):
    """Exercise ``padded_perplexity(logits, targets, lengths) ->
    perplexity``: the perplexity of a batch of N sequences padded to length
    T. ``logits: (N, T, V)`` are a model's scores for the next token,
    ``targets: (N, T)`` the tokens that came (integers), ``lengths: (N,)``
    the true lengths: position t of sequence n is real when ``t <
    lengths[n]`` and padding otherwise (there, logits and the target are
    arbitrary and must not count). With log p = log-softmax of the logits
    over the vocabulary, return exp of the mean of -log p[n, t,
    targets[n, t]] over the real positions of the whole batch, as a float.
    Reference: nnlib's ``CrossEntropyLoss`` on the real positions, then
    ``exp``."""
    from ..losses import CrossEntropyLoss
    keep = np.arange(targets.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return float(np.exp(CrossEntropyLoss()(logits[keep], targets[keep])))


def _beam_cases(rng):
    # (M hypotheses, V tokens, beam), note
    settings = [((3, 7, 3), ""),
                ((1, 6, 4), "the first step: one hypothesis (<bos>)"),
                ((4, 5, 1), "a beam of 1 (greedy decoding)"),
                ((2, 3, 8), "a beam wider than M V: every candidate is kept"),
                ((5, 11, 4), "odd sizes"),
                ((3, 4, 4), "ties between candidates"),
                ((2, 6, 3), "a token of probability 0 (log-probability -inf)"),
                ((3, 5, 2), "long hypotheses: scores far below 0")]
    out = []
    for (m, v, beam), note in settings:
        z = rng.standard_normal((m, v)) * 2.0
        step = z - np.log(np.exp(z).sum(axis=1, keepdims=True))   # log-softmax
        scores = -rng.random(m) * 3.0
        if note.startswith("the first step"):
            scores = np.zeros(1)
        if note == "ties between candidates":
            step = np.log(np.full((m, v), 1.0 / v))       # uniform next token
            scores = np.array([-1.0, -1.0, -2.0])
        if note.startswith("a token of probability 0"):
            step[:, 2] = -np.inf
        if note.startswith("long hypotheses"):
            scores = scores - 40.0
        out.append(Case((scores, step, beam), note))
    return out


def _beam_variant(rank="sum", order="desc", split="V", per_row=False):
    """One step of beam search with a known mistake: candidates ranked by
    ``rank`` ("sum": the right total; "step": the new token's log-probability
    only; "product": scores times step), sorted ``order`` ("desc"; "asc";
    "late-ties": ties to the higher flat index), the flat index split with
    ``split`` ("V"; "M": row = i % M and token = i // M, as if the
    candidates had been flattened column by column), or the best of each
    hypothesis kept in turn (``per_row``)."""
    def variant(scores, step_logp, beam):
        m, v = step_logp.shape
        total = {"sum": scores[:, None] + step_logp,
                 "step": step_logp + 0.0 * scores[:, None],
                 "product": scores[:, None] * step_logp}[rank]
        if per_row:
            k = min(beam, m * v)
            each = np.argsort(-total, axis=1, kind="stable")[:, :k]    # (M, k)
            flat = (np.arange(m)[:, None] * v + each).ravel()[:k]
            r, t = flat // v, flat % v
            return r, t, total[r, t]
        flat = total.ravel()
        idx = np.arange(flat.size)
        if order == "asc":
            top = np.lexsort((idx, flat))
        elif order == "late-ties":
            top = np.lexsort((-idx, -flat))
        else:
            top = np.lexsort((idx, -flat))
        top = top[:min(beam, flat.size)]
        r, t = (top // v, top % v) if split == "V" else (top % m, top // m)
        if split != "V" and (np.any(r >= m) or np.any(t >= v)):
            raise ValueError("indices out of range")
        return r, t, flat[top]
    return variant


@register("beam_search_step", chapter="05b-sequence-models",
          args=("scores", "step_logp", "beam"),
          outputs=("rows", "tokens", "new_scores"), cases=_beam_cases,
          diagnosers=[
              Diagnoser("ranked the candidates by the new token's "
                        "log-probability alone: a candidate's score is its "
                        "hypothesis's score plus that log-probability, "
                        "scores[r] + step_logp[r, v]",
                        variant=_beam_variant(rank="step")),
              Diagnoser("multiplied the log-probabilities: the log of a "
                        "product of probabilities is a sum, scores[r] + "
                        "step_logp[r, v]", variant=_beam_variant(rank="product")),
              Diagnoser("kept the lowest scores: keep the beam candidates "
                        "with the largest total log-probability, best first",
                        variant=_beam_variant(order="asc")),
              Diagnoser("kept the best tokens of each hypothesis in turn: "
                        "the beam keeps the best of all M V candidates "
                        "together, so one hypothesis may supply several and "
                        "another none", variant=_beam_variant(per_row=True)),
              Diagnoser("split the flat index the wrong way: for a candidate "
                        "at flat position i of the (M, V) array of totals, "
                        "the row is i // V and the token i % V",
                        variant=_beam_variant(split="M")),
              Diagnoser("ties broken the other way: among equal scores keep "
                        "the lower flat index r V + v first (a stable sort of "
                        "the negated totals)",
                        variant=_beam_variant(order="late-ties"),
                        outputs=("rows", "tokens")),
          ])
def beam_search_step(scores, step_logp, beam):
    """Exercise ``beam_search_step(scores, step_logp, beam) -> (rows, tokens,
    new_scores)``: one step of beam search for one source, as in
    ``nnlib.seq2seq.beam_search``. ``scores: (M,)`` is the total
    log-probability of each of the M live hypotheses (0 for the single
    ``<bos>`` hypothesis of the first step), ``step_logp: (M, V)`` the
    log-probability of each next token after each hypothesis (-inf for a
    token of probability 0), ``beam`` the width K. Every hypothesis r is
    extended by every token v, a candidate of score ``scores[r] +
    step_logp[r, v]``; return the ``k = min(beam, M V)`` best candidates, best
    first, as three arrays of shape ``(k,)``: the hypothesis ``rows`` they
    extend, their ``tokens`` (integers) and their ``new_scores``. Ties go to
    the lower flat index ``r V + v``. (The full search then moves the
    candidates that end with ``<eos>`` to the finished list; not here.)"""
    m, v = step_logp.shape
    total = (scores[:, None] + step_logp).ravel()
    top = np.argsort(-total, kind="stable")[:min(beam, m * v)]
    return top // v, top % v, total[top]
