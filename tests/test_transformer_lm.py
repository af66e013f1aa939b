"""The character-level Transformer language model of section 5d
(``nnlib.transformer_lm``): the whole model against a torch build of the same
model in float64 (outputs and every parameter gradient), causality, the
key-value cache against plain decoding, training with nnlib's optimizer
against torch's, and the error messages."""
import numpy as np
import pytest
import torch

import nnlib
from nnlib.testing import rel_error, torch_twin
from nnlib.transformer_lm import CharTransformer, KVCache

pytestmark = pytest.mark.rnn

V = 11


def small(positions="learned", seed=0, **kw):
    args = dict(d_model=12, nhead=3, num_layers=2, dim_feedforward=20, max_len=24,
                positions=positions)
    args.update(kw)
    return CharTransformer(V, rng=np.random.default_rng(seed), **args)


def _randomize_norms(m, rng):
    """LayerNorm weights away from 1, biases away from 0, so that a gradient
    sent to the wrong one of them shows."""
    for name, p in m.named_parameters():
        if "norm" in name:
            p.data[...] = (rng.uniform(0.5, 1.5, p.shape) if name.endswith("weight")
                           else 0.3 * rng.standard_normal(p.shape))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_matches_torch_output_and_every_gradient(positions, activation):
    rng = np.random.default_rng(1)
    m = small(positions, activation=activation)
    _randomize_norms(m, rng)
    idx = rng.integers(0, V, (3, 10))
    y = m(idx)
    G = rng.standard_normal(y.shape)             # random upstream gradient, not ones
    assert m.backward(G) is None
    twin = torch_twin(m)
    yt = twin(torch.from_numpy(idx))
    (yt * torch.from_numpy(G)).sum().backward()
    theirs = dict(twin.named_parameters())
    ours = dict(m.named_parameters())
    assert set(ours) == set(theirs)
    assert m.num_parameters() == sum(p.numel() for p in twin.parameters())
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-8, atol=1e-10)
    worst = {n: rel_error(p.grad, theirs[n].grad.numpy()) for n, p in ours.items()}
    bad = {n: e for n, e in worst.items() if not e < 1e-8}
    assert not bad, f"gradients differing from torch's: {bad}"
    assert not [n for n, mod in m.named_modules() if mod.pending_backward]


def test_the_comparison_sees_a_wrong_gradient():
    """Negative control: a 1% error in one block's attention gradient shows."""
    rng = np.random.default_rng(2)
    m = small()
    idx = rng.integers(0, V, (2, 7))
    G = rng.standard_normal((2, 7, V))
    m(idx)
    m.backward(G)
    m.blocks[1].self_attn.in_proj_weight.grad *= 1.01
    twin = torch_twin(m)
    (twin(torch.from_numpy(idx)) * torch.from_numpy(G)).sum().backward()
    t = dict(twin.named_parameters())["blocks.1.self_attn.in_proj_weight"].grad.numpy()
    assert rel_error(m.blocks[1].self_attn.in_proj_weight.grad, t) > 1e-3


def test_parameter_count_formula():
    m = CharTransformer(96)                       # the shipped shape
    E, f, L, T = 96, 288, 3, 256
    block = 4 * E * E + 4 * E + 2 * E * f + f + E + 4 * E
    assert m.num_parameters() == 96 * E + T * E + L * block + 2 * E + E * 96 + 96


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_causal(positions):
    """Changing tokens t+1 ... T leaves the scores at positions <= t exactly
    unchanged, and does change a later position's scores (the control)."""
    rng = np.random.default_rng(3)
    m = small(positions)
    idx = rng.integers(0, V, (2, 12))
    for t in (0, 4, 10):
        other = idx.copy()
        other[:, t + 1:] = (idx[:, t + 1:] + 1 + rng.integers(0, V - 1, other[:, t + 1:].shape)) % V
        a, b = m(idx), m(other)
        assert np.array_equal(a[:, :t + 1], b[:, :t + 1])
        assert np.abs(a[:, t + 1:] - b[:, t + 1:]).max() > 1e-6
    m.clear_cache()


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_cached_generation_equals_plain(positions, temperature):
    m = small(positions, seed=4)
    prime = np.array([1, 5, 2, 7])
    a, la = m.generate(prime, 18, temperature, rng=np.random.default_rng(5),
                       use_cache=True, return_logits=True)
    b, lb = m.generate(prime, 18, temperature, rng=np.random.default_rng(5),
                       use_cache=False, return_logits=True)
    assert a.shape == (22,) and la.shape == (18, V)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:4], prime)
    assert np.abs(la - lb).max() < 1e-10
    assert not [n for n, mod in m.named_modules() if mod.pending_backward]


