"""The exercise of section 5b: one step of beam search, checked against
nnlib's own (the step ``nnlib.seq2seq.beam_search`` takes).

=====================  ====================  ==============================
exercise               chapter               returns
=====================  ====================  ==============================
``beam_search_step``   05b-sequence-models   ``(rows, tokens, new_scores)``
=====================  ====================  ==============================
"""
from __future__ import annotations

import numpy as np

from ._core import Case, Diagnoser, register

__all__ = ["beam_search_step"]


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
