"""nnlib.exercises for section 5b (``nnlib.exercises.sequences``): the
perplexity of a padded batch and one step of beam search.

As tests/test_checker.py: the solution printed in the chapter passes, typical
wrong answers fail with the right diagnosis, the stub in the chapter says
"not yet", no message shows the solution; there is no torch twin, so the
reference is checked against brute force and against a whole search built
from it, which must equal ``nnlib.seq2seq.beam_search``.
"""
import numpy as np
import pytest
from test_checker import harvest, shows_no_solution, stub_says_not_yet
from test_checker import solution as shared_solution

import nnlib
import nnlib.exercises as ex
from nnlib import seq2seq
from nnlib.exercises import sequences
from nnlib.exercises.sequences import _beam_variant, beam_search_step

pytestmark = pytest.mark.book

CHAPTERS = {"05b-sequence-models": ["padded_perplexity", "beam_search_step"]}
ALL = [n for names in CHAPTERS.values() for n in names]
SOLUTIONS = harvest(CHAPTERS)


def test_the_chapters_solution_passes_and_its_stub_says_not_yet(capsys):
    assert ex.get("beam_search_step").chapter == "05b-sequence-models"
    result = run(shared_solution("beam_search_step", SOLUTIONS))
    assert result.passed and result.cases >= 6, result.message
    stub_says_not_yet("beam_search_step", SOLUTIONS, capsys)


def test_no_message_shows_the_solution():
    shows_no_solution("beam_search_step", SOLUTIONS, sequences, WRONG)


def run(fn):
    return ex.check("beam_search_step", fn, verbose=False)


def test_reference_keeps_the_k_best_of_all_candidates():
    # brute force: the returned scores are the k largest totals, in order, and
    # each names the candidate it came from
    rng = np.random.default_rng(0)
    for m, v, beam in [(1, 5, 3), (3, 7, 4), (4, 3, 20), (6, 9, 6)]:
        scores = -rng.random(m) * 5
        step = np.log(rng.dirichlet(np.ones(v), size=m))
        rows, toks, new = beam_search_step(scores, step, beam)
        total = scores[:, None] + step
        k = min(beam, m * v)
        assert rows.shape == toks.shape == new.shape == (k,)
        assert np.allclose(new, np.sort(total.ravel())[::-1][:k], rtol=0, atol=0)
        assert np.array_equal(new, total[rows, toks])
        assert len(set(zip(rows.tolist(), toks.tolist()))) == k   # distinct


def _beam_from_steps(model, src, beam, max_len):
    """Beam search for one source built from beam_search_step, for a model
    whose <eos> never wins (so no hypothesis finishes before max_len)."""
    with nnlib.no_grad():
        enc = model.encode(src)
        s, prev = model.initial_state(enc), np.array([model.bos])
        scores, seqs = np.zeros(1), np.zeros((1, 0), dtype=np.int64)
        for _ in range(max_len):
            s, _ = model._step(model.tgt_embed(prev), s, enc[:1].repeat(len(prev), 0))
            logp = seq2seq.log_softmax(model.out(s), axis=1)
            rows, toks, scores = beam_search_step(scores, logp, beam)
            seqs = np.concatenate([seqs[rows], toks[:, None]], axis=1)
            s, prev = s[rows], toks
    return seqs[0], scores[0]


@pytest.mark.parametrize("attention", [False, True])
def test_a_search_built_from_the_step_is_nnlibs_beam_search(attention):
    for seed in range(4):
        m = seq2seq.Seq2Seq(5, 6, 3, 4, bos=4, eos=5, attention=attention,
                            rng=np.random.default_rng(seed))
        m.out.bias.data[5] = -1e3                   # <eos> never in the beam
        src = np.random.default_rng(seed).integers(0, 5, (1, 4))
        for beam in (1, 3, 5):
            want = seq2seq.beam_search(m, src, beam, max_len=5)
            seq, score = _beam_from_steps(m, src, beam, 5)
            assert np.array_equal(seq, want.sequences[0]), (seed, beam)
            assert np.isclose(score, want.log_probs[0], rtol=1e-12, atol=0)


