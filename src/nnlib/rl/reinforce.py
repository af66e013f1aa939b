"""Policy gradient: REINFORCE with a softmax policy that is an nnlib network,
on any gymnasium environment with a vector state and discrete actions
(``CartPole-v1``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import NonFiniteError
from ..losses import log_softmax, softmax
from ..random import get_rng
from .tabular import run_policy

__all__ = ["returns_to_go", "policy_gradient", "sample_action", "greedy_action",
           "Episode", "play_episode", "reinforce_step", "ReinforceRun", "reinforce"]


def returns_to_go(rewards, gamma: float = 0.99) -> np.ndarray:
    """``G_t = r_t + gamma r_{t+1} + gamma^2 r_{t+2} + ...`` for every step t of
    one episode: what followed each action, discounted.
    ``rewards: (T,) -> (T,)``."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"returns_to_go: expected gamma in [0, 1], got {gamma!r}")
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1:
        raise ValueError(f"returns_to_go: expected a 1-D sequence of rewards, got "
                         f"shape {rewards.shape}")
    out, g = np.empty_like(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def policy_gradient(logits, actions, weights):
    """The REINFORCE loss ``L = -mean_t w_t log pi(a_t | s_t)`` of a softmax
    policy and its gradient with respect to the logits,
    ``dL/dz_t = w_t (softmax(z_t) - onehot(a_t)) / N``.

    ``logits`` ``(N, n_actions)``, ``actions`` ``(N,)`` integers, ``weights``
    ``(N,)`` (returns, or advantages). Returns ``(loss, grad)``; pass ``grad``
    to the policy's ``backward``.
    """
    where = "policy_gradient"
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"{where}: expected logits of shape (N, n_actions), got "
                         f"{logits.shape}")
    n, k = logits.shape
    actions = np.asarray(actions)
    if not np.issubdtype(actions.dtype, np.integer) or actions.shape != (n,):
        raise ValueError(f"{where}: expected {n} integer actions, shape ({n},), got "
                         f"dtype {actions.dtype}, shape {actions.shape}")
    if n and (actions.min() < 0 or actions.max() >= k):
        raise ValueError(f"{where}: expected actions in [0, {k}), got values from "
                         f"{actions.min()} to {actions.max()}")
    weights = np.asarray(weights, dtype=logits.dtype)
    if weights.shape != (n,):
        raise ValueError(f"{where}: expected {n} weights, shape ({n},), got "
                         f"{weights.shape}")
    for name, x in (("logits", logits), ("weights", weights)):
        if not np.isfinite(x).all():
            raise NonFiniteError(f"{where}: expected finite {name}, got NaN or infinity")
    rows = np.arange(n)
    loss = -float(np.mean(weights * log_softmax(logits)[rows, actions]))
    grad = softmax(logits)
    grad[rows, actions] -= 1.0
    grad *= (weights / n)[:, None]
    return loss, grad


def sample_action(policy, state, rng=None) -> int:
    """Draw an action from ``softmax(policy(state))`` for one state.
    ``state: (D,)``; ``policy`` maps ``(1, D)`` to logits ``(1, n_actions)``."""
    probs = softmax(policy(np.asarray(state, dtype=np.float64)[None])[0])
    u = get_rng(rng).random()
    return min(int(np.searchsorted(np.cumsum(probs), u, side="right")), len(probs) - 1)


def greedy_action(policy, state) -> int:
    """The action of largest probability (largest logit) in one state.
    ``state: (D,)``; ``policy`` maps ``(1, D)`` to logits ``(1, n_actions)``."""
    return int(policy(np.asarray(state, dtype=np.float64)[None])[0].argmax())


@dataclass
class Episode:
    """One episode: ``states`` ``(T, state_dim)``, ``actions`` and ``rewards``
    ``(T,)``."""
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def total(self) -> float:
        return float(self.rewards.sum())