def test_extend_in_chunks_equals_forward():
    """Prefill 5, then 1, then 4 tokens: the scores are those of one forward."""
    rng = np.random.default_rng(6)
    m = small()
    idx = rng.integers(0, V, (2, 10))
    with nnlib.no_grad():
        full = m(idx)
    cache = m.new_cache(2)
    parts = [m.extend(idx[:, a:b], cache) for a, b in [(0, 5), (5, 6), (6, 10)]]
    assert cache.length == 10 and cache.keys[0].shape == (2, 3, 10, 4)
    assert cache.nbytes() == 2 * 2 * 2 * 3 * 10 * 4 * 8
    assert np.abs(np.concatenate(parts, axis=1) - full).max() < 1e-12


def test_attention_maps():
    rng = np.random.default_rng(7)
    m = small()
    idx = rng.integers(0, V, (2, 9))
    maps = m.attention_maps(idx)
    assert maps.shape == (2, 2, 3, 9, 9)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-12)
    assert np.all(maps[..., np.triu_indices(9, 1)[0], np.triu_indices(9, 1)[1]] == 0)
    # the first layer's maps are those of its own attention on norm1(embedding)
    x = m.tok_emb(idx) + m.pos_emb(np.arange(9))
    att = m.blocks[0].self_attn
    att(m.blocks[0].norm1(x), attn_mask=nnlib.functional.causal_mask(9),
        average_attn_weights=False)
    np.testing.assert_allclose(maps[0], att.attn_weights, rtol=0, atol=1e-14)
    m.clear_cache()


def test_training_with_nnlib_adam_follows_torch():
    """Three Adam steps in nnlib and in torch from the same weights and batches
    (float64): the weights stay equal."""
    rng = np.random.default_rng(8)
    m = small()
    twin = torch_twin(m)
    opt = nnlib.Adam(m.parameters(), lr=1e-2)
    topt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    ce = nnlib.CrossEntropyLoss()
    losses = []
    for _ in range(3):
        x, y = rng.integers(0, V, (4, 8)), rng.integers(0, V, (4, 8))
        m.zero_grad()
        s = m(x)
        losses.append(ce(s.reshape(-1, V), y.reshape(-1)))
        m.backward(ce.backward().reshape(s.shape))
        opt.step()
        st = twin(torch.from_numpy(x))
        lt = torch.nn.functional.cross_entropy(st.reshape(-1, V), torch.from_numpy(y).reshape(-1))
        topt.zero_grad()
        lt.backward()
        topt.step()
        assert abs(losses[-1] - lt.item()) < 1e-10
    state = twin.state_dict()
    worst = max(np.abs(p.data - state[n].numpy()).max() for n, p in m.named_parameters())
    assert worst < 1e-10


