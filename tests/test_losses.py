"""Losses against torch.nn in float64: value and gradient, both reductions."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib.testing import torch_loss_twin

pytestmark = pytest.mark.losses


def _compare(loss, pred, target, upstream):
    value = loss(pred, target)
    grad = loss.backward(upstream)
    tl = torch_loss_twin(loss)
    pt = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    out = tl(pt, tt)
    out.backward(torch.tensor(upstream, dtype=torch.float64))
    np.testing.assert_allclose(value, out.item(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-8, atol=1e-10)


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       reduction=st.sampled_from(["mean", "sum"]), seed=st.integers(0, 2**16))
def test_mse_matches_torch(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    _compare(nnlib.MSELoss(reduction), rng.standard_normal(shape), rng.standard_normal(shape),
             float(rng.uniform(0.5, 2)))


@given(n=st.integers(1, 12), c=st.integers(2, 10), reduction=st.sampled_from(["mean", "sum"]),
       scale=st.sampled_from([0.1, 1.0, 30.0]), seed=st.integers(0, 2**16))
def test_cross_entropy_matches_torch(n, c, reduction, scale, seed):
    rng = np.random.default_rng(seed)
    _compare(nnlib.CrossEntropyLoss(reduction), scale * rng.standard_normal((n, c)),
             rng.integers(0, c, n), float(rng.uniform(0.5, 2)))


def test_cross_entropy_is_stable_for_huge_logits():
    loss = nnlib.CrossEntropyLoss()
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    value = loss(z, np.array([0, 0]))
    assert np.isfinite(value)
    np.testing.assert_allclose(value, 500.0, rtol=1e-12)
    assert np.all(np.isfinite(loss.backward()))


def test_softmax_rows_sum_to_one(rng):
    p = nnlib.losses.softmax(rng.standard_normal((5, 7)) * 50)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_loss_errors_name_what_was_expected():
    ce = nnlib.CrossEntropyLoss()
    with pytest.raises(TypeError, match="integer class labels.*float64"):
        ce(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\).*got values from 0 to 3"):
        ce(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\).*got \(3,\)"):
        ce(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="2 dimensions"):
        ce(np.zeros(3), np.array([0]))
    with pytest.raises(RuntimeError, match="before forward"):
        nnlib.MSELoss().backward()
    with pytest.raises(ValueError, match=r"same shape as pred \(2, 3\), got \(3, 2\)"):
        nnlib.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="reduction 'mean' or 'sum'"):
        nnlib.MSELoss("none")
    with pytest.raises(ValueError, match="NaN"):
        nnlib.MSELoss()(np.array([np.nan]), np.array([0.0]))


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       reduction=st.sampled_from(["mean", "sum"]), scale=st.sampled_from([0.1, 1.0, 50.0]),
       soft=st.booleans(), seed=st.integers(0, 2**16))
def test_bce_with_logits_matches_torch(shape, reduction, scale, soft, seed):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(float)
    _compare(nnlib.BCEWithLogitsLoss(reduction), scale * rng.standard_normal(shape), target,
             float(rng.uniform(0.5, 2)))


def test_bce_with_logits_is_stable_for_huge_logits():
    loss = nnlib.BCEWithLogitsLoss(reduction="sum")
    value = loss(np.array([800.0, -800.0, 800.0]), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(value, 800.0, rtol=1e-12)   # only the wrong one costs
    np.testing.assert_allclose(loss.backward(), [0.0, 0.0, 1.0], atol=1e-300)


def test_bce_errors_name_what_was_expected():
    bce = nnlib.BCEWithLogitsLoss()
    with pytest.raises(ValueError, match=r"targets in \[0, 1\], got values from 0 to 2"):
        bce(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"same shape as pred \(3,\), got \(3, 1\)"):
        bce(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(TypeError, match="floating dtype"):
        bce(np.zeros(3), np.array([0, 1, 1]))
