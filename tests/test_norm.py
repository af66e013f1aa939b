"""BatchNorm's running statistics and modes, LayerNorm, residual blocks and LoRA,
beyond the registry's one-step comparison with torch."""
import numpy as np
import pytest

import nnlib
from nnlib.testing import torch_twin

pytestmark = pytest.mark.layers


@pytest.mark.parametrize("cls,shape", [(nnlib.BatchNorm1d, (6, 3)),
                                       (nnlib.BatchNorm1d, (4, 3, 5)),
                                       (nnlib.BatchNorm2d, (4, 3, 5, 5))])
def test_batchnorm_running_statistics_follow_torch_over_steps(cls, shape, rng):
    import torch

    bn = cls(3, momentum=0.3)
    twin = torch_twin(bn)
    for _ in range(5):                       # five training batches, then evaluation
        x = 3.0 * rng.standard_normal(shape) + 2.0
        y = bn(x)
        yt = twin(torch.tensor(x))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    bn.clear_cache()
    np.testing.assert_allclose(bn.running_mean, twin.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, twin.running_var.numpy(), rtol=1e-12)
    assert int(bn.num_batches_tracked) == int(twin.num_batches_tracked) == 5
    assert not np.allclose(bn.running_var, 1.0)          # they did move
    bn.eval(), twin.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(bn(x), twin(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    assert list(bn.state_dict()) == list(twin.state_dict())


def test_batchnorm_train_and_eval_differ_and_errors(rng):
    bn = nnlib.BatchNorm1d(2)
    x = rng.standard_normal((8, 2)) * 5
    y_train = bn(x)
    np.testing.assert_allclose(y_train.mean(0), 0, atol=1e-12)     # standardised per feature
    np.testing.assert_allclose(y_train.std(0), 1, atol=1e-3)
    assert not np.allclose(bn.eval()(x), y_train)                 # running stats are not yet x's
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nnlib.BatchNorm1d(2)(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 2\) or \(N, 2, L\), "
                                         r"got \(4, 3\)"):
        nnlib.BatchNorm1d(2)(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="momentum in \\[0, 1\\]"):
        nnlib.BatchNorm2d(2, momentum=None)


def test_layernorm_has_no_batch_dependence(rng):
    ln = nnlib.LayerNorm(4)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(ln(x)[:1], ln(x[:1]), rtol=1e-12)   # batch 1 == row 0
    with pytest.raises(ValueError, match=r"expected x of shape \(\.\.\., 4\)"):
        ln(np.zeros((2, 3)))


def test_residual_passes_gradient_through_the_identity(rng):
    """With a block whose weights are zero, y = x and dL/dx = g exactly."""
    block = nnlib.Linear(3, 3, rng=rng)
    block.weight.data[...] = 0.0
    block.bias.data[...] = 0.0
    res = nnlib.Residual(block)
    x, g = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    np.testing.assert_array_equal(res(x), x)
    np.testing.assert_array_equal(res.backward(g), g)
    with pytest.raises(ValueError, match="must match to be added"):
        nnlib.Residual(nnlib.Linear(3, 2))(x)


def test_lora_starts_at_the_base_and_merges(rng):
    base = nnlib.Linear(6, 4, rng=rng)
    lora = nnlib.LoRALinear(base, r=2, alpha=4.0, rng=rng)
    x = rng.standard_normal((3, 6))
    np.testing.assert_array_equal(lora(x), base(x))        # B = 0: exactly the base
    lora.clear_cache(), base.clear_cache()
    assert lora.num_parameters(trainable_only=True) == 2 * (6 + 4)
    lora.lora_B.data[...] = rng.standard_normal((4, 2))
    np.testing.assert_allclose(lora.merge()(x), lora(x), rtol=1e-12)
    lora.clear_cache()
    y = lora(x)
    lora.zero_grad()
    lora.backward(np.ones_like(y))
    assert not base.weight.grad.any()                     # the base stays frozen
    assert lora.lora_A.grad.any() and lora.lora_B.grad.any()
    with pytest.raises(TypeError, match="expected an nnlib Linear"):
        nnlib.LoRALinear(nnlib.Tanh())
