"""Optimizers step by step against torch.optim, initialisers against torch.nn.init."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib import init

pytestmark = pytest.mark.optim


def _run_both(make_ours, make_theirs, seed, steps=6):
    """Apply the same sequence of random gradients to both; compare after each step."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    params = [nnlib.Parameter(rng.standard_normal(s)) for s in shapes]
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    ours, theirs = make_ours(params), make_theirs(tparams)
    for step in range(steps):
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = torch.tensor(g.copy())
        ours.step()
        theirs.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-8, atol=1e-10,
                                       err_msg=f"parameter {i} after step {step + 1}")


@given(lr=st.floats(1e-3, 0.5), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       dampening=st.sampled_from([0.0, 0.3]), wd=st.sampled_from([0.0, 1e-2]),
       nesterov=st.booleans(), seed=st.integers(0, 2**16))
def test_sgd_matches_torch(lr, momentum, dampening, wd, nesterov, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov)
    _run_both(lambda p: nnlib.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw), seed)


@given(lr=st.floats(1e-4, 0.1), b1=st.sampled_from([0.0, 0.9]), b2=st.sampled_from([0.99, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), wd=st.sampled_from([0.0, 1e-2]),
       seed=st.integers(0, 2**16))
def test_adam_matches_torch(lr, b1, b2, eps, wd, seed):
    kw = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    _run_both(lambda p: nnlib.Adam(p, **kw), lambda p: torch.optim.Adam(p, **kw), seed)


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm, rng):
    grads = [rng.standard_normal(s) for s in [(3, 4), (5,)]]
    params = [nnlib.Parameter(np.zeros_like(g)) for g in grads]
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g.copy())
    norm = nnlib.clip_grad_norm(params, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    np.testing.assert_allclose(norm, tnorm.item(), rtol=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_optimizer_errors():
    p = [nnlib.Parameter(np.zeros(3))]
    with pytest.raises(ValueError, match="non-empty list"):
        nnlib.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameter objects, got ndarray"):
        nnlib.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="lr to be a finite number >= 0, got -1"):
        nnlib.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        nnlib.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas in \[0, 1\)"):
        nnlib.Adam(p, betas=(0.9, 1.0))
    p[0].grad[1] = np.nan
    with pytest.raises(FloatingPointError, match="NaN or infinity in parameter 0"):
        nnlib.SGD(p, lr=0.1).step()


def _torch_init(fn, shape, **kw):
    t = torch.empty(shape, dtype=torch.float64)
    fn(t, **kw)
    return t.numpy()


@pytest.mark.parametrize("shape", [(300, 200), (64, 16, 3, 3)])
def test_initialisers_have_torchs_spread(shape):
    """Same distribution as torch.nn.init: compare bounds and standard deviations."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cases = [
        (init.xavier_uniform(shape, rng=rng), _torch_init(torch.nn.init.xavier_uniform_, shape)),
        (init.xavier_normal(shape, rng=rng), _torch_init(torch.nn.init.xavier_normal_, shape)),
        (init.kaiming_uniform(shape, nonlinearity="relu", rng=rng),
         _torch_init(torch.nn.init.kaiming_uniform_, shape, nonlinearity="relu")),
        (init.kaiming_normal(shape, mode="fan_out", nonlinearity="relu", rng=rng),
         _torch_init(torch.nn.init.kaiming_normal_, shape, mode="fan_out", nonlinearity="relu")),
    ]
    for ours, theirs in cases:
        assert ours.shape == theirs.shape
        assert abs(ours.std() / theirs.std() - 1) < 0.03
        assert abs(ours.mean()) < 0.05 * theirs.std()


def test_fans_and_gains_match_torch():
    for shape in [(5, 3), (8, 4, 3, 3), (2, 7, 5)]:
        t = torch.empty(shape)
        assert init.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)
    for name, param in [("relu", None), ("tanh", None), ("sigmoid", None), ("leaky_relu", 0.2)]:
        assert math.isclose(init.calculate_gain(name, param),
                            torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans((5,))
    with pytest.raises(ValueError, match="expected one of"):
        init.calculate_gain("softplus")