def play_episode(env, act, seed: int | None = None) -> Episode:
    """Run one episode, choosing actions with ``act(state)``; returns an
    ``Episode`` with ``states: (T, state_dim)``, ``actions`` and ``rewards: (T,)``."""
    s, _ = env.reset(seed=seed)
    states, actions, rewards, done = [], [], [], False
    while not done:
        a = int(act(s))
        states.append(s)
        actions.append(a)
        s, r, terminated, truncated, _ = env.step(a)
        rewards.append(r)
        done = terminated or truncated
    return Episode(np.array(states, dtype=np.float64), np.array(actions),
                   np.array(rewards, dtype=np.float64))


def reinforce_step(policy, optimizer, episodes, gamma: float = 0.99,
                   normalize: bool = True) -> float:
    """One REINFORCE update from a batch of episodes: every step's weight is its
    return-to-go, standardized over the batch when ``normalize`` (a baseline
    that lowers the variance); then forward, ``policy_gradient``, backward and
    ``optimizer.step()``. Returns the loss."""
    if not episodes:
        raise ValueError("reinforce_step: expected at least one episode, got none")
    states = np.concatenate([e.states for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    weights = np.concatenate([returns_to_go(e.rewards, gamma) for e in episodes])
    if normalize:
        weights = (weights - weights.mean()) / (weights.std() + 1e-8)
    loss, grad = policy_gradient(policy(states), actions, weights)
    policy.zero_grad()
    policy.backward(grad)
    optimizer.step()
    return loss


@dataclass
class ReinforceRun:
    """What ``reinforce`` returns: the return of every training episode, the
    update at which the greedy policy passed the target (or ``None``), the
    number of episodes played and the seconds taken."""
    returns: list = field(default_factory=list)
    solved_at: int | None = None
    episodes: int = 0
    seconds: float = 0.0


def reinforce(env, policy, optimizer, max_updates: int = 300, batch: int = 8,
              gamma: float = 0.99, target: float = 475.0, check_episodes: int = 20,
              check_seed: int = 5_000, seed: int = 0, rng=None,
              progress: bool = True) -> ReinforceRun:
    """Train ``policy`` (an nnlib network: states -> action logits) with
    REINFORCE: play ``batch`` episodes with the sampling policy, then one
    ``reinforce_step``; repeat. Stops when the *greedy* policy's mean return over
    ``check_episodes`` episodes (reset seeds from ``check_seed``, kept apart from
    the final evaluation's) reaches ``target``; that check runs only once the
    batch's mean return is within 90% of the target. Training episodes are reset
    with seeds ``seed * 100_000 + 0, 1, ...``; ``rng`` draws the actions.
    """
    from ..train import progress_bar

    if not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"reinforce: expected batch >= 1 episodes, got {batch!r}")
    if not (isinstance(max_updates, int) and max_updates >= 1):
        raise ValueError(f"reinforce: expected max_updates >= 1, got {max_updates!r}")
    rng = get_rng(rng)
    run, start = ReinforceRun(), time.perf_counter()
    bar = progress_bar(range(max_updates), desc=f"REINFORCE seed {seed}", enabled=progress)
    for update in bar:
        episodes = [play_episode(env, lambda s: sample_action(policy, s, rng),
                                 seed=seed * 100_000 + run.episodes + i)
                    for i in range(batch)]
        run.episodes += batch
        run.returns += [e.total for e in episodes]
        reinforce_step(policy, optimizer, episodes, gamma)
        mean = np.mean(run.returns[-batch:])
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(mean_return=f"{mean:.0f}")
        if mean >= 0.9 * target:
            check = run_policy(env, lambda s: greedy_action(policy, s),
                               check_episodes, seed=check_seed)
            if check.mean() >= target:
                run.solved_at = update + 1
                break
    if hasattr(bar, "close"):
        bar.close()
    run.seconds = time.perf_counter() - start
    return run
