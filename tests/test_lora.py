"""LoRA on a whole model (``nnlib.layers.lora.apply_lora`` and ``merge_lora``,
section 5f): the adapted CharTransformer against torch in float64, written
the other way round -- torch's Transformer with each target's weight
reparametrised as ``W + (alpha / r) B A`` (``torch.nn.utils.parametrize``),
where nnlib adds a separate low-rank path -- outputs and every A and B
gradient; the frozen weights stay put in training; merging gives the same
model; and the error messages."""
import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

import nnlib
from nnlib.layers.lora import BLOCK_LINEARS, LoRALinear, apply_lora, merge_lora
from nnlib.testing import rel_error, torch_twin
from nnlib.transformer_lm import CharTransformer

pytestmark = pytest.mark.rnn

V = 11


def small(seed=0):
    return CharTransformer(V, d_model=12, nhead=3, num_layers=2, dim_feedforward=20,
                           max_len=24, rng=np.random.default_rng(seed))


class _LowRank(torch.nn.Module):
    """weight -> weight + scale * B @ A (the merged form of the update)."""

    def __init__(self, A, B, scale):
        super().__init__()
        self.A = torch.nn.Parameter(torch.from_numpy(A.copy()))
        self.B = torch.nn.Parameter(torch.from_numpy(B.copy()))
        self.scale = scale

    def forward(self, W):
        return W + self.scale * self.B @ self.A


def _torch_lora(base_twin, adapted, scale=lambda m: m.alpha / m.r):
    """Reparametrise the twin's target weights with the adapted model's A, B
    (``scale``: the factor of B A, alpha / r unless a control breaks it)."""
    for name, m in adapted.named_modules():
        if isinstance(m, LoRALinear):
            layer = base_twin.get_submodule(name)
            parametrize.register_parametrization(
                layer, "weight", _LowRank(m.lora_A.data, m.lora_B.data, scale(m)))
    return base_twin


def test_counts_freezing_and_a_start_at_the_pretrained_model():
    m = small()
    idx = np.random.default_rng(1).integers(0, V, (2, 9))
    with nnlib.no_grad():
        before = m(idx)
    n_all = m.num_parameters()
    trainable = apply_lora(m, r=3, alpha=6.0, rng=np.random.default_rng(2))
    E, f = 12, 20
    per_block = 3 * ((E + E) + (E + f) + (f + E))   # out_proj, linear1, linear2
    assert trainable == 2 * per_block
    assert m.num_parameters() == n_all + trainable
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all(n.endswith(("lora_A", "lora_B")) for n in names)
    assert len(names) == 2 * 2 * len(BLOCK_LINEARS)
    with nnlib.no_grad():
        np.testing.assert_array_equal(m(idx), before)     # B = 0: exactly the base


def _adapted_pair(scale=lambda m: m.alpha / m.r):
    rng = np.random.default_rng(3)
    m = small()
    twin = torch_twin(m)                          # the pretrained weights, float64
    apply_lora(m, r=2, alpha=5.0, rng=rng)
    for name, p in m.named_parameters():          # B away from 0: a real update
        if name.endswith("lora_B"):
            p.data[...] = 0.3 * rng.standard_normal(p.shape)
    twin = _torch_lora(twin, m, scale)
    for p in twin.parameters():
        p.requires_grad_(False)
    for mod in twin.modules():
        if isinstance(mod, _LowRank):
            mod.A.requires_grad_(True), mod.B.requires_grad_(True)
    return m, twin, rng.integers(0, V, (3, 10)), rng


def _disagreement(m, twin, idx, rng):
    """The output's relative error and every A and B gradient's, nnlib
    against the torch twin."""
    y = m(idx)
    G = rng.standard_normal(y.shape)
    m.backward(G)
    yt = twin(torch.from_numpy(idx))
    (yt * torch.from_numpy(G)).sum().backward()
    theirs = dict(twin.named_parameters())
    worst = {}
    for name, p in m.named_parameters():
        if p.requires_grad:
            layer, which = name.rsplit(".", 1)
            t = theirs[f"{layer}.parametrizations.weight.0.{which[-1]}"].grad.numpy()
            worst[name] = rel_error(p.grad, t)
        else:
            assert not p.grad.any(), f"{name} is frozen but got a gradient"
    assert len(worst) == 2 * 2 * len(BLOCK_LINEARS)
    return rel_error(y, yt.detach().numpy()), worst


