"""Attention against PyTorch in float64: the functional scaled dot-product
attention, MultiheadAttention (self and cross, every mask, averaged and
per-head weights, every gradient) and TransformerEncoderLayer (post- and
pre-norm, relu and gelu, with masks); a causality check with its positive
control; central-difference gradient checks with masks; error messages.

``compare_with_torch`` only drives single-input self-attention, so these
comparisons call torch's modules by hand with autograd."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib
from nnlib import functional as F
from nnlib.layers import MultiheadAttention, TransformerEncoderLayer
from nnlib.testing import ATOL, GRADCHECK_TOL, RTOL, numerical_vjp, rel_error, torch_twin

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.layers

MASKS = ["none", "causal_bool", "is_causal", "padding", "both", "float"]


# --- helpers ---------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_fast_path(monkeypatch):
    """torch's fused inference kernels must not run in any comparison here (they
    only do in eval mode under no_grad; the inputs here require grad): a call
    to one fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch took its MHA/encoder fast path")
    monkeypatch.setattr(torch, "_native_multi_head_attention", refuse)
    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", refuse)


def tt(x, grad=False):
    if x is None:
        return None
    if x.dtype == np.bool_:
        return torch.from_numpy(x.copy())
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    err = np.abs(ours - theirs)
    excess = err - (ATOL + RTOL * np.abs(theirs))
    assert not (excess > 0).any(), f"{what}: max |error| {err.max():.3e} beyond tolerance"


def torch_mha(m):
    """torch.nn.MultiheadAttention with m's weights, float64."""
    t = torch.nn.MultiheadAttention(m.embed_dim, m.num_heads, bias=m.in_proj_bias is not None,
                                    batch_first=True).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return t


def randomize(module, g):
    """Non-default values for every parameter (biases start at 0, norms at 1)."""
    for _, p in module.named_parameters():
        p.data[...] = g.standard_normal(p.shape) * (0.5 if p.data.ndim == 1 else 1.0)


def padding_mask(g, n, t_k):
    """(N, T_k) bool, True at the last p_n keys, p_n < T_k: key 0 is never padding,
    so no query is fully masked even under a causal mask."""
    pad = g.integers(0, t_k, n)
    return np.arange(t_k)[None, :] >= (t_k - pad)[:, None]


def masks_for(kind, g, n, t_q, t_k, heads):
    """nnlib's (key_padding_mask, attn_mask, is_causal) and torch's, for ``kind``."""
    causal = F.causal_mask(t_q, t_k)
    kpm = padding_mask(g, n, t_k) if kind in ("padding", "both", "float") else None
    if kind == "none" or kind == "padding":
        return (kpm, None, False), (kpm, None, False)
    if kind == "causal_bool":
        return (kpm, causal, False), (kpm, causal, False)
    if kind == "is_causal":       # nnlib builds the mask; torch needs it as well as the hint
        return (kpm, None, True), (kpm, causal, True)
    if kind == "both":
        return (kpm, causal, True), (kpm, causal, True)
    # float: an additive (N*H, T_q, T_k) mask, the padding as a float mask too
    am = g.standard_normal((n * heads, t_q, t_k))
    fk = np.where(kpm, -np.inf, 0.0)
    return (fk, am, False), (fk, am, False)


@st.composite
def mha_cases(draw, cross):
    heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n, t_q = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    t_k = draw(st.integers(1, 5)) if cross else t_q
    g = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    m = MultiheadAttention(heads * head_dim, heads, bias=draw(st.booleans()), rng=g)
    randomize(m, g)
    return m, g, n, t_q, t_k


