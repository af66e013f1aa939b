"""Optimizers and learning-rate schedules step by step against torch.optim,
initialisers against torch.nn.init."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nnlib
from nnlib import init, optim
from nnlib.errors import NonFiniteError
from nnlib.models import mlp
from nnlib.testing import torch_twin

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
    with pytest.raises(NonFiniteError, match="expected finite gradients") as info:
        optim.AdamW(p).step()
    assert isinstance(info.value, ValueError)           # the family of nnlib.errors
    with pytest.raises(ValueError, match="AdamW: expected weight_decay to be a finite "
                                         "number >= 0, got -0.1"):
        optim.AdamW(p, weight_decay=-0.1)
    with pytest.raises(ValueError, match=r"AdamW: expected betas in \[0, 1\)"):
        optim.AdamW(p, betas=(1.0, 0.999))


# --- AdamW and frozen parameters ---------------------------------------------

def _network_and_twin(seed=0):
    """nnlib's 4 -> 8 -> 3 MLP, its float64 torch twin (same weights), and data."""
    rng = np.random.default_rng(seed)
    model = mlp(4, 3, hidden=(8,), rng=rng)
    x, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 3))
    return model, torch_twin(model), x, y


def _train_both(make_ours, make_theirs, steps=40, schedule=None, seed=0, check_each=True):
    """Train nnlib's network (its own backward) and the torch twin (autograd) on the
    same data with MSE; compare every parameter after each step (rtol 1e-10).
    ``schedule(module, optimizer)`` builds a schedule from ``nnlib.optim`` or
    ``torch.optim.lr_scheduler`` (same names and arguments), stepped after each step.
    Returns the nnlib model, its learning rates and torch's."""
    model, twin, x, y = _network_and_twin(seed)
    xt, yt = torch.tensor(x), torch.tensor(y)
    ours, theirs = make_ours(model.parameters()), make_theirs(twin.parameters())
    sched = schedule(optim, ours) if schedule else None
    tsched = schedule(torch.optim.lr_scheduler, theirs) if schedule else None
    loss, tparams = nnlib.MSELoss(), dict(twin.named_parameters())
    lrs, tlrs = [ours.lr], [theirs.param_groups[0]["lr"]]
    for step in range(steps):
        ours.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.mse_loss(twin(xt), yt).backward()
        theirs.step()
        if schedule:
            sched.step()
            tsched.step()
        lrs.append(ours.lr)
        tlrs.append(theirs.param_groups[0]["lr"])
        if check_each or step == steps - 1:
            for name, p in model.named_parameters():
                np.testing.assert_allclose(p.data, tparams[name].detach().numpy(), rtol=1e-10,
                                           atol=1e-14, err_msg=f"{name} after step {step + 1}")
    return model, lrs, tlrs


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.01, weight_decay=0.1),
                                dict(lr=0.03, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5)])
def test_adamw_matches_torch_on_a_network(kw):
    _train_both(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw))


@given(lr=st.floats(1e-4, 0.1), b1=st.sampled_from([0.0, 0.9]),
       wd=st.sampled_from([0.0, 0.01, 0.3]), seed=st.integers(0, 2**16))
def test_adamw_matches_torch_random_gradients(lr, b1, wd, seed):
    kw = dict(lr=lr, betas=(b1, 0.999), weight_decay=wd)
    _run_both(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw), seed)


def test_adamw_defaults_are_torchs():
    p = [nnlib.Parameter(np.zeros(2))]
    ours, theirs = optim.AdamW(p), torch.optim.AdamW([torch.zeros(2, requires_grad=True)])
    d = theirs.defaults
    assert (ours.lr, ours.betas, ours.eps, ours.weight_decay) == \
        (d["lr"], d["betas"], d["eps"], d["weight_decay"]) == (1e-3, (0.9, 0.999), 1e-8, 0.01)


def test_adamw_is_not_adam_with_l2():
    """Positive control: decoupled decay changes the run visibly, so the comparison
    above would catch an AdamW that added the decay to the gradient."""
    kw = dict(lr=0.01, weight_decay=0.1)
    adamw, _, _ = _train_both(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw))
    adam, _, _ = _train_both(lambda p: optim.Adam(p, **kw), lambda p: torch.optim.Adam(p, **kw))
    gap = max(np.max(np.abs(a.data - b.data))
              for a, b in zip(adamw.parameters(), adam.parameters()))
    assert gap > 1e-3, f"AdamW and Adam with L2 decay ended only {gap:.1e} apart"
    with pytest.raises(AssertionError):        # and the twin comparison sees it
        _train_both(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.Adam(p, **kw),
                    check_each=False)
    # without decay the two are the same optimizer
    plain_w, _, _ = _train_both(lambda p: optim.AdamW(p, weight_decay=0.0),
                                lambda p: torch.optim.Adam(p))
    plain, _, _ = _train_both(lambda p: optim.Adam(p), lambda p: torch.optim.Adam(p))
    for a, b in zip(plain_w.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda p: optim.Adam(p, lr=0.1, weight_decay=0.1),
                                  lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.1)],
                         ids=["SGD", "Adam", "AdamW"])