def test_adapted_model_matches_a_torch_reparametrisation():
    out, worst = _disagreement(*_adapted_pair())
    assert out < 1e-10
    bad = {n: e for n, e in worst.items() if not e < 1e-8}
    assert not bad, f"LoRA gradients differing from torch's: {bad}"


def test_the_comparison_sees_a_wrongly_scaled_update():
    """The control: a twin whose update is scaled by alpha instead of
    alpha / r (the mistake of forgetting the rank) fails both comparisons."""
    out, worst = _disagreement(*_adapted_pair(scale=lambda m: m.alpha))
    assert out > 1e-3
    assert all(e > 1e-3 for e in worst.values())


def test_training_moves_only_the_adapters_and_merging_keeps_the_model():
    rng = np.random.default_rng(4)
    m = small()
    frozen = {n: p.data.copy() for n, p in m.named_parameters()}
    apply_lora(m, r=2, alpha=2.0, targets=("linear1", "blocks.0.self_attn.out_proj"),
               rng=rng)
    assert isinstance(m.blocks[0].self_attn.out_proj, LoRALinear)
    assert not isinstance(m.blocks[1].self_attn.out_proj, LoRALinear)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = nnlib.Adam(params, lr=1e-2)
    ce = nnlib.CrossEntropyLoss()
    idx = rng.integers(0, V, (4, 12))
    for _ in range(3):
        scores = m(idx[:, :-1])
        ce(scores.reshape(-1, V), idx[:, 1:].reshape(-1))
        m.zero_grad()
        m.backward(ce.backward().reshape(scores.shape))
        opt.step()
    for n, p in m.named_parameters():
        if not p.requires_grad:
            key = n.replace(".base.", ".")
            np.testing.assert_array_equal(p.data, frozen[key])
    with nnlib.no_grad():
        adapted = m(idx)
    assert merge_lora(m) == 3
    assert not any(isinstance(x, LoRALinear) for _, x in m.named_modules())
    assert sorted(n for n, _ in m.named_parameters()) == sorted(frozen)
    assert m.num_parameters(trainable_only=True) == 0    # frozen as the bases were
    with nnlib.no_grad():
        merged = m(idx)
        plain = small()
        plain.load_state_dict(m.state_dict())
        np.testing.assert_allclose(merged, adapted, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(plain(idx), merged)
    assert np.abs(merged - small()(idx)).max() > 1e-6     # it did change the model


def test_errors_name_what_was_expected():
    m = small()
    with pytest.raises(ValueError, match=r"target 'qkv' names no layer.*Linear layers "
                                         r"are \['blocks.0.self_attn.out_proj'"):
        apply_lora(m, r=2, targets=("qkv",))
    with pytest.raises(TypeError, match="expected target 'norm1' to name Linear layers, "
                                        "got 'blocks.0.norm1', a LayerNorm"):
        apply_lora(m, r=2, targets=("norm1",))
    with pytest.raises(ValueError, match="non-empty sequence of layer names"):
        apply_lora(m, r=2, targets="linear1")
    with pytest.raises(ValueError, match="positive integer, got 0"):
        apply_lora(m, r=0)
    with pytest.raises(ValueError, match="alpha > 0, got -1"):
        apply_lora(m, r=2, alpha=-1)
    with pytest.raises(TypeError, match="nnlib Module, got dict"):
        apply_lora({}, r=2)
    with pytest.raises(ValueError, match="with LoRALinear layers"):
        merge_lora(m)
    assert m.num_parameters(trainable_only=True) == m.num_parameters()  # untouched
    apply_lora(m, r=2)
    with pytest.raises(TypeError, match="got 'blocks.0.linear1', a LoRALinear"):
        apply_lora(m, r=2, targets=("linear1",))
    with pytest.raises(TypeError, match="call its merge"):
        merge_lora(m.blocks[0].linear1)