WRONG = [
    (_beam_variant(rank="step"), "by the new token's log-probability alone"),
    (_beam_variant(rank="product"), "multiplied the log-probabilities"),
    (_beam_variant(order="asc"), "kept the lowest scores"),
    (_beam_variant(per_row=True), "best tokens of each hypothesis in turn"),
    (_beam_variant(split="M"), "split the flat index the wrong way"),
    (_beam_variant(order="late-ties"), "ties broken the other way"),
]


def test_correct_answers_written_differently_pass():
    def with_loops(scores, step_logp, beam):
        m, v = step_logp.shape
        cand = [(-(scores[r] + step_logp[r, t]), r * v + t, r, t)
                for r in range(m) for t in range(v)]
        cand.sort()
        best = cand[:beam]
        return (np.array([c[2] for c in best]), np.array([c[3] for c in best]),
                np.array([-c[0] for c in best]))

    def with_lexsort(scores, step_logp, beam):
        total = scores[:, None] + step_logp
        top = np.lexsort((np.arange(total.size), -total.ravel()))[:beam]
        r, t = np.unravel_index(top, total.shape)
        return r, t, total[r, t]
    assert run(with_loops).passed, run(with_loops).message
    assert run(with_lexsort).passed, run(with_lexsort).message
    assert run(_beam_variant()).passed


def test_the_stub_says_not_yet():
    def stub(scores, step_logp, beam):
        raise NotImplementedError
    result = run(stub)
    assert not result.passed and "not yet" in result.message


def test_cases_cover_a_first_step_a_beam_of_one_ties_and_minus_infinity():
    notes = [c.note for c in ex.get("beam_search_step").cases(np.random.default_rng(0))]
    for words in ("one hypothesis", "a beam of 1", "ties", "-inf", "wider than M V",
                  "odd sizes"):
        assert any(words in n for n in notes), words


# --- the perplexity of a padded batch -----------------------------------------
def _ppl(pad=True, per_sequence=None, log_softmax=True, stable=True, base=np.e,
         sign=-1.0, mask=None, no_exp=False, axis=2, shift=False):
    """A learner's perplexity, with one mistake where an argument says so."""
    def f(logits, targets, lengths):
        n, t, v = logits.shape
        if not log_softmax:
            lp = logits
        elif stable == "global":
            z = logits - logits.max()
            lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
        elif stable == "per sequence":
            z = logits - logits.max(axis=(1, 2), keepdims=True)
            lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
        elif stable:
            z = logits - logits.max(axis=axis, keepdims=True)
            lp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        else:
            lp = np.log(np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True))
        if shift:                              # a language model's shift, by mistake
            lp, targets, lengths, t = lp[:, :-1], targets[:, 1:], lengths - 1, t - 1
        loss = sign * lp[np.arange(n)[:, None], np.arange(t)[None, :], targets]
        real = np.arange(t)[None, :] < lengths[:, None] if pad else np.ones((n, t), bool)
        if mask == "targets":
            real = targets != 0
        elif mask == "<=":
            real = np.arange(t)[None, :] <= lengths[:, None]
        elif mask == "-1":
            real = np.arange(t)[None, :] < lengths[:, None] - 1
        elif mask == "times":                   # zero the padding, divide by N T
            return float(base ** (loss * real).mean())
        if no_exp:
            return float(loss[real].mean())
        if per_sequence == "loss":
            return float(base ** np.mean([loss[i][real[i]].mean() for i in range(n)]))
        if per_sequence == "perplexity":
            return float(np.mean([base ** loss[i][real[i]].mean() for i in range(n)]))
        return float(base ** loss[real].mean())
    return f