def test_save_load_round_trip(tmp_path):
    m, other = small(seed=0), small(seed=1)
    m.save(tmp_path / "w.npz")
    other.load(tmp_path / "w.npz")
    idx = np.array([[1, 2, 3]])
    with nnlib.no_grad():
        np.testing.assert_array_equal(m(idx), other(idx))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(d_model=10, nhead=3), ValueError, "divisible by nhead"),
    (dict(positions="rotary"), ValueError, "positions 'learned' or 'sinusoidal'"),
    (dict(d_model=9, nhead=3, positions="sinusoidal"), ValueError, "even d_model"),
    (dict(max_len=0), ValueError, "max_len to be a positive integer, got 0"),
    (dict(num_layers=1.5), ValueError, "num_layers to be a positive integer"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        small(**kwargs)


def test_input_errors():
    m = small()
    with pytest.raises(ValueError, match=r"positions for max_len=24 tokens, got 30"):
        m(np.zeros((1, 30), dtype=int))
    with pytest.raises(ValueError, match=r"shape \(N, T\)"):
        m(np.zeros(5, dtype=int))
    with pytest.raises(TypeError, match="integer array of token ids"):
        m(np.zeros((1, 5)))
    with pytest.raises(IndexError, match=r"ids in \[0, 11\), got 11"):
        m(np.array([[1, 11]]))
    with pytest.raises(ValueError, match="temperature > 0, got 0"):
        m.generate(np.array([1]), 3, temperature=0)
    with pytest.raises(ValueError, match=r"prime of 20 plus n=10 new ones \(30\)"):
        m.generate(np.arange(20) % V, 10)
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        m.generate(np.array([], dtype=int), 3)
    with pytest.raises(ValueError, match="n >= 0"):
        m.generate(np.array([1]), -1)
    cache = m.new_cache(1)
    m.extend(np.zeros((1, 20), dtype=int), cache)
    with pytest.raises(ValueError, match="got 25 .T=5 after 20 cached"):
        m.extend(np.zeros((1, 5), dtype=int), cache)
    with pytest.raises(ValueError, match="expected 1 sequences"):
        m.extend(np.zeros((2, 1), dtype=int), cache)
    with pytest.raises(TypeError, match="expected a KVCache"):
        m.extend(np.zeros((1, 1), dtype=int), {})
    assert isinstance(cache, KVCache)
    with pytest.raises(RuntimeError, match="before forward"):
        small().backward(np.zeros((1, 3, V)))


def test_windowed_loss():
    """With one window it is the plain mean cross-entropy; with smaller
    windows every target is scored once, with the context the docs say."""
    from nnlib.transformer_lm import windowed_loss
    rng = np.random.default_rng(9)
    m = small()
    ids = rng.integers(0, V, 20)
    ce = nnlib.CrossEntropyLoss()
    with nnlib.no_grad():
        full = ce(m(ids[None, :-1])[0], ids[1:])
        score = lambda x: m(x)         # noqa: E731
        assert abs(windowed_loss(score, ids, 24) - full) < 1e-12
        # a scorer that reports its context length shows which window scored what
        seen = []

        def context(x):
            seen.append(x.shape)
            return np.zeros(x.shape + (V,))
        assert abs(windowed_loss(context, ids, 8, stride=3) - np.log(V)) < 1e-12
        assert all(s[1] == 8 for s in seen)
        ws = windowed_loss(score, ids, 8, stride=3)
        # by hand: windows start at 0, 3, 6, 9 and 11 (flush with the end);
        # each target is scored by the first window that covers it
        logp = []
        scored = 0
        for s in [0, 3, 6, 9, 11]:
            z = m(ids[None, s:s + 8])[0]
            z = z - z.max(-1, keepdims=True)
            lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            for i in range(8):
                if s + i >= scored:
                    logp.append(lp[i, ids[s + i + 1]])
            scored = s + 8
        assert len(logp) == 19
        by_hand = -np.mean(logp)
        assert abs(ws - by_hand) < 1e-12 and abs(ws - full) > 1e-6
    with pytest.raises(ValueError, match="stride <= window"):
        windowed_loss(score, ids, 4, stride=5)
    with pytest.raises(ValueError, match="at least 2 token ids"):
        windowed_loss(score, ids[:1], 4)


def test_attention_figures_static_twin_and_panel():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnlib.viz.attention_maps import (attention_explorer, attention_grid,
                                          draw_attention)
    m = small()
    text = "def f(x):\n  return x"
    ids = np.array([[ord(c) % V for c in text]])
    maps = m.attention_maps(ids)[:, 0]                 # (L, H, T, T)
    fig = attention_grid(maps, text)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels][:4] == [
        "layer 1, head 1", "layer 1, head 2", "layer 1, head 3", "layer 2, head 1"]
    assert len(panels) == 6
    np.testing.assert_array_equal(panels[4].images[0].get_array(), maps[1, 1])
    assert panels[3].get_xlabel() == "key position j" and panels[3].get_ylabel()
    plt.close(fig)
    fig, ax = plt.subplots()
    draw_attention(maps[0, 0], text, query=5, ax=ax)
    assert len(ax.patches) == 1 and ax.get_xticklabels()[3].get_text() == "␣"
    plt.close(fig)
    panel = attention_explorer(maps, text)
    assert [c.description for c in panel.children[0].children] == ["layer", "head",
                                                                   "query i"]
    with pytest.raises(ValueError, match=r"expected 20 characters .* got 3"):
        attention_grid(maps, "abc")
    with pytest.raises(ValueError, match=r"shape \(L, H, T, T\)"):
        attention_explorer(maps[0], text)
    with pytest.raises(ValueError, match="0 <= query < 20, got 20"):
        draw_attention(maps[0, 0], text, query=20)


def test_embedding_initialisation():
    m = CharTransformer(96, rng=np.random.default_rng(0))
    for table in (m.tok_emb.weight.data, m.pos_emb.weight.data):
        assert abs(table.std() - 0.02) < 0.001 and abs(table.mean()) < 0.001
    m.reset_parameters(np.random.default_rng(1))
    assert abs(m.tok_emb.weight.data.std() - 0.02) < 0.001
    with pytest.raises(ValueError, match="embed_std > 0, got 0"):
        small(embed_std=0)


def test_dropout_only_in_training_and_never_in_generation():
    rng = np.random.default_rng(10)
    m = small(dropout=0.3)
    idx = rng.integers(0, V, (2, 8))
    with nnlib.no_grad():
        a, b = m(idx), m(idx)
    assert np.abs(a - b).max() > 1e-6                 # training mode: dropout
    x, la = m.generate(idx[0, :3], 6, rng=np.random.default_rng(0), return_logits=True)
    y, lb = m.generate(idx[0, :3], 6, rng=np.random.default_rng(0), use_cache=False,
                       return_logits=True)
    assert np.array_equal(x, y) and np.abs(la - lb).max() < 1e-10
    assert m.training and m.blocks[0].dropout1.training   # mode restored
    m.eval()
    twin = torch_twin(m)                      # evaluation mode: torch agrees
    with nnlib.no_grad():
        ours = m(idx)
    np.testing.assert_allclose(ours, twin(torch.from_numpy(idx)).detach().numpy(),
                               rtol=1e-8, atol=1e-10)