def test_frozen_parameters_are_not_updated(make, rng):
    live = nnlib.Parameter(rng.standard_normal((3, 2)))
    frozen = nnlib.Parameter(rng.standard_normal(4), requires_grad=False)
    before_live, before_frozen = live.data.copy(), frozen.data.copy()
    opt = make([live, frozen])
    for _ in range(3):
        live.grad[...] = rng.standard_normal(live.shape)
        frozen.grad[...] = rng.standard_normal(frozen.shape)   # even a stray gradient
        opt.step()
    np.testing.assert_array_equal(frozen.data, before_frozen)  # weight decay too: untouched
    assert opt.state[1] == {}
    assert np.max(np.abs(live.data - before_live)) > 1e-2      # the live one did move
    frozen.grad[0] = np.nan                                    # ignored, not an error
    opt.step()
    np.testing.assert_array_equal(frozen.data, before_frozen)


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                      ("Adam", dict(lr=0.1, weight_decay=0.01)),
                                      ("AdamW", dict(lr=0.1))])
def test_frozen_then_unfrozen_matches_torch_grad_none(name, kw, rng):
    """A parameter frozen for 3 steps, then trainable, is torch's parameter whose
    grad is None for 3 steps: the same data and the same (late-starting) state."""
    params = [nnlib.Parameter(rng.standard_normal(s)) for s in [(3, 2), (4,)]]
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    ours, theirs = getattr(optim, name)(params, **kw), getattr(torch.optim, name)(tparams, **kw)
    for step in range(8):
        params[1].requires_grad = step >= 3
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = torch.tensor(g) if p.requires_grad else None
        ours.step()
        theirs.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-14,
                                       err_msg=f"parameter {i} after step {step + 1}")


def test_frozen_module_with_optimizer():
    """Module.freeze() on the first layer: its weights stay, the rest train."""
    model, _, x, y = _network_and_twin()
    if not hasattr(model[0].weight, "requires_grad"):
        pytest.skip("Parameter.requires_grad not in this checkout")
    for p in model[0].parameters():
        p.requires_grad = False
    first, last = model[0].weight.data.copy(), model[2].weight.data.copy()
    opt, loss = optim.AdamW(model.parameters(), lr=0.05), nnlib.MSELoss()
    for _ in range(5):
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    np.testing.assert_array_equal(model[0].weight.data, first)
    assert not np.allclose(model[2].weight.data, last)


# --- learning-rate schedules ---------------------------------------------------

SCHEDULES = {
    "StepLR": lambda S, o: S.StepLR(o, step_size=7, gamma=0.5),
    "StepLR-default-gamma": lambda S, o: S.StepLR(o, 3),
    "CosineAnnealingLR": lambda S, o: S.CosineAnnealingLR(o, T_max=40),
    "CosineAnnealingLR-past-T_max": lambda S, o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "CosineAnnealingLR-T_max-1": lambda S, o: S.CosineAnnealingLR(o, T_max=1),
    "LinearLR-default": lambda S, o: S.LinearLR(o),
    "LinearLR-warm-up": lambda S, o: S.LinearLR(o, start_factor=0.01, total_iters=20),
    "LinearLR-decay": lambda S, o: S.LinearLR(o, 1.0, 0.1, 30),
    "LinearLR-to-zero": lambda S, o: S.LinearLR(o, 0.5, 0.0, 8),
    "LambdaLR": lambda S, o: S.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-inverse": lambda S, o: S.LambdaLR(o, lambda e: 1 / (1 + 0.3 * e)),
    "warm-up-then-cosine": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(o, T_max=35)],
        milestones=[5]),
    "warm-up-then-cosine-past-T_max": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.25, total_iters=8), S.CosineAnnealingLR(o, T_max=12, eta_min=0.01)],
        milestones=[6]),
    "three-phases": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.2, total_iters=4), S.StepLR(o, 5, 0.5),
            S.CosineAnnealingLR(o, 15)], milestones=[4, 20]),
}


def _schedule_both(make, steps, lr=0.1):
    """The learning rates ``get_last_lr()`` gives, ours and torch's: at building time
    and after each ``step()`` (each after an ``optimizer.step()``, in torch's order)."""
    ours = optim.SGD([nnlib.Parameter(np.zeros(2))], lr=lr)
    theirs = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    s, ts = make(optim, ours), make(torch.optim.lr_scheduler, theirs)
    got, want = [s.get_last_lr()], [ts.get_last_lr()]
    for _ in range(steps):
        ours.step()
        theirs.step()
        s.step()
        ts.step()
        got.append(s.get_last_lr())
        want.append(ts.get_last_lr())
        assert ours.lr == got[-1][0] and s.last_epoch == ts.last_epoch
    return got, want, s, ours


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    got, want, s, opt = _schedule_both(SCHEDULES[name], steps=60)
    assert all(isinstance(g, list) and len(g) == 1 and type(g[0]) is float for g in got)
    np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], rtol=1e-12,
                               atol=1e-16, err_msg=name)
    assert opt.initial_lr == 0.1 and s.last_epoch == 60
    assert len(set(g[0] for g in got)) > 1                    # the lr did change


