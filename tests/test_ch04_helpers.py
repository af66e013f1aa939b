"""nnlib.models.conv_stack and nnlib.train.final_train_loss (chapter 4b's
convolutional degradation experiment)."""
import numpy as np
import pytest

import nnlib
from nnlib.testing import compare_with_torch
from nnlib.train import evaluate_loss, final_train_loss

pytestmark = pytest.mark.cnn


def _params(net):
    return [p.data.copy() for p in net.parameters()]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_conv_stack_shapes_and_twins(depth):
    rng = np.random.default_rng(depth)
    x = rng.standard_normal((6, 1, 8, 8))
    for residual in (False, True):
        net = nnlib.models.conv_stack(depth, residual, width=4,
                                      rng=np.random.default_rng(0))
        assert net.forward(x).shape == (6, 10)
        report = compare_with_torch(net.train(), x, rng=np.random.default_rng(1))
        assert report.ok(), report.violations


def test_plain_and_residual_share_parameters():
    plain = nnlib.models.conv_stack(3, False, rng=np.random.default_rng(5))
    res = nnlib.models.conv_stack(3, True, rng=np.random.default_rng(5))
    a, b = _params(plain), _params(res)
    assert len(a) == len(b) == 2 + 3 * 4 + 2 + 2   # stem, blocks, BN, head
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    # one block per depth step: 8 * (8 * 9 + 1) conv + 2 * 8 batch norm
    assert res.num_parameters() - nnlib.models.conv_stack(2, True).num_parameters() \
        == 8 * (8 * 9 + 1) + 2 * 8


def test_residual_with_zero_blocks_is_the_shallow_network():
    """A residual block whose last conv is zero is the identity: the network
    then computes what the 0-block network with the same stem and head does."""
    x = np.random.default_rng(2).standard_normal((5, 1, 8, 8))
    res = nnlib.models.conv_stack(4, True, rng=np.random.default_rng(3))
    shallow = nnlib.models.conv_stack(0, True, rng=np.random.default_rng(4))
    for i in range(2, 6):                       # the residual blocks
        conv = res[i].block[2]
        conv.weight.data[...] = 0.0
        conv.bias.data[...] = 0.0
    for src, dst in ((res[0], shallow[0]), (res[-1], shallow[-1])):
        dst.weight.data[...] = src.weight.data
        dst.bias.data[...] = src.bias.data
    assert np.allclose(res.forward(x), shallow.forward(x), atol=1e-12)
    plain = nnlib.models.conv_stack(4, False, rng=np.random.default_rng(3))
    assert not np.allclose(plain.forward(x), shallow.forward(x), atol=1e-3)


def test_conv_stack_rejects_bad_sizes():
    with pytest.raises(ValueError, match="depth"):
        nnlib.models.conv_stack(-1, True)
    with pytest.raises(ValueError, match="width"):
        nnlib.models.conv_stack(2, True, width=0)


def test_final_train_loss_trains_and_is_reproducible():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 8, 8))
    y = rng.integers(0, 10, 64)

    def run(lr):
        net = nnlib.models.conv_stack(1, True, rng=np.random.default_rng(0))
        before = evaluate_loss(net, nnlib.CrossEntropyLoss(), X, y)
        return before, final_train_loss(net, X, y, lr, epochs=15, batch_size=16, seed=1), net

    before, after, net = run(3e-2)
    assert after < 0.5 * before, (before, after)
    assert not net.training                       # left in evaluation mode
    assert run(3e-2)[1] == after                  # same seed, same number
    assert run(1e-2)[1] != after


def test_recompute_bn_stats_sets_the_statistics_of_all_of_X():
    """After training, each batch-norm layer's running statistics become the
    mean and unbiased variance of its own input over all of X (computed here
    layer by layer in evaluation mode, with the layers below already
    re-estimated); no parameter changes, the momentum is restored, and the
    model is left in evaluation mode."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 1, 8, 8))
    y = rng.integers(0, 10, 48)
    net = nnlib.models.conv_stack(2, False, rng=np.random.default_rng(0))
    stale = final_train_loss(net, X, y, 3e-2, epochs=3, batch_size=16, seed=1)
    before = _params(net)
    bn_layers = [m for _, m in net.named_modules()
                 if isinstance(m, nnlib.BatchNorm2d)]
    old_mean = [m.running_mean.copy() for m in bn_layers]
    nnlib.train.recompute_bn_stats(net, X)
    assert not net.training
    assert all(np.array_equal(u, v) for u, v in zip(before, _params(net)))
    assert all(m.momentum == 0.1 for m in bn_layers)
    h, seen = X, 0

    def walk(module, h):
        nonlocal seen
        if isinstance(module, nnlib.BatchNorm2d):
            m = h.size // h.shape[1]
            assert np.allclose(module.running_mean, h.mean(axis=(0, 2, 3)),
                               rtol=0, atol=1e-12)
            assert np.allclose(module.running_var,
                               h.var(axis=(0, 2, 3)) * m / (m - 1),
                               rtol=1e-12, atol=1e-12)
            seen += 1
            mu = h.mean(axis=(0, 2, 3), keepdims=True)  # as the pass saw it:
            var = h.var(axis=(0, 2, 3), keepdims=True)  # batch statistics
            w = module.weight.data[:, None, None]
            return (h - mu) / np.sqrt(var + module.eps) * w \
                + module.bias.data[:, None, None]
        return module.forward(h)

    with nnlib.no_grad():
        for layer in net:
            for sub in (layer if isinstance(layer, nnlib.Sequential)
                        else [layer]):
                h = walk(sub, h)
    assert seen == len(bn_layers) == 3
    # the training-time running means lagged: re-estimating changed them
    assert any(not np.allclose(a, m.running_mean)
               for a, m in zip(old_mean, bn_layers))
    fresh = evaluate_loss(net, nnlib.CrossEntropyLoss(), X, y)
    assert fresh != stale


def test_final_train_loss_recompute_bn_is_recompute_then_evaluate():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((48, 1, 8, 8))
    y = rng.integers(0, 10, 48)

    def net():
        return nnlib.models.conv_stack(1, True, rng=np.random.default_rng(2))

    a = net()
    stale = final_train_loss(a, X, y, 3e-2, epochs=3, batch_size=16, seed=1)
    nnlib.train.recompute_bn_stats(a, X)
    by_hand = evaluate_loss(a, nnlib.CrossEntropyLoss(), X, y)
    b = net()
    fresh = final_train_loss(b, X, y, 3e-2, epochs=3, batch_size=16, seed=1,
                             recompute_bn=True)
    assert fresh == by_hand and fresh != stale
    assert not b.training
