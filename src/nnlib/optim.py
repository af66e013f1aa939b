"""Optimizers and learning-rate schedules with the rules of ``torch.optim``
(checked step by step).

SGD, for gradient g of parameter p (PyTorch's formulation)::

    g <- g + weight_decay * p
    b <- g on the first step, else momentum * b + (1 - dampening) * g
    g <- g + momentum * b if nesterov else b          (when momentum > 0)
    p <- p - lr * g

Adam (Kingma & Ba, 2015), step t = 1, 2, ...; its ``weight_decay`` is *coupled*
L2 regularisation: the decay is added to the gradient, so it passes through
m and v and is rescaled like the gradient is::

    g <- g + weight_decay * p
    m <- beta1 m + (1 - beta1) g,    v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

AdamW (Loshchilov & Hutter, 2019): *decoupled* weight decay. The gradient is
left alone; the weights shrink directly, first, then the Adam step follows
(as ``torch.optim.AdamW``; default weight_decay = 0.01)::

    p <- p - lr * weight_decay * p
    m <- beta1 m + (1 - beta1) g,    v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

Every optimizer skips a parameter whose ``requires_grad`` is False (a frozen
parameter): its data and its optimizer state stay as they are, as torch skips
a parameter whose ``grad`` is None. A trainable parameter that received no
gradient in a step (its ``grad`` is zero) is *not* skipped: momentum and decay
still move it, where torch, whose grad would be None, would leave it.

Learning-rate schedules (as ``torch.optim.lr_scheduler``) set the optimizer's
``lr``. Build one after the optimizer; it stores the base learning rate as
``optimizer.initial_lr`` (kept if already there, as torch does) and sets the lr
for epoch 0. Then call ``scheduler.step()`` once per epoch (or per batch) *after*
``optimizer.step()``; ``last_epoch`` counts those calls and ``get_last_lr()``
returns ``[lr]``. With base learning rate lr0 and e = last_epoch::

    StepLR             lr0 * gamma^floor(e / step_size)
    LinearLR           lr0 * (start + (end - start) * min(e, total) / total)
                       (total = total_iters)
    CosineAnnealingLR  eta_min + (lr0 - eta_min) * (1 + cos(pi e / T_max)) / 2
                       (computed with torch's recursive formula, see the class)
    LambdaLR           lr0 * lr_lambda(e)
    SequentialLR       one schedule after another, switching at the milestones
                       (e.g. a LinearLR warm-up, then CosineAnnealingLR).

Use one schedule per optimizer (combine several with SequentialLR).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from numbers import Integral, Real

import numpy as np

from .errors import NonFiniteError
from .module import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "LRScheduler", "StepLR",
           "CosineAnnealingLR", "LinearLR", "SequentialLR", "LambdaLR"]


def _trainable(p) -> bool:
    return bool(getattr(p, "requires_grad", True))


def _as_params(params, where):
    params = list(params)
    if not params:
        raise ValueError(f"{where}: expected a non-empty list of Parameters "
                         "(model.parameters()), got an empty one")
    seen = {}
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: expected Parameter objects, got "
                            f"{type(p).__name__} at position {i}")
        if id(p) in seen:
            raise ValueError(f"{where}: expected each Parameter once, got the same one at "
                             f"positions {seen[id(p)]} and {i} (a shared weight would be "
                             "stepped twice); model.parameters() lists each once")
        seen[id(p)] = i
    return params


def _check_hyper(where, **values):
    for name, v in values.items():
        if not (isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
                and v >= 0):
            raise ValueError(f"{where}: expected {name} to be a finite number >= 0, got {v!r}")


class Optimizer:
    """Base of ``SGD``, ``Adam`` and ``AdamW``: holds the parameters (each with
    ``.data`` and ``.grad`` of the same shape) and one state dict per parameter.
    ``step`` updates the trainable ones (``requires_grad`` True) and leaves the
    frozen ones, data and state, as they are."""

    def __init__(self, params):
        self.params = _as_params(params, type(self).__name__)
        self.state = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0.0

    def step(self) -> None:
        where = f"{type(self).__name__}.step"
        for i, p in enumerate(self.params):
            if _trainable(p) and not np.all(np.isfinite(p.grad)):
                raise NonFiniteError(f"{where}: expected finite gradients, got "
                                         f"NaN or infinity in parameter {i} "
                                         f"(shape {p.shape}); lower the learning rate "
                                         "or clip the gradients")
        for p, state in zip(self.params, self.state):
            if _trainable(p):
                self._update(p, state)
                p.version += 1           # a backward still pending would be stale now

    def _update(self, p: Parameter, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params)
        _check_hyper("SGD", lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p, state):
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "buf" not in state:
                state["buf"] = g.copy()
            else:
                state["buf"] = self.momentum * state["buf"] + (1 - self.dampening) * g
            g = g + self.momentum * state["buf"] if self.nesterov else state["buf"]
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is coupled L2 regularisation,
    added to the gradient (for decoupled weight decay use ``AdamW``)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params)
        where = type(self).__name__
        _check_hyper(where, lr=lr, eps=eps, weight_decay=weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{where}: expected betas in [0, 1), got {betas}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, (b1, b2), eps, weight_decay

    def _gradient(self, p):
        """The gradient Adam's moments see: coupled L2 decay added to it."""
        if self.weight_decay:
            return p.grad + self.weight_decay * p.data
        return p.grad

    def _update(self, p, state):
        b1, b2 = self.betas
        g = self._gradient(p)
        if not state:
            state.update(t=0, m=np.zeros_like(p.data), v=np.zeros_like(p.data))
        state["t"] += 1
        t = state["t"]
        m, v = state["m"], state["v"]
        # in place, in the order of the formulas: the same numbers, bit for bit,
        # as m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g g, without
        # allocating a new array for every term (tests/test_fast_paths.py)
        m *= b1
        m += (1 - b1) * g
        tmp = (1 - b2) * g
        tmp *= g
        v *= b2
        v += tmp
        np.divide(v, 1 - b2 ** t, out=tmp)                 # v_hat
        np.sqrt(tmp, out=tmp)
        tmp += self.eps
        step = np.divide(m, 1 - b1 ** t)                   # m_hat
        step *= self.lr
        step /= tmp
        p.data -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``: each step first shrinks the weights,
    ``p <- p - lr * weight_decay * p``, then takes the Adam step on the plain
    gradient. The decay is not rescaled by Adam's ``sqrt(v)``, so every weight
    decays at the same rate. Default ``weight_decay = 0.01``, as torch."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _gradient(self, p):
        if self.weight_decay:
            p.data *= 1 - self.lr * self.weight_decay      # decoupled: on the weights
        return p.grad


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``.

    Returns the norm before clipping, like ``torch.nn.utils.clip_grad_norm_``
    (which scales by ``max_norm / (norm + 1e-6)`` when that is below 1).
    """
    params = _as_params(params, "clip_grad_norm")
    _check_hyper("clip_grad_norm", max_norm=max_norm)
    total = math.sqrt(sum(float(np.sum(p.grad * p.grad)) for p in params))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            p.grad *= coef
    return total


# ----------------------------------------------------------------------------
# Learning-rate schedules (torch.optim.lr_scheduler)
# ----------------------------------------------------------------------------

def _positive_int(where, name, v):
    if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
        raise ValueError(f"{where}: expected {name} to be a positive integer, got {v!r}")
    return int(v)


def _number_in(where, name, v, lo, hi, lo_open=False, interval=""):
    ok = (isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
          and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi))
    if not ok:
        raise ValueError(f"{where}: expected {name} to be a number in {interval}, got {v!r}")
    return float(v)


class LRScheduler:
    """Base of the schedules. A subclass defines ``lr_at(epoch)``, the learning
    rate at ``epoch`` from the base learning rate ``base_lr`` (the closed form).

    Building one sets ``optimizer.initial_lr`` (if not set yet) to the
    optimizer's ``lr``, takes it as ``base_lr`` and sets the lr of epoch 0;
    ``step()`` advances ``last_epoch`` by one and sets the lr of that epoch.
    """

    def __init__(self, optimizer):
        where = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected an nnlib optimizer (SGD, Adam, AdamW), "
                            f"got {type(optimizer).__name__}")
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = optimizer.lr
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_epoch = -1
        self._last_lr = optimizer.lr
        self._initial_step()

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def _initial_step(self) -> None:
        """Start at epoch 0 (when built, or as the first of a ``SequentialLR``)."""
        self.last_epoch = 0
        self._set(self._initial_lr())

    def _initial_lr(self) -> float:
        return self.lr_at(0)

    def _restart(self) -> None:
        """Restart at epoch 0 with the closed form (``SequentialLR``, at a milestone)."""
        self.last_epoch = 0
        self._set(self.lr_at(0))

    def _next_lr(self) -> float:
        return self.lr_at(self.last_epoch)

    def step(self) -> None:
        """Advance one epoch; call after ``optimizer.step()``."""
        self.last_epoch += 1
        self._set(self._next_lr())

    def _set(self, lr) -> None:
        self.optimizer.lr = self._last_lr = float(lr)

    def get_last_lr(self) -> list:
        """``[lr]``: the learning rate this schedule set last (a list, as torch's
        one entry per parameter group)."""
        return [self._last_lr]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(last_epoch={self.last_epoch}, "
                f"lr={self._last_lr:.6g}, base_lr={self.base_lr:.6g})")


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs:
    ``lr = base_lr * gamma ** (last_epoch // step_size)``."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = _number_in("StepLR", "gamma", gamma, 0.0, None, lo_open=True,
                                interval="(0, inf)")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor going linearly from ``start_factor``
    (epoch 0) to ``end_factor`` (epoch ``total_iters`` and after): a warm-up
    with the defaults ``1/3 -> 1`` over 5 epochs."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5):
        self.start_factor = _number_in("LinearLR", "start_factor", start_factor, 0.0, 1.0,
                                       lo_open=True, interval="(0, 1]")
        self.end_factor = _number_in("LinearLR", "end_factor", end_factor, 0.0, 1.0,
                                     interval="[0, 1]")
        self.total_iters = _positive_int("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return self.base_lr * (s + (e - s) * min(n, epoch) / n)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` (epoch 0) to ``eta_min`` (epoch ``T_max``),
    without restarts; past ``T_max`` it rises again, with period ``2 * T_max``:

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2

    ``step()`` uses torch's recursive form, from the current lr:
    ``lr <- eta_min + (lr - eta_min) * (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T))``
    (and ``lr <- lr + (base_lr - eta_min) * (1 - cos(pi / T)) / 2`` on the step
    just past each minimum, where that ratio is 0/0). The two agree up to
    rounding, and the rounding grows with the epoch: ~1e-14 (relative) over
    the first hundred steps, ~2e-12 after 5,000 (T_max = 7), ~2e-11 after
    20,000 (T_max = 1000); neither is the exact value either. Doing the same
    floating-point operations as torch gives torch's numbers exactly.
    ``lr_at(epoch)`` is the closed form (``SequentialLR`` restarts a schedule
    with it at a milestone, as torch does).
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number_in("CosineAnnealingLR", "eta_min", eta_min, 0.0, None,
                                  interval="[0, inf)")
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def _initial_lr(self):
        return self.optimizer.lr                        # torch keeps the lr as it is

    def _next_lr(self):
        # the same operations, in the same order, as torch 2.13's get_lr
        e, T, eta_min, lr = self.last_epoch, self.T_max, self.eta_min, self.optimizer.lr
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
                * (lr - eta_min) + eta_min)


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(last_epoch)`` for a function of the epoch, e.g.
    ``LambdaLR(opt, lambda e: 0.95 ** e)``."""

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError("LambdaLR: expected lr_lambda to be a function of the epoch "
                            f"(an int) returning a factor, got {type(lr_lambda).__name__}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def lr_at(self, epoch):
        factor = self.lr_lambda(epoch)
        if not (isinstance(factor, Real) and not isinstance(factor, bool)
                and math.isfinite(factor)):
            raise ValueError(f"LambdaLR: expected lr_lambda({epoch}) to return a finite "
                             f"number, got {factor!r}")
        return self.base_lr * factor


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another: ``schedulers[i]`` from epoch
    ``milestones[i - 1]`` (restarted there at its own epoch 0) up to
    ``milestones[i]``. A warm-up, then cosine annealing::

        warm = LinearLR(opt, start_factor=0.1, total_iters=5)
        cos = CosineAnnealingLR(opt, T_max=45)
        sched = SequentialLR(opt, [warm, cos], milestones=[5])

    As torch: building it resets ``optimizer.lr`` to ``initial_lr`` and undoes the
    first step the schedulers took when they were built, then starts the first.
    """

    def __init__(self, optimizer, schedulers, milestones):
        where = "SequentialLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected an nnlib optimizer (SGD, Adam, AdamW), "
                            f"got {type(optimizer).__name__}")
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError(f"{where}: expected at least one scheduler, got none")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, SequentialLR):
                raise TypeError(f"{where}: expected schedules (StepLR, LinearLR, ...; not "
                                f"SequentialLR), got {type(s).__name__} at position {i}")
            if s.optimizer is not optimizer:
                raise ValueError(f"{where}: expected every scheduler to drive the same "
                                 f"optimizer, got {type(s).__name__} at position {i} "
                                 "built on another one")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{where}: expected {len(schedulers) - 1} milestone(s) for "
                             f"{len(schedulers)} schedulers, got {len(milestones)}")
        for i, m in enumerate(milestones):
            _positive_int(where, f"milestones[{i}]", m)
            if i and m <= milestones[i - 1]:
                raise ValueError(f"{where}: expected increasing milestones, got {milestones}")
        self.optimizer, self.schedulers = optimizer, schedulers
        self.milestones = [int(m) for m in milestones]
        self.base_lr = optimizer.initial_lr           # set by the schedulers
        optimizer.lr = optimizer.initial_lr
        for s in schedulers:                           # undo their initial steps
            s.last_epoch -= 1
        self.last_epoch = 0
        first = schedulers[bisect_right(self.milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()[0]

    def lr_at(self, epoch):
        i = bisect_right(self.milestones, epoch)
        start = self.milestones[i - 1] if i else 0
        return self.schedulers[i].lr_at(epoch - start)

    def step(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self.milestones, self.last_epoch)
        scheduler = self.schedulers[i]
        if i > 0 and self.milestones[i - 1] == self.last_epoch:
            scheduler._restart()                       # at its epoch 0, closed form
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()[0]