def run_mha_pair(m, g, n, t_q, t_k, kind, cross, average=True):
    """Our MHA and torch's on the same inputs and upstream gradient: compare
    output, weights, input gradients and every parameter gradient."""
    E, H = m.embed_dim, m.num_heads
    q = g.standard_normal((n, t_q, E))
    k, v = (g.standard_normal((n, t_k, E)), g.standard_normal((n, t_k, E))) if cross \
        else (None, None)
    (kpm, am, causal), (tkpm, tam, tcausal) = masks_for(kind, g, n, t_q, t_k, H)

    m.zero_grad()
    y = m.forward(q, k, v, key_padding_mask=kpm, attn_mask=am, is_causal=causal,
                  average_attn_weights=average)
    weights = m.attn_weights
    up = g.standard_normal(y.shape)
    grads = m.backward(up)
    grads = grads if cross else (grads,)

    twin = torch_mha(m)
    tq = tt(q, True)
    tk, tv = (tt(k, True), tt(v, True)) if cross else (tq, tq)
    # need_weights=True is torch's explicit path; False goes through F.sdpa
    for need in (True, False):
        twin.zero_grad()
        for t in (tq, tk, tv):
            t.grad = None
        ty, tw = twin(tq, tk, tv, key_padding_mask=tt(tkpm), attn_mask=tt(tam),
                      is_causal=tcausal, need_weights=need, average_attn_weights=average)
        ty.backward(tt(up))
        assert_close(y, ty, f"output ({kind}, need_weights={need})")
        if need:
            assert_close(weights, tw, f"attention weights ({kind}, average={average})")
        for name, ours, t in zip(("dquery", "dkey", "dvalue"), grads,
                                 (tq, tk, tv) if cross else (tq,)):
            assert_close(ours, t.grad, f"{name} ({kind})")
        tparams = dict(twin.named_parameters())
        for name, p in m.named_parameters():
            assert_close(p.grad, tparams[name].grad, f"grad {name} ({kind})")
    assert m.pending_backward == 0