PPL_WRONG = [
    (_ppl(pad=False), "the padding is counted"),
    (_ppl(per_sequence="loss"), "averaged per sequence first"),
    (_ppl(per_sequence="perplexity"), "averaged the sequences' perplexities"),
    (_ppl(log_softmax=False), "used the logits as log-probabilities"),
    (_ppl(sign=1.0), "the loss has the wrong sign"),
    (_ppl(base=2.0), "used base 2 with a loss in nats"),
    (_ppl(stable=False), "a NaN, an infinity or a 0 came out on large logits"),
    (_ppl(stable="global"), "one maximum for the whole batch"),
    (_ppl(mask="times"), "divided by all N T positions"),
    (_ppl(mask="targets"), "found the padding from the targets (targets != 0)"),
    (_ppl(mask="<="), "the mask is one position too long"),
    (_ppl(mask="-1"), "the mask is one position too short"),
    (_ppl(no_exp=True), "returned the mean loss"),
    (_ppl(stable="per sequence"), "or for a whole sequence"),
    (_ppl(axis=1), "the softmax is over the positions (axis 1)"),
    (_ppl(shift=True), "shifted the targets by one"),
]


def ppl(fn):
    return ex.check("padded_perplexity", fn, verbose=False)


def test_perplexity_solution_passes_its_stub_says_not_yet_and_no_message_shows_it(capsys):
    assert ex.get("padded_perplexity").chapter == "05b-sequence-models"
    result = ppl(shared_solution("padded_perplexity", SOLUTIONS))
    assert result.passed and result.cases >= 6, result.message
    assert ppl(_ppl()).passed
    stub_says_not_yet("padded_perplexity", SOLUTIONS, capsys)
    shows_no_solution("padded_perplexity", SOLUTIONS, sequences, PPL_WRONG)


ALL_WRONG = {"beam_search_step": WRONG, "padded_perplexity": PPL_WRONG}


@pytest.mark.parametrize("name,k", [(n, k) for n, w in ALL_WRONG.items()
                                    for k in range(len(w))])
def test_a_wrong_answer_fails_with_its_diagnosis(name, k):
    fn, words = ALL_WRONG[name][k]
    result = ex.check(name, fn, verbose=False)
    assert not result.passed, result.message
    flat = " ".join(result.message.split())
    assert "likely cause:" in flat and words in flat, result.message


def test_perplexity_cases_and_reference_agree_with_torch():
    torch = pytest.importorskip("torch")
    cases = ex.get("padded_perplexity").cases(np.random.default_rng(0))
    notes = " ".join(c.note for c in cases)
    for words in ("batch of 1", "no padding", "length 1", "odd sizes", "large logits",
                  "uniform"):
        assert words in notes, words
    lengths = [c.args[2] for c in cases]
    assert any(len(set(x.tolist())) > 1 for x in lengths)        # unequal lengths
    assert len(set(lengths[0].tolist())) == len(lengths[0])      # the first: all differ
    for case in cases:
        logits, targets, lengths = case.args
        t = targets.copy()
        t[np.arange(t.shape[1])[None, :] >= lengths[:, None]] = -100
        ce = torch.nn.functional.cross_entropy(
            torch.tensor(logits).reshape(-1, logits.shape[2]),
            torch.tensor(t).reshape(-1), ignore_index=-100)
        assert np.isclose(sequences.padded_perplexity(*case.args),
                          float(torch.exp(ce)), rtol=1e-10, atol=0)
    first = cases[0].args
    assert first[1][0, 0] == 0 and first[2][0] > 0     # a real token with the padding's id
    large, _, ends = [c for c in cases if "large logits" in c.note][0].args
    for n, length in enumerate(ends):   # within every sequence, as within the batch:
        row_max = large[n, :length].max(axis=1)                        # exp(-745) = 0
        assert length < 2 or (row_max.min() > 900 and row_max.max() - row_max.min() > 745)
    uniform = [c for c in cases if "uniform" in c.note][0]
    assert not uniform.args[0].any()                   # every logit 0, padding included
    assert np.isclose(sequences.padded_perplexity(*uniform.args),
                      uniform.args[0].shape[2], rtol=1e-12)   # V, the identity