def test_cosine_follows_torchs_recursion_not_the_closed_form():
    """torch steps the cosine recursively from the current lr; its numbers drift from
    the closed form (~2e-12 after a few thousand steps). Ours are torch's exactly."""
    got, want, s, _ = _schedule_both(lambda S, o: S.CosineAnnealingLR(o, T_max=7), steps=5000)
    assert got == want
    closed = [s.lr_at(e) for e in range(5001)]
    drift = max(abs(c - w[0]) / w[0] for c, w in zip(closed, want) if w[0] > 0)
    assert drift > 1e-12                                      # a test at 1e-12 tells them apart
    np.testing.assert_allclose(closed[:41], [w[0] for w in want[:41]], rtol=1e-13)


def test_sequential_lr_restarts_its_schedules():
    got, _, s, opt = _schedule_both(SCHEDULES["warm-up-then-cosine"], steps=45)
    lrs = [g[0] for g in got]
    assert lrs[0] == pytest.approx(0.01) and lrs[5] == 0.1      # warm-up, then the base lr
    assert lrs[40] == pytest.approx(0.0, abs=1e-15)           # the cosine's T_max
    assert s.schedulers[0].last_epoch == 4 and s.schedulers[1].last_epoch == 40


@pytest.mark.parametrize("schedule", ["warm-up-then-cosine", "three-phases", "StepLR"])
@pytest.mark.parametrize("kw", [dict(lr=0.05, momentum=0.9),
                                dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)])
def test_sgd_momentum_with_schedule_trains_like_torch(schedule, kw):
    """End to end: 40 steps on the network, the weights equal torch's after each."""
    _, lrs, tlrs = _train_both(lambda p: optim.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw),
                               schedule=SCHEDULES[schedule])
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12, atol=1e-16)


def test_adamw_with_warm_up_and_cosine_trains_like_torch():
    _train_both(lambda p: optim.AdamW(p, lr=0.02), lambda p: torch.optim.AdamW(p, lr=0.02),
                schedule=SCHEDULES["warm-up-then-cosine"])


def test_schedule_errors():
    p = [nnlib.Parameter(np.zeros(2))]
    opt = optim.SGD(p, lr=0.1)
    cases = [
        (lambda: optim.StepLR(opt, 0),
         "StepLR: expected step_size to be a positive integer, got 0"),
        (lambda: optim.StepLR(opt, 2.5),
         "StepLR: expected step_size to be a positive integer, got 2.5"),
        (lambda: optim.StepLR(opt, 3, gamma=0),
         r"StepLR: expected gamma to be a number in \(0, inf\), got 0"),
        (lambda: optim.CosineAnnealingLR(opt, T_max=-5),
         "CosineAnnealingLR: expected T_max to be a positive integer, got -5"),
        (lambda: optim.CosineAnnealingLR(opt, 10, eta_min=float("nan")),
         r"CosineAnnealingLR: expected eta_min to be a number in \[0, inf\), got nan"),
        (lambda: optim.LinearLR(opt, start_factor=0),
         r"LinearLR: expected start_factor to be a number in \(0, 1\], got 0"),
        (lambda: optim.LinearLR(opt, end_factor=1.5),
         r"LinearLR: expected end_factor to be a number in \[0, 1\], got 1.5"),
        (lambda: optim.LinearLR(opt, total_iters=0),
         "LinearLR: expected total_iters to be a positive integer, got 0"),
        (lambda: optim.LambdaLR(opt, lambda e: float("inf")),
         r"LambdaLR: expected lr_lambda\(0\) to return a finite number, got inf"),
        (lambda: optim.SequentialLR(opt, [], []),
         "SequentialLR: expected at least one scheduler, got none"),
        (lambda: optim.SequentialLR(opt, [optim.StepLR(opt, 2), optim.StepLR(opt, 3)], []),
         r"SequentialLR: expected 1 milestone\(s\) for 2 schedulers, got 0"),
        (lambda: optim.SequentialLR(opt, [optim.StepLR(opt, 2)] * 3, [5, 5]),
         r"SequentialLR: expected increasing milestones, got \[5, 5\]"),
        (lambda: optim.SequentialLR(opt, [optim.StepLR(opt, 2)] * 2, [0]),
         r"SequentialLR: expected milestones\[0\] to be a positive integer, got 0"),
        (lambda: optim.SequentialLR(opt, [optim.StepLR(optim.SGD(p, lr=1.0), 2)], []),
         "SequentialLR: expected every scheduler to drive the same optimizer"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(TypeError, match="StepLR: expected an nnlib optimizer .*, got SGD"):
        optim.StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 2)
    with pytest.raises(TypeError, match="LambdaLR: expected lr_lambda to be a function"):
        optim.LambdaLR(opt, 0.5)
    with pytest.raises(TypeError, match="expected schedules .*, got str at position 0"):
        optim.SequentialLR(opt, ["cosine"], [])


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