# --- functional scaled dot-product attention ------------------------------------
@settings(max_examples=30)
@given(lead=st.sampled_from([(1,), (3,), (2, 3)]), t_q=st.integers(1, 5),
       t_k=st.integers(1, 5), d=st.integers(1, 4), d_v=st.integers(1, 4),
       kind=st.sampled_from(["none", "bool", "float", "causal"]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_sdpa_matches_torch(lead, t_q, t_k, d, d_v, kind, seed):
    g = np.random.default_rng(seed)
    q, k = g.standard_normal((*lead, t_q, d)), g.standard_normal((*lead, t_k, d))
    v = g.standard_normal((*lead, t_k, d_v))
    ours_mask, theirs = None, {}
    if kind == "bool":      # random, with one key left unmasked in every row
        ours_mask = g.random((t_q, t_k)) < 0.5
        ours_mask[np.arange(t_q), g.integers(0, t_k, t_q)] = False
        theirs = {"attn_mask": tt(~ours_mask)}     # torch's F.sdpa: True = may attend
    elif kind == "float":
        ours_mask = g.standard_normal((*lead, t_q, t_k))
        theirs = {"attn_mask": tt(ours_mask)}
    elif kind == "causal":
        ours_mask = F.causal_mask(t_q, t_k)
        theirs = {"is_causal": True}
    out, cache = F.scaled_dot_product_attention_forward(q, k, v, ours_mask)
    up = g.standard_normal(out.shape)
    dq, dk, dv = F.scaled_dot_product_attention_backward(up, cache)

    tq, tk, tv = tt(q, True), tt(k, True), tt(v, True)
    tout = TF.scaled_dot_product_attention(tq, tk, tv, **theirs)
    tout.backward(tt(up))
    assert_close(out, tout, "output")
    for name, ours, t in (("dq", dq, tq), ("dk", dk, tk), ("dv", dv, tv)):
        assert_close(ours, t.grad, name)
    # the weights the cache exposes: softmax of the masked scores
    s = tq.detach() @ tk.detach().transpose(-1, -2) / np.sqrt(d)
    if kind in ("bool", "causal"):
        s = s.masked_fill(tt(ours_mask), float("-inf"))
    elif kind == "float":
        s = s + tt(ours_mask)
    assert_close(cache.weights, torch.softmax(s, -1), "weights")
    assert np.allclose(cache.weights.sum(-1), 1.0)


def test_sdpa_bool_mask_means_may_not_attend():
    """True blocks a pair; handing the same mask to torch's F.sdpa un-inverted
    gives a different answer (the conventions are opposite)."""
    g = np.random.default_rng(0)
    q, k, v = (g.standard_normal((1, 3, 2)) for _ in range(3))
    mask = np.array([[False, True, True], [False, False, True], [True, False, False]])
    out, cache = F.scaled_dot_product_attention_forward(q, k, v, mask)
    assert np.all(cache.weights[0][mask] == 0.0) and np.all(cache.weights[0][~mask] > 0)
    assert_close(out, TF.scaled_dot_product_attention(tt(q), tt(k), tt(v),
                                                       attn_mask=tt(~mask)), "inverted")
    wrong = TF.scaled_dot_product_attention(tt(q), tt(k), tt(v), attn_mask=tt(mask)).numpy()
    assert np.abs(out - wrong).max() > 1e-3


def test_causal_mask():
    assert F.causal_mask(3).tolist() == [[False, True, True], [False, False, True],
                                         [False, False, False]]
    assert F.causal_mask(2, 4).tolist() == [[False, True, True, True],
                                            [False, False, True, True]]
    # torch's is_causal: ones(L, S).tril() is the allowed set
    assert np.array_equal(~F.causal_mask(3, 5), torch.ones(3, 5).tril().bool().numpy())
    assert "causal_mask" in F.__all__ and "scaled_dot_product_attention_forward" in F.__all__
    with pytest.raises(ValueError, match="T to be a positive integer, got 0"):
        F.causal_mask(0)


def test_sdpa_fully_masked_row_is_an_error():
    g = np.random.default_rng(1)
    q, k, v = (g.standard_normal((2, 3, 2)) for _ in range(3))
    mask = np.zeros((2, 3, 3), dtype=bool)
    mask[1, 2] = True
    with pytest.raises(ValueError, match=r"every key is masked for query row \(1, 2\)"):
        F.scaled_dot_product_attention_forward(q, k, v, mask)
    fmask = np.zeros((3, 3))
    fmask[0] = -np.inf
    with pytest.raises(ValueError, match=r"query row \(0, 0\).*2 such row"):
        F.scaled_dot_product_attention_forward(q, k, v, fmask)
    with pytest.raises(TypeError, match="bool mask .* or a float additive mask, got dtype int"):
        F.scaled_dot_product_attention_forward(q, k, v, np.zeros((3, 3), dtype=int))


# --- MultiheadAttention against torch -----------------------------------------------
@pytest.mark.parametrize("kind", MASKS)
@settings(max_examples=20)
@given(case=mha_cases(cross=False))
def test_mha_self_attention_matches_torch(kind, case):
    run_mha_pair(*case, kind=kind, cross=False)


@pytest.mark.parametrize("kind", MASKS)
@settings(max_examples=20)
@given(case=mha_cases(cross=True), average=st.booleans())
def test_mha_cross_attention_matches_torch(kind, case, average):
    run_mha_pair(*case, kind=kind, cross=True, average=average)


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("E, H, n, t_q, t_k", [
    (3, 3, 1, 3, 5),      # batch 1, head dim 1, odd lengths, T_q != T_k
    (1, 1, 1, 1, 1),      # everything 1
    (4, 4, 2, 5, 3),      # head dim 1, T_q > T_k
    (6, 2, 1, 7, 7),
])
@pytest.mark.parametrize("cross", [False, True])
def test_mha_edge_cases_match_torch(kind, E, H, n, t_q, t_k, cross):
    g = np.random.default_rng(E * 100 + t_q * 10 + t_k)
    m = MultiheadAttention(E, H, rng=g)
    randomize(m, g)
    run_mha_pair(m, g, n, t_q, t_k if cross else t_q, kind, cross, average=cross)


def test_mha_reused_twice_matches_torch(rng):
    """The same module applied twice before its backward (the cache stack):
    the registered twin, applied twice, agrees."""
    m = MultiheadAttention(4, 2, rng=rng)
    randomize(m, rng)
    x = rng.standard_normal((2, 3, 4))
    y = m.forward(m.forward(x))
    up = rng.standard_normal(y.shape)
    m.zero_grad()
    dx = m.backward(m.backward(up))
    twin = torch_twin(m)
    tx = tt(x, True)
    ty = twin(twin(tx))
    ty.backward(tt(up))
    assert_close(y, ty, "output")
    assert_close(dx, tx.grad, "dx")
    tparams = dict(twin.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tparams[name].grad, f"grad {name}")


def test_mha_parameters_and_init_follow_torch(rng):
    E = 64
    m = MultiheadAttention(E, 8, rng=rng)
    t = torch.nn.MultiheadAttention(E, 8, batch_first=True)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                    "out_proj.bias"]
    assert not m.in_proj_bias.data.any() and not m.out_proj.bias.data.any()
    a = np.sqrt(6.0 / (E + 3 * E))          # xavier_uniform on (3E, E)
    w = m.in_proj_weight.data
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.95 * a
    assert abs(w.std() - a / np.sqrt(3)) < 0.05 * a
    b = 1.0 / np.sqrt(E)                   # out_proj: Linear's U(-1/sqrt(E), 1/sqrt(E))
    assert np.abs(m.out_proj.weight.data).max() <= b
    assert np.abs(m.out_proj.weight.data).max() > 0.95 * b
    # torch's own init has the same bounds (its float32 draws may round past them
    # by one float32 ulp)
    with torch.no_grad():
        assert float(t.in_proj_weight.abs().max()) <= a * (1 + 1e-6)
        assert float(t.out_proj.weight.abs().max()) <= b * (1 + 1e-6)
    nb = MultiheadAttention(4, 2, bias=False, rng=rng)
    assert list(nb.state_dict()) == list(torch.nn.MultiheadAttention(
        4, 2, bias=False, batch_first=True).state_dict()) == ["in_proj_weight",
                                                              "out_proj.weight"]


def test_mha_attention_weights(rng):
    m = MultiheadAttention(6, 3, rng=rng)
    q, k = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 5, 6))
    m.forward(q, k, k)
    assert m.attn_weights.shape == (2, 4, 5)
    assert np.allclose(m.attn_weights.sum(-1), 1.0)
    m.forward(q, k, k, average_attn_weights=False)
    assert m.attn_weights.shape == (2, 3, 4, 5)
    m.forward(q, need_weights=False)
    assert m.attn_weights is None
    m.clear_cache()


