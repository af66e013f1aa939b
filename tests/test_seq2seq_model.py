"""nnlib.seq2seq: the encoder–decoder of chapters 5b and 5c.

Gradients against central differences and against the same model written in
PyTorch (float64: forward, every parameter gradient); decoding: beam=1 is
greedy, a beam wide enough to keep every hypothesis finds the exhaustive
argmax, and wider beams find sequences at least as probable as greedy's on
random small models; bad input is rejected with a message; corpus BLEU
against hand-computed examples (clipping by the largest count over several
references, the brevity penalty with the closest reference length, counts
pooled over the corpus), and against NLTK where it is installed."""
import itertools

import numpy as np
import pytest

import nnlib
from nnlib import seq2seq as S
from nnlib.testing import GRADCHECK_TOL, numerical_grad, rel_error

pytestmark = pytest.mark.rnn

BOS, EOS = 4, 5


def tiny(attention, seed=0, src_vocab=5, tgt_vocab=6, embed=3, hidden=4):
    rng = np.random.default_rng(seed)
    return S.Seq2Seq(src_vocab, tgt_vocab, embed, hidden, bos=BOS, eos=EOS,
                     attention=attention, attention_dim=3 if attention else None,
                     rng=rng)


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_full_model(attention, seed):
    m = tiny(attention, seed)
    if attention:     # at PyTorch-like init the query's gradient is ~1e-5,
        for p in m.attention.parameters():     # near central differences'
            p.data *= 3.0                      # round-off (~1e-10 absolute)
    rng = np.random.default_rng(10 + seed)
    src, tin = rng.integers(0, 5, (2, 3)), rng.integers(0, 6, (2, 4))
    y = m(src, tin)
    g = rng.standard_normal(y.shape)
    m.zero_grad()
    assert m.backward(g) is None
    assert all(mod.pending_backward == 0 for _, mod in m.named_modules())

    def f(_):
        with nnlib.no_grad():
            return np.sum(m(src, tin) * g)

    errors = {name: rel_error(p.grad, numerical_grad(f, p.data))
              for name, p in m.named_parameters()}
    bad = {k: v for k, v in errors.items() if not v < GRADCHECK_TOL}
    assert not bad, f"gradient check failed: {bad}"
    if attention:
        assert {"attention.query_weight", "attention.key_weight",
                "attention.v"} <= set(errors)


def test_attention_module_input_gradients():
    rng = np.random.default_rng(3)
    att = S.AdditiveAttention(4, 5, 3, rng=rng)
    q, k = rng.standard_normal((2, 4)), rng.standard_normal((2, 6, 5))
    g = rng.standard_normal((2, 5))
    att(q, k)
    dq, dk = att.backward(g)

    def f_q(z):
        with nnlib.no_grad():
            return np.sum(att(z, k) * g)

    def f_k(z):
        with nnlib.no_grad():
            return np.sum(att(q, z) * g)

    assert rel_error(dq, numerical_grad(f_q, q.copy())) < GRADCHECK_TOL
    assert rel_error(dk, numerical_grad(f_k, k.copy())) < GRADCHECK_TOL
    assert np.allclose(att.weights.sum(axis=1), 1.0)


