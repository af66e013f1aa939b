"""Tabular reinforcement learning: a small gridworld, value iteration and
Q-learning.

The environments follow gymnasium's interface (``reset(seed=...) -> (state,
info)``, ``step(action) -> (state, reward, terminated, truncated, info)``) and
its toy-text convention for the model: ``P[s][a]`` is a list of
``(probability, next_state, reward, terminated)``. So ``value_iteration`` and
``q_learning`` work unchanged on ``GridWorld`` and on gymnasium's
``FrozenLake-v1`` (``env.unwrapped.P``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .random import get_rng

__all__ = ["GridWorld", "ARROWS", "value_iteration", "q_learning", "QLearningRun",
           "greedy_policy", "run_policy"]

#: Action order of GridWorld (and FrozenLake): left, down, right, up.
ARROWS = "←↓→↑"
_MOVES = [(0, -1), (1, 0), (0, 1), (-1, 0)]


class GridWorld:
    """A grid given as text, one string per row:

    ``S`` start, ``G`` goal (reward ``goal_reward``, episode ends), ``X`` pit
    (reward ``pit_reward``, ends), ``#`` wall, ``.`` free. Every step costs
    ``step_reward``. Actions 0-3 move left, down, right, up; bumping into a wall
    or the border leaves the agent in place. With ``slip > 0`` the agent moves
    in one of the two perpendicular directions instead, each with probability
    ``slip / 2``. States are numbered row by row (``row * width + col``).
    """

    def __init__(self, rows, step_reward: float = -0.04, goal_reward: float = 1.0,
                 pit_reward: float = -1.0, slip: float = 0.0, max_steps: int = 100):
        rows = [str(r) for r in rows]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ValueError(f"GridWorld: expected rows of equal length, got {rows!r}")
        bad = sorted(set("".join(rows)) - set("SGX#."))
        if bad:
            raise ValueError(f"GridWorld: expected only the characters S G X # ., got {bad}")
        if "".join(rows).count("S") != 1 or "G" not in "".join(rows):
            raise ValueError("GridWorld: expected exactly one start S and at least one goal G")
        if not 0.0 <= slip < 1.0:
            raise ValueError(f"GridWorld: expected slip in [0, 1), got {slip!r}")
        self.rows, self.height, self.width = rows, len(rows), len(rows[0])
        self.n_states, self.n_actions = self.height * self.width, 4
        self.slip, self.max_steps = slip, max_steps
        self.start = "".join(rows).index("S")
        self.rewards = {"G": goal_reward, "X": pit_reward}
        self.step_reward = step_reward
        self.P = self._model()
        self._state, self._steps, self._rng = None, 0, np.random.default_rng()

    def cell(self, s: int) -> str:
        return self.rows[s // self.width][s % self.width]

    def _move(self, s, a):
        r, c = divmod(s, self.width)
        dr, dc = _MOVES[a]
        r2, c2 = r + dr, c + dc
        if 0 <= r2 < self.height and 0 <= c2 < self.width and self.rows[r2][c2] != "#":
            return r2 * self.width + c2
        return s

    def _model(self):
        P = {}
        for s in range(self.n_states):
            P[s] = {}
            for a in range(4):
                if self.cell(s) in "GX#":       # terminal (or unreachable): absorbing
                    P[s][a] = [(1.0, s, 0.0, True)]
                    continue
                outcomes = [(1.0 - self.slip, a)]
                if self.slip:
                    outcomes += [(self.slip / 2, (a + 1) % 4), (self.slip / 2, (a + 3) % 4)]
                P[s][a] = []
                for prob, direction in outcomes:
                    s2 = self._move(s, direction)
                    kind = self.cell(s2)
                    reward = self.step_reward + self.rewards.get(kind, 0.0)
                    P[s][a].append((prob, s2, reward, kind in "GX"))
        return P

    def reset(self, seed: int | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state, self._steps = self.start, 0
        return self._state, {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("GridWorld.step: call reset() before the first step and "
                               "after an episode ends")
        if action not in range(4):
            raise ValueError(f"GridWorld.step: expected an action 0-3 ({ARROWS}), got {action!r}")
        outcomes = self.P[self._state][int(action)]
        k = self._rng.choice(len(outcomes), p=[o[0] for o in outcomes])
        _, s2, reward, terminated = outcomes[k]
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_steps
        self._state = None if (terminated or truncated) else s2
        return s2, reward, terminated, truncated, {}


def _model_of(env):
    P = getattr(env, "P", None)
    if P is None:
        P = getattr(getattr(env, "unwrapped", None), "P", None)
    if P is None:
        raise TypeError(f"expected an environment with a model P[s][a] (GridWorld, or a "
                        f"gymnasium toy-text env), got {type(env).__name__}")
    return P


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
    """The action of largest Q in each state (ties: the first)."""
    return np.asarray(Q).argmax(axis=1)


@dataclass
class QLearningRun:
    """What ``q_learning`` returns: the table and per-episode returns and lengths."""
    Q: np.ndarray
    returns: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    epsilons: list = field(default_factory=list)


def q_learning(env, episodes: int, alpha: float = 0.1, gamma: float = 0.99,
               epsilon=(1.0, 0.05), decay_episodes: int | None = None, rng=None,
               seed: int = 0) -> QLearningRun:
    """Tabular Q-learning with an epsilon-greedy behaviour policy:
    ``Q(s,a) += alpha * (r + gamma * max_a' Q(s',a') * (not terminated) - Q(s,a))``.

    ``epsilon`` is a number, or ``(start, end)`` decayed linearly over
    ``decay_episodes`` (default: the first half of the episodes). Episodes are
    reset with seeds ``seed, seed + 1, ...``; ``rng`` draws the exploration.
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
    decay = decay_episodes or max(1, episodes // 2)
    run = QLearningRun(np.zeros((n_s, n_a)))
    Q = run.Q
    for ep in range(episodes):
        eps = start + (end - start) * min(1.0, ep / decay)
        s, _ = env.reset(seed=seed + ep)
        total, steps, done = 0.0, 0, False
        while not done:
            if rng.random() < eps:
                a = int(rng.integers(n_a))
            else:                        # greedy, ties broken at random
                best = np.flatnonzero(Q[s] == Q[s].max())
                a = int(best[rng.integers(len(best))])
            s2, r, terminated, truncated, _ = env.step(a)
            target = r + (0.0 if terminated else gamma * Q[s2].max())
            Q[s, a] += alpha * (target - Q[s, a])
            s, total, steps = s2, total + r, steps + 1
            done = terminated or truncated
        run.returns.append(total)
        run.lengths.append(steps)
        run.epsilons.append(eps)
    return run


def run_policy(env, policy, episodes: int = 100, seed: int = 10_000):
    """Follow ``policy`` (an array: state -> action) for ``episodes`` episodes
    (reset seeds ``seed, seed + 1, ...``); return the array of returns."""
    policy = np.asarray(policy)
    returns = []
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(policy[s]))
            total += r
            done = terminated or truncated
        returns.append(total)
    return np.array(returns)