def test_fully_masked_query_is_an_error_not_nan(rng):
    """A batch element that is all padding: torch gives NaN (need_weights=True)
    or silently zeros (need_weights=False); nnlib names the row."""
    m = MultiheadAttention(4, 2, rng=rng)
    x = rng.standard_normal((2, 3, 4))
    kpm = np.array([[False, False, True], [True, True, True]])
    with pytest.raises(ValueError, match="query position 0 of batch element 1 .*all 3 keys"):
        m.forward(x, key_padding_mask=kpm)
    twin = torch_mha(m)
    out, _ = twin(tt(x), tt(x), tt(x), key_padding_mask=tt(kpm))
    assert torch.isnan(out[1]).all() and not torch.isnan(out[0]).any()
    out, _ = twin(tt(x), tt(x), tt(x), key_padding_mask=tt(kpm), need_weights=False)
    assert not torch.isnan(out).any()
    # causal + padding of key 0: query 0 has nothing left
    kpm = np.array([[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match="query position 0 of batch element 0"):
        m.forward(x, key_padding_mask=kpm, is_causal=True)
    fm = np.zeros((3, 3))
    fm[2] = -np.inf
    with pytest.raises(ValueError, match="query position 2 of batch element 0"):
        m.forward(x, attn_mask=fm)
    assert m.pending_backward == 0


# --- causality -------------------------------------------------------------------
def _perturbed_outputs(f, x, t, rng):
    x2 = x.copy()
    x2[:, t] += rng.standard_normal(x2[:, t].shape)
    with nnlib.no_grad():
        return f(x), f(x2)


@pytest.mark.parametrize("layer", ["mha", "encoder_post", "encoder_pre"])
@pytest.mark.parametrize("t", [1, 3, 4])
def test_causal_mask_hides_the_future(layer, t, rng):
    """With a causal mask, changing x at position t leaves every output before
    t unchanged; without the mask the same change moves them (the positive
    control: the check can fail)."""
    if layer == "mha":
        m = MultiheadAttention(6, 2, rng=rng)
        masked = lambda z: m.forward(z, is_causal=True)                  # noqa: E731
        unmasked = lambda z: m.forward(z)                                # noqa: E731
    else:
        m = TransformerEncoderLayer(6, 2, 8, norm_first=layer == "encoder_pre", rng=rng)
        masked = lambda z: m.forward(z, src_mask=F.causal_mask(5))       # noqa: E731
        unmasked = lambda z: m.forward(z)                                # noqa: E731
    x = rng.standard_normal((2, 5, 6))      # default init: no saturated softmax
    before, after = _perturbed_outputs(masked, x, t, rng)
    np.testing.assert_allclose(after[:, :t], before[:, :t], rtol=0, atol=1e-13)
    assert np.abs(after[:, t] - before[:, t]).max() > 1e-3       # position t itself moves
    before, after = _perturbed_outputs(unmasked, x, t, rng)
    # every earlier position moves (in some example and feature)
    assert np.abs(after[:, :t] - before[:, :t]).max(axis=(0, 2)).min() > 1e-3


# --- TransformerEncoderLayer against torch --------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("kind", ["none", "padding", "causal", "both"])
@settings(max_examples=10)
@given(size=st.sampled_from([(3, 1), (3, 3), (4, 2), (6, 3), (8, 4)]),
       n=st.integers(1, 3), t=st.integers(1, 5), ff=st.integers(1, 6), bias=st.booleans(),
       mode=st.sampled_from(["train", "eval"]), seed=st.integers(0, 2 ** 32 - 1))
def test_encoder_layer_matches_torch(norm_first, activation, kind, size, n, t, ff, bias,
                                     mode, seed):
    g = np.random.default_rng(seed)
    d, heads = size
    # dropout > 0 only in eval mode (the identity in both libraries)
    m = TransformerEncoderLayer(d, heads, ff, dropout=0.1 if mode == "eval" else 0.0,
                                activation=activation, norm_first=norm_first, bias=bias,
                                rng=g)
    randomize(m, g)
    m.train(mode == "train")
    x = g.standard_normal((n, t, d))
    kpm = padding_mask(g, n, t) if kind in ("padding", "both") else None
    src_mask = F.causal_mask(t) if kind in ("causal", "both") else None
    causal = src_mask is not None

    twin = torch_twin(m)
    assert list(twin.state_dict()) == list(m.state_dict())      # names and order
    assert twin.training == m.training
    y = m.forward(x, src_mask=src_mask, src_key_padding_mask=kpm, is_causal=causal)
    up = g.standard_normal(y.shape)
    m.zero_grad()
    dx = m.backward(up)
    tx = tt(x, True)
    ty = twin(tx, src_mask=tt(src_mask), src_key_padding_mask=tt(kpm), is_causal=causal)
    ty.backward(tt(up))
    assert_close(y, ty, "output")
    assert_close(dx, tx.grad, "dsrc")
    tparams = dict(twin.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tparams[name].grad, f"grad {name}")
    assert all(mod.pending_backward == 0 for _, mod in m.named_modules())


def test_encoder_layer_children_follow_torch(rng):
    m = TransformerEncoderLayer(8, 2, 16, rng=rng)
    t = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    assert list(m.state_dict()) == list(t.state_dict())
    names = [n for n, _ in m._modules.items()]
    assert names[:8] == ["self_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
                         "dropout1", "dropout2"]
    assert list(TransformerEncoderLayer(8, 2, 16, bias=False).state_dict()) == \
        list(torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True,
                                              bias=False).state_dict())


def test_the_fast_path_guard_works():
    """Positive control for ``no_fast_path``: in eval mode under no_grad torch
    does take its fused path, and the guard sees it."""
    layer = torch.nn.TransformerEncoderLayer(4, 2, 8, batch_first=True).double().eval()
    with torch.no_grad(), pytest.raises(AssertionError, match="fast path"):
        layer(torch.zeros(1, 3, 4, dtype=torch.float64))


# --- gradient checks with masks ----------------------------------------------------------
def _gradcheck(m, f, inputs, analytic_inputs, up):
    """Analytic gradients (already accumulated in m) against central differences."""
    errors = {}
    for name, x, dx in zip(("query", "key", "value"), inputs, analytic_inputs):
        errors[name] = rel_error(dx, numerical_vjp(f, x, up))
    analytic = {n: p.grad.copy() for n, p in m.named_parameters()}
    for name, p in m.named_parameters():
        errors[name] = rel_error(analytic[name], numerical_vjp(f, p.data, up))
    bad = {k: v for k, v in errors.items() if not v < GRADCHECK_TOL}
    assert not bad, f"gradient check failed: {bad}"


@pytest.mark.parametrize("kind", ["causal_bool", "is_causal", "padding", "both", "float"])
@pytest.mark.parametrize("cross", [False, True])
def test_mha_gradcheck_with_masks(kind, cross, rng):
    m = MultiheadAttention(4, 2, rng=rng)
    randomize(m, rng)
    n, t_q, t_k = 2, 3, (4 if cross else 3)
    (kpm, am, causal), _ = masks_for(kind, rng, n, t_q, t_k, 2)
    kw = dict(key_padding_mask=kpm, attn_mask=am, is_causal=causal)
    q = rng.standard_normal((n, t_q, 4))
    kv = (rng.standard_normal((n, t_k, 4)), rng.standard_normal((n, t_k, 4))) if cross else ()
    y = m.forward(q, *kv, **kw)
    up = rng.standard_normal(y.shape)
    m.zero_grad()
    grads = m.backward(up)
    grads = grads if cross else (grads,)

    def f(_):
        with nnlib.no_grad():
            return m.forward(q, *kv, **kw)
    _gradcheck(m, f, (q, *kv), grads, up)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_gradcheck_with_masks(norm_first, activation, rng):
    m = TransformerEncoderLayer(4, 2, 5, activation=activation, norm_first=norm_first,
                                rng=rng)
    randomize(m, rng)
    x = rng.standard_normal((2, 4, 4))
    kw = dict(src_mask=F.causal_mask(4), src_key_padding_mask=padding_mask(rng, 2, 4),
              is_causal=True)
    y = m.forward(x, **kw)
    up = rng.standard_normal(y.shape)
    m.zero_grad()
    dx = m.backward(up)

    def f(_):
        with nnlib.no_grad():
            return m.forward(x, **kw)
    _gradcheck(m, f, (x,), (dx,), up)


# --- error messages ------------------------------------------------------------------
def test_constructor_errors():
    with pytest.raises(ValueError, match="embed_dim to be divisible by num_heads, got "
                                         "embed_dim=6 and num_heads=4"):
        MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="num_heads to be a positive integer, got 0"):
        MultiheadAttention(6, 0)
    with pytest.raises(ValueError, match="only batch_first=True"):
        MultiheadAttention(4, 2, batch_first=False)
    with pytest.raises(ValueError, match="expected dropout=0.0, got 0.1"):
        MultiheadAttention(4, 2, dropout=0.1)
    with pytest.raises(TypeError, match="bias to be True or False, got 0.1"):
        MultiheadAttention(4, 2, 0.1)            # torch's positional dropout
    with pytest.raises(ValueError, match="d_model to be divisible by nhead"):
        TransformerEncoderLayer(5, 2)
    with pytest.raises(ValueError, match="activation 'relu' or 'gelu', got 'tanh'"):
        TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(ValueError, match="only batch_first=True"):
        TransformerEncoderLayer(4, 2, batch_first=False)
    with pytest.raises(ValueError, match=r"dropout probability in \[0, 1\), got 1.5"):
        TransformerEncoderLayer(4, 2, dropout=1.5)