# --- the same model in PyTorch --------------------------------------------------
def torch_twin(m):
    """The model written in torch (GRUCell steps, attention by its formula),
    with ``m``'s weights; returns a function (src, tgt_in) -> logits."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    dt = torch.float64
    e, h = m.embed_dim, m.hidden_size
    mods = nn.ModuleDict({
        "src_embed": nn.Embedding(m.src_vocab, e), "encoder": nn.GRU(e, h, batch_first=True),
        "tgt_embed": nn.Embedding(m.tgt_vocab, e),
        "decoder": nn.GRUCell(e + (h if m.use_attention else 0), h),
        "out": nn.Linear(h, m.tgt_vocab)}).to(dt)
    params = {n: nn.Parameter(torch.tensor(p.data)) for n, p in m.named_parameters()
              if n.startswith("attention.")}
    state = {n: torch.tensor(p.data) for n, p in m.named_parameters()
             if not n.startswith("attention.")}
    mods.load_state_dict(state)

    def run(src, tgt_in):
        enc, h_n = mods["encoder"](mods["src_embed"](torch.tensor(src)))
        s = h_n[0]
        emb = mods["tgt_embed"](torch.tensor(tgt_in))
        outs = []
        for t in range(tgt_in.shape[1]):
            x = emb[:, t]
            if m.use_attention:
                pre = enc @ params["attention.key_weight"].T + \
                    (s @ params["attention.query_weight"].T)[:, None]
                alpha = torch.softmax(torch.tanh(pre) @ params["attention.v"], dim=1)
                x = torch.cat([x, (alpha[:, :, None] * enc).sum(dim=1)], dim=1)
            s = mods["decoder"](x, s)
            outs.append(s)
        return mods["out"](torch.stack(outs, dim=1))

    def grads():
        named = {n: p for n, p in mods.named_parameters()}
        named.update(params)
        return {n: p.grad.numpy() for n, p in named.items()}

    return run, grads


@pytest.mark.parametrize("attention", [False, True])
def test_matches_torch_in_float64(attention):
    torch = pytest.importorskip("torch")
    m = S.Seq2Seq(7, 9, 5, 6, bos=7, eos=8, attention=attention,
                  attention_dim=4 if attention else None, rng=np.random.default_rng(5))
    rng = np.random.default_rng(6)
    src, tgt = rng.integers(0, 7, (3, 5)), rng.integers(0, 9, (3, 4))
    tin = S.shift_right(tgt, m.bos)
    y = m(src, tin)
    g = rng.standard_normal(y.shape)
    m.zero_grad()
    m.backward(g)
    run, grads = torch_twin(m)
    yt = run(src, tin)
    (yt * torch.tensor(g)).sum().backward()
    tg = grads()
    worst = {"logits": np.abs(y - yt.detach().numpy()).max()}
    for n, p in m.named_parameters():
        worst[n] = np.abs(p.grad - tg[n]).max()
        assert np.allclose(p.grad, tg[n], rtol=1e-8, atol=1e-10), (n, worst[n])
    assert np.allclose(y, yt.detach().numpy(), rtol=1e-8, atol=1e-10), worst
    if attention:
        assert m.attention_weights.shape == (3, 4, 5)


def test_no_attention_decoder_is_a_gru_started_at_the_encoder_state():
    """A second formulation: torch.nn.GRU over the whole target with h0 = h_S."""
    torch = pytest.importorskip("torch")
    m = tiny(False, seed=4)
    rng = np.random.default_rng(7)
    src, tin = rng.integers(0, 5, (3, 6)), rng.integers(0, 6, (3, 5))
    y = m(src, tin)
    enc = torch.nn.GRU(3, 4, batch_first=True).double()
    dec = torch.nn.GRU(3, 4, batch_first=True).double()
    sd = m.state_dict()
    enc.load_state_dict({k.split(".", 1)[1]: torch.tensor(v) for k, v in sd.items()
                         if k.startswith("encoder.")})
    dec.load_state_dict({k.split(".", 1)[1] + "_l0": torch.tensor(v)
                         for k, v in sd.items() if k.startswith("decoder.")})
    _, h_n = enc(torch.tensor(m.src_embed.weight.data[src]))
    hs, _ = dec(torch.tensor(m.tgt_embed.weight.data[tin]), h_n)
    logits = hs.detach().numpy() @ m.out.weight.data.T + m.out.bias.data
    assert np.allclose(y, logits, rtol=1e-8, atol=1e-10)


# --- decoding ------------------------------------------------------------------------
def test_shift_right_and_sequence_log_prob():
    tgt = np.array([[1, 2, 3], [0, 0, EOS]])
    assert np.array_equal(S.shift_right(tgt, BOS), [[BOS, 1, 2], [BOS, 0, 0]])
    m = tiny(True)
    src = np.array([[1, 2], [3, 4]])
    lp = S.sequence_log_prob(m, src, tgt)
    with nnlib.no_grad():
        z = m(src, S.shift_right(tgt, BOS))
    p = np.exp(z - z.max(2, keepdims=True))
    p /= p.sum(2, keepdims=True)
    by_hand = [np.log(p[i, np.arange(3), tgt[i]]).sum() for i in range(2)]
    assert np.allclose(lp, by_hand, rtol=1e-12)


@pytest.mark.parametrize("attention", [False, True])
def test_beam_one_is_greedy(attention):
    for seed in range(5):
        m = tiny(attention, seed)
        src = np.random.default_rng(seed).integers(0, 5, (6, 4))
        g, b = S.greedy(m, src, 7), S.beam_search(m, src, beam=1, max_len=7)
        for a, c in zip(g.sequences, b.sequences):
            assert np.array_equal(a, c)
        assert np.allclose(g.log_probs, b.log_probs, rtol=1e-12, atol=1e-12)
        # the returned log-probabilities are those of the returned sequences
        for i, seq in enumerate(g.sequences):
            lp = S.sequence_log_prob(m, src[i:i + 1], seq[None])[0]
            assert abs(lp - g.log_probs[i]) < 1e-10


def all_hypotheses(v, eos, max_len):
    """Every sequence beam search can return: ending at the first eos, within
    max_len tokens, or max_len tokens without eos."""
    for length in range(1, max_len + 1):
        for head in itertools.product([t for t in range(v) if t != eos],
                                      repeat=length - 1):
            yield list(head) + [eos]
            if length == max_len:
                for last in range(v):
                    if last != eos:
                        yield list(head) + [last]


@pytest.mark.parametrize("attention", [False, True])
def test_full_beam_is_the_exhaustive_argmax(attention):
    v, max_len = 4, 3
    m = S.Seq2Seq(3, v, 3, 4, bos=2, eos=3, attention=attention,
                  rng=np.random.default_rng(11))
    hyps = list(all_hypotheses(v, 3, max_len))
    assert len(hyps) == 1 + 3 + 9 + 27          # 3 non-eos tokens before eos
    src_all = np.random.default_rng(12).integers(0, 3, (8, 4))
    found = S.beam_search(m, src_all, beam=v ** max_len, max_len=max_len)
    for i, src in enumerate(src_all):
        scores = [S.sequence_log_prob(m, src[None], np.array([h]))[0] for h in hyps]
        best = int(np.argmax(scores))
        assert np.array_equal(found.sequences[i], hyps[best]), i
        assert abs(found.log_probs[i] - scores[best]) < 1e-10


@pytest.mark.parametrize("attention", [False, True])
def test_beam_at_least_as_probable_as_greedy_on_random_models(attention):
    """Not a theorem: beam search can prune greedy's prefix and end lower
    (1 source of 200 with attention, none without, at the time of writing).
    Measured on 20 random models x 10 sources: beam=4 is at least as
    probable as greedy on >= 99% of sources and more probable on >= half."""
    worse = better = 0
    for seed in range(20):
        m = tiny(attention, seed, src_vocab=5, tgt_vocab=6, hidden=8)
        src = np.random.default_rng(100 + seed).integers(0, 5, (10, 5))
        g = S.greedy(m, src, 6)
        b = S.beam_search(m, src, beam=4, max_len=6)
        worse += int(np.sum(b.log_probs < g.log_probs - 1e-12))
        better += int(np.sum(b.log_probs > g.log_probs + 1e-9))
        for i, seq in enumerate(b.sequences):
            lp = S.sequence_log_prob(m, src[i:i + 1], seq[None])[0]
            assert abs(lp - b.log_probs[i]) < 1e-10
    assert worse <= 2 and better >= 100, (worse, better)


def test_length_penalty_prefers_longer_or_equal():
    m = tiny(False, seed=2, hidden=8)
    src = np.random.default_rng(2).integers(0, 5, (10, 4))
    plain = S.beam_search(m, src, beam=3, max_len=6)
    pen = S.beam_search(m, src, beam=3, max_len=6, length_penalty=1.0)
    assert all(len(a) >= 1 and len(a) <= 6 for a in pen.sequences)
    assert np.all(pen.log_probs <= plain.log_probs + 1e-12)
    for i, seq in enumerate(pen.sequences):
        lp = S.sequence_log_prob(m, src[i:i + 1], seq[None])[0]
        assert abs(lp - pen.log_probs[i]) < 1e-10


# --- bad input -----------------------------------------------------------------------
def test_bad_input_is_rejected_with_a_message():
    m = tiny(True)
    src, tin = np.zeros((2, 3), dtype=int), np.zeros((2, 4), dtype=int)
    with pytest.raises(TypeError, match="integer token ids in src"):
        m(src.astype(float), tin)
    with pytest.raises(ValueError, match=r"ids in tgt_in in \[0, 6\), got 6"):
        m(src, tin + 6)
    with pytest.raises(ValueError, match="same batch size"):
        m(src, tin[:1])
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        m(src[0], tin)
    with pytest.raises(ValueError, match="got shape"):
        m(np.zeros((2, 0), dtype=int), tin)
    m(src, tin)
    with pytest.raises(ValueError, match="grad_out"):
        m.backward(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="bos and eos"):
        S.Seq2Seq(5, 6, 3, 4, bos=5, eos=5)
    with pytest.raises(ValueError, match="expected eos"):
        S.Seq2Seq(5, 6, 3, 4, bos=4, eos=6)
    with pytest.raises(ValueError, match="hidden_size"):
        S.Seq2Seq(5, 6, 3, 0, bos=4, eos=5)
    with pytest.raises(ValueError, match="attention=False"):
        S.Seq2Seq(5, 6, 3, 4, bos=4, eos=5, attention_dim=3)
    with pytest.raises(ValueError, match="beam"):
        S.beam_search(m, src, beam=0, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        S.greedy(m, src, max_len=0)
    with pytest.raises(ValueError, match="length_penalty"):
        S.beam_search(m, src, beam=2, max_len=3, length_penalty=-1)
    with pytest.raises(TypeError, match="Seq2Seq"):
        S.greedy(nnlib.Linear(2, 2), src, 3)
    with pytest.raises(ValueError, match="AdditiveAttention.forward"):
        S.AdditiveAttention(4, 5, 3)(np.zeros((2, 4)), np.zeros((2, 3, 4)))


def test_bidirectional_encoder_matches_torch():
    """Encoder torch.nn.GRU(bidirectional=True); s_0 = [h_S fwd ; h_1 bwd]."""
    torch = pytest.importorskip("torch")
    m = S.Seq2Seq(7, 9, 5, 6, bos=7, eos=8, attention=True, attention_dim=4,
                  bidirectional=True, rng=np.random.default_rng(8))
    rng = np.random.default_rng(9)
    src, tin = rng.integers(0, 7, (3, 5)), rng.integers(0, 9, (3, 4))
    y = m(src, tin)
    g = rng.standard_normal(y.shape)
    m.zero_grad()
    m.backward(g)
    p = {n: torch.tensor(q.data, requires_grad=True)
         for n, q in m.named_parameters()}
    enc = torch.nn.GRU(5, 3, batch_first=True, bidirectional=True).double()
    enc.load_state_dict({
        n.split(".")[2] + ("_reverse" if ".bwd." in n else ""): p[n]
        for n in p if n.startswith("encoder.")})
    hs, h_n = enc(p["src_embed.weight"][torch.tensor(src)])
    s = torch.cat([h_n[0], h_n[1]], dim=1)
    cell = torch.nn.GRUCell(5 + 6, 6).double()
    cell.load_state_dict({n.split(".")[1]: p[n] for n in p
                          if n.startswith("decoder.")})
    emb = p["tgt_embed.weight"][torch.tensor(tin)]
    outs = []
    for t in range(4):
        pre = hs @ p["attention.key_weight"].T + \
            (s @ p["attention.query_weight"].T)[:, None]
        alpha = torch.softmax(torch.tanh(pre) @ p["attention.v"], dim=1)
        ctx = (alpha[:, :, None] * hs).sum(dim=1)
        s = cell(torch.cat([emb[:, t], ctx], dim=1), s)
        outs.append(s)
    yt = torch.stack(outs, 1) @ p["out.weight"].T + p["out.bias"]
    assert np.allclose(y, yt.detach().numpy(), rtol=1e-8, atol=1e-10)
    (yt * torch.tensor(g)).sum().backward()
    named = dict(enc.named_parameters())
    named.update({"decoder." + n: q for n, q in cell.named_parameters()})
    for n, q in m.named_parameters():
        if n.startswith("encoder."):
            tq = named[n.split(".")[2] + ("_reverse" if ".bwd." in n else "")]
        elif n.startswith("decoder."):
            tq = named[n]
        else:
            tq = p[n]
        assert np.allclose(q.grad, tq.grad.numpy(), rtol=1e-8, atol=1e-10), n


def test_bidirectional_gradcheck_and_odd_hidden():
    m = S.Seq2Seq(5, 6, 3, 4, bos=4, eos=5, attention=True, attention_dim=3,
                  bidirectional=True, rng=np.random.default_rng(1))
    for p in m.attention.parameters():
        p.data *= 3.0
    rng = np.random.default_rng(2)
    src, tin = rng.integers(0, 5, (2, 3)), rng.integers(0, 6, (2, 4))
    g = rng.standard_normal(m(src, tin).shape)
    m.zero_grad()
    m.backward(g)

    def f(_):
        with nnlib.no_grad():
            return np.sum(m(src, tin) * g)

    for name, p in m.named_parameters():
        assert rel_error(p.grad, numerical_grad(f, p.data)) < GRADCHECK_TOL, name
    with pytest.raises(ValueError, match="even hidden_size"):
        S.Seq2Seq(5, 6, 3, 5, bos=4, eos=5, bidirectional=True)


def test_pad_sequences_and_first_error():
    seqs = [np.array([3, 1, EOS]), np.array([2]), np.array([1, 2, 3, 4, 5])]
    padded = S.pad_sequences(seqs, 4)
    assert np.array_equal(padded, [[3, 1, EOS, -1], [2, -1, -1, -1], [1, 2, 3, 4]])
    assert S.pad_sequences(seqs, 2, fill=7).tolist() == [[3, 1], [2, 7], [1, 2]]
    tgt = np.array([[3, 1, EOS, 0], [2, 5, EOS, 0], [1, 2, 3, 9]])
    assert S.first_error(padded, tgt).tolist() == [3, 1, 3]
    assert S.first_error(tgt, tgt).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="first_error"):
        S.first_error(padded, tgt[:, :3])


def test_greedy_agrees_with_teacher_forcing_until_its_first_mistake():
    # a free-running decoder reads the true prefix until its first error, so
    # its tokens are the teacher-forced argmax up to and including that error:
    # targets are greedy's own outputs with one token changed at position k
    for attention in (False, True):
        m = tiny(attention, 3)
        m.out.bias.data[EOS] -= 3.0                # longer outputs
        rng = np.random.default_rng(3)
        src = rng.integers(0, 5, (200, 4))
        out = S.greedy(m, src, max_len=6).sequences
        free = S.pad_sequences(out, 6)
        tgt = np.where(free < 0, 0, free)
        lens = np.array([len(s) for s in out])
        rows, k = np.arange(len(src)), (rng.random(len(src)) * lens).astype(int)
        tgt[rows, k] = (tgt[rows, k] + rng.integers(1, 6, len(src))) % 6
        with nnlib.no_grad():
            forced = m(src, S.shift_right(tgt, BOS)).argmax(-1)
        assert np.sum(k >= 2) > 10                 # errors after a right prefix
        assert np.array_equal(S.first_error(free, tgt), k)
        assert np.array_equal(S.first_error(forced, tgt), k)
        for i in rows:
            assert np.array_equal(free[i, :k[i] + 1], forced[i, :k[i] + 1])


# --- BLEU: hand-computed examples ------------------------------------------------
def test_bleu_clips_by_the_largest_count_over_the_references():
    # Papineni et al. (2002), section 2.1: "the" occurs 7 times in the output,
    # twice in reference 1 and once in reference 2, so it is credited
    # max(2, 1) = 2 times (the sum, 3, would be wrong): p_1 = 2/7; the output
    # has 7 tokens and the closest reference length is 7, so BP = 1
    out = "the the the the the the the".split()
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    assert S.corpus_bleu([out], [refs], max_n=1) == pytest.approx(2 / 7, abs=1e-15)
    assert S.corpus_bleu([out], [refs[::-1]], max_n=1) == pytest.approx(2 / 7, abs=1e-15)
    assert S.corpus_bleu([out], [refs], max_n=2) == 0.0     # no bigram matches


def test_bleu_brevity_penalty_and_one_reference():
    # the chapter's exercise: 4 x "the" against "the cat is on the mat":
    # p_1 = 2/4, c = 4, r = 6, BP = exp(1 - 6/4), unigram BLEU = exp(-1/2) / 2
    out, ref = "the the the the".split(), "the cat is on the mat".split()
    assert S.corpus_bleu([out], [[ref]], max_n=1) == pytest.approx(
        0.5 * np.exp(-0.5), rel=1e-14)
    assert S.corpus_bleu([out], [[ref]]) == 0.0             # p_4 = 0
    assert S.corpus_bleu([ref], [[ref]]) == 1.0             # the reference itself


def test_bleu_pools_counts_over_the_corpus_and_picks_the_closest_length():
    # output 1 "a b c" vs "a b d": unigrams 2 of 3, bigrams 1 of 2 ("a b");
    # output 2 "a a" vs "a b" and "a a b": "a" clipped at max(1, 2) = 2, so
    # 2 of 2; bigram "a a" max(0, 1) = 1, 1 of 1. Pooled: p_1 = 4/5,
    # p_2 = 2/3; c = 5, r = 3 + 2 (closest lengths): BLEU = sqrt(4/5 * 2/3)
    outs = [[1, 2, 3], np.array([1, 1])]
    refs = [[[1, 2, 4]], [np.array([1, 2]), [1, 1, 2]]]
    assert S.corpus_bleu(outs, refs, max_n=2) == pytest.approx(
        np.sqrt(4 / 5 * 2 / 3), rel=1e-14)
    # not the mean of the two sentences' scores: sqrt(2/3 * 1/2) and 1
    assert S.corpus_bleu(outs, refs, max_n=2) != pytest.approx(
        (np.sqrt(1 / 3) + 1) / 2)
    # effective reference length: references of 1 and 3 tokens are equally
    # close to an output of 2; the shorter counts, r = 1 < c = 2, so BP = 1
    # (the longer, r = 3, would give exp(1 - 3/2))
    assert S.corpus_bleu([["a", "b"]], [[["a"], ["a", "b", "c"]]],
                         max_n=1) == 1.0
    # a shorter output than its closest reference: BP = exp(1 - 3/2)
    assert S.corpus_bleu([["a", "b"]], [[["a", "b", "c"]]], max_n=1) == \
        pytest.approx(np.exp(-0.5), rel=1e-14)


def test_bleu_matches_nltk_where_installed():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = np.random.default_rng(0)
    outs = [list(rng.integers(0, 4, rng.integers(4, 9))) for _ in range(20)]
    refs = [[list(rng.integers(0, 4, rng.integers(4, 9)))
             for _ in range(rng.integers(1, 4))] for _ in range(20)]
    assert S.corpus_bleu(outs, refs) == pytest.approx(
        nltk_bleu.corpus_bleu(refs, outs), rel=1e-12)


def test_bleu_rejects_bad_input_with_a_message():
    with pytest.raises(ValueError, match="one list of references per output"):
        S.corpus_bleu([[1, 2]], [])
    with pytest.raises(ValueError, match=r"references\[0\]"):
        S.corpus_bleu([[1, 2]], [[]])
    with pytest.raises(ValueError, match="a list of them"):
        S.corpus_bleu([[1, 2]], [[1, 2]])     # a sequence, not a list of them
    with pytest.raises(ValueError, match="max_n"):
        S.corpus_bleu([[1]], [[[1]]], max_n=0)
