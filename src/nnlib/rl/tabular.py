"""Tabular methods on an environment with a model ``P[s][a]`` (``GridWorld``,
gymnasium's toy-text environments): value iteration, exact policy
evaluation, the greedy policy of a Q table, tabular Q-learning, and
following a policy for a number of episodes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..random import get_rng
from .envs import _fast_steps, _model_of

__all__ = ["value_iteration", "policy_values", "q_learning", "QLearningRun",
           "greedy_policy", "run_policy"]


def value_iteration(env, gamma: float = 0.99, tol: float = 1e-10, max_iter: int = 100_000):
    """Optimal values by repeated Bellman backups,
    ``Q(s, a) = sum_s' p (r + gamma * V(s') * (not terminated))``, ``V = max_a Q``,
    until the largest change is below ``tol``. Returns ``(V, Q, iterations)``."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"value_iteration: expected gamma in [0, 1), got {gamma!r}")
    P = _model_of(env)
    n_s, n_a = len(P), len(P[0])
    V = np.zeros(n_s)
    for it in range(1, max_iter + 1):
        Q = np.array([[sum(p * (r + gamma * V[s2] * (not done)) for p, s2, r, done in P[s][a])
                       for a in range(n_a)] for s in range(n_s)])
        V_new = Q.max(axis=1)
        if np.abs(V_new - V).max() < tol:
            return V_new, Q, it
        V = V_new
    raise RuntimeError(f"value_iteration: no convergence to {tol} in {max_iter} iterations")


def greedy_policy(Q) -> np.ndarray:
    """The action of largest Q in each state (ties: the first).
    ``Q: (n_states, n_actions) -> (n_states,)`` int."""
    return np.asarray(Q).argmax(axis=1)


@dataclass
class QLearningRun:
    """What ``q_learning`` returns: the table, per-episode returns, lengths
    and epsilons, the snapshots, and ``visits`` ``(n_states, n_actions)``:
    how many updates each table entry received."""
    Q: np.ndarray
    returns: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    epsilons: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    visits: np.ndarray | None = None


def q_learning(env, episodes: int, alpha: float = 0.1, gamma: float = 0.99,
               epsilon=(1.0, 0.05), decay_episodes: int | None = None, rng=None,
               seed: int = 0, record_every: int | None = None) -> QLearningRun:
    """Tabular Q-learning with an epsilon-greedy behaviour policy:
    ``Q(s,a) += alpha * (r + gamma * max_a' Q(s',a') * (not terminated) - Q(s,a))``.

    ``epsilon`` is a number, or ``(start, end)`` decayed linearly over
    ``decay_episodes`` (default: the first half of the episodes). Episodes are
    reset with seeds ``seed, seed + 1, ...``; ``rng`` draws the exploration.
    With ``record_every = k``, a copy of the table after every k-th episode goes
    into ``snapshots`` (for learning curves).
    """
    if not (isinstance(episodes, int) and episodes >= 1):
        raise ValueError(f"q_learning: expected episodes >= 1, got {episodes!r}")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"q_learning: expected alpha in (0, 1], got {alpha!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"q_learning: expected gamma in [0, 1], got {gamma!r}")
    start, end = (epsilon, epsilon) if np.isscalar(epsilon) else epsilon
    if not (0.0 <= end <= 1.0 and 0.0 <= start <= 1.0):
        raise ValueError(f"q_learning: expected epsilon values in [0, 1], got {epsilon!r}")
    rng = get_rng(rng)
    n_s = env.observation_space.n if hasattr(env, "observation_space") else env.n_states
    n_a = env.action_space.n if hasattr(env, "action_space") else env.n_actions
    env = _fast_steps(env)              # the same steps, fewer microseconds
    decay = decay_episodes or max(1, episodes // 2)
    # The table lives in Python lists while learning (a 4-element NumPy row
    # costs microseconds per max); the arithmetic is the same float64.
    table = [[0.0] * n_a for _ in range(n_s)]
    visits = [[0] * n_a for _ in range(n_s)]
    run = QLearningRun(np.zeros((n_s, n_a)))
    for ep in range(episodes):
        eps = start + (end - start) * min(1.0, ep / decay)
        s, _ = env.reset(seed=seed + ep)
        total, steps, done = 0.0, 0, False
        while not done:
            row = table[s]
            if rng.random() < eps:
                a = int(rng.integers(n_a))
            else:                        # greedy, ties broken at random
                top = max(row)
                best = [i for i, q in enumerate(row) if q == top]
                # integers(1) draws nothing, so a lone best skips the call
                a = best[0] if len(best) == 1 else best[int(rng.integers(len(best)))]
            s2, r, terminated, truncated, _ = env.step(a)
            target = r + (0.0 if terminated else gamma * max(table[s2]))
            row[a] += alpha * (target - row[a])
            visits[s][a] += 1
            s, total, steps = s2, total + r, steps + 1
            done = terminated or truncated
        run.returns.append(total)
        run.lengths.append(steps)
        run.epsilons.append(eps)
        if record_every and (ep + 1) % record_every == 0:
            run.snapshots.append(np.array(table))
    run.Q[:] = table
    run.visits = np.array(visits)
    return run


def run_policy(env, policy, episodes: int = 100, seed: int = 10_000):
    """Follow ``policy`` for ``episodes`` episodes (reset seeds ``seed, seed + 1,
    ...); return the returns, ``(episodes,)``. ``policy`` is an array
    ``(n_states,)`` (state -> action) or a function of the state returning an
    action."""
    act = policy if callable(policy) else (lambda s, table=np.asarray(policy).tolist(): table[s])
    env = _fast_steps(env)
    returns = []
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(act(s)))
            total += r
            done = terminated or truncated
        returns.append(total)
    return np.array(returns)


def policy_values(env, policy, gamma: float = 0.99) -> np.ndarray:
    """Exact values of a fixed policy: solve the linear Bellman equations
    ``V = r_pi + gamma * P_pi V`` (one equation per state) with
    ``np.linalg.solve``; an independent check on ``value_iteration``.
    ``policy: (n_states,)`` int ``-> V: (n_states,)``."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"policy_values: expected gamma in [0, 1), got {gamma!r}")
    P = _model_of(env)
    n_s = len(P)
    policy = np.asarray(policy)
    if policy.shape != (n_s,):
        raise ValueError(f"policy_values: expected one action per state, shape "
                         f"({n_s},), got {policy.shape}")
    A, b = np.eye(n_s), np.zeros(n_s)
    for s in range(n_s):
        for p, s2, r, done in P[s][int(policy[s])]:
            b[s] += p * r
            if not done:
                A[s, s2] -= gamma * p
    return np.linalg.solve(A, b)