def test_forward_errors(rng):
    m = MultiheadAttention(4, 2, rng=rng)
    x = rng.standard_normal((2, 3, 4))
    kv = rng.standard_normal((2, 5, 4))
    cases = [
        (dict(query=x[0]), ValueError, r"query of shape \(N, T_q, 4\) .*got \(3, 4\)"),
        (dict(query=rng.standard_normal((2, 3, 5))), ValueError,
         r"query of shape \(N, T_q, 4\) .*got \(2, 3, 5\)"),
        (dict(query=x, key=kv), ValueError, "both key and value .* got only key"),
        (dict(query=x, key=kv[:1], value=kv[:1]), ValueError,
         r"batch size of query \(2\), got key of shape \(1, 5, 4\)"),
        (dict(query=x, key=kv, value=kv[:, :4]), ValueError,
         r"value of the shape of key \(2, 5, 4\), got \(2, 4, 4\)"),
        (dict(query=x, key=kv, value=kv, attn_mask=np.zeros((5, 3), bool)), ValueError,
         r"attn_mask of shape \(3, 5\) or \(4, 3, 5\), got \(5, 3\)"),
        (dict(query=x, key_padding_mask=np.zeros((3, 2), bool)), ValueError,
         r"key_padding_mask of shape \(2, 3\), got \(3, 2\)"),
        (dict(query=x, attn_mask=np.zeros((3, 3), int)), TypeError,
         "attn_mask to be a bool mask .* got dtype int"),
        (dict(query=x, attn_mask=np.full((3, 3), np.nan)), ValueError,
         "attn_mask with no NaN and no \\+inf"),
        (dict(query=x, is_causal=1), TypeError, "is_causal to be True or False"),
        (dict(query=x.astype(int)), TypeError, "floating dtype"),
    ]
    for kwargs, err, pattern in cases:
        with pytest.raises(err, match=pattern):
            m.forward(**kwargs)
    assert m.pending_backward == 0
    with pytest.raises(RuntimeError, match="called before forward"):
        m.backward(np.zeros((2, 3, 4)))
    m.forward(x)
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 3, 4\), got \(2, 4\)"):
        m.backward(np.zeros((2, 4)))
    enc = TransformerEncoderLayer(4, 2, 8, rng=rng)
    with pytest.raises(ValueError, match=r"src of shape \(N, T, 4\) .*got \(2, 3, 5\)"):
        enc.forward(rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\) or \(4, 3, 3\)"):
        enc.forward(x, src_mask=np.zeros((4, 4), bool))
