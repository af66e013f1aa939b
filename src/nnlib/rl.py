"""Reinforcement learning: a small gridworld, value iteration and tabular
Q-learning; and a policy-gradient agent (REINFORCE) whose policy is an nnlib
network.

The environments follow gymnasium's interface (``reset(seed=...) -> (state,
info)``, ``step(action) -> (state, reward, terminated, truncated, info)``) and
its toy-text convention for the model: ``P[s][a]`` is a list of
``(probability, next_state, reward, terminated)``. So ``value_iteration`` and
``q_learning`` work unchanged on ``GridWorld`` and on gymnasium's
``FrozenLake-v1`` (``env.unwrapped.P``). ``reinforce`` trains a softmax policy
on any gymnasium environment with a vector state and discrete actions
(``CartPole-v1``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ._checks import NonFiniteError
from .losses import log_softmax, softmax
from .random import get_rng

__all__ = ["GridWorld", "ARROWS", "value_iteration", "policy_values", "q_learning",
           "QLearningRun", "greedy_policy", "run_policy", "returns_to_go",
           "policy_gradient", "sample_action", "play_episode", "Episode",
           "reinforce_step", "reinforce", "ReinforceRun", "render_episode",
           "greedy_action"]

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
    """The action of largest Q in each state (ties: the first).
    ``Q: (n_states, n_actions) -> (n_states,)`` int."""
    return np.asarray(Q).argmax(axis=1)


@dataclass
class QLearningRun:
    """What ``q_learning`` returns: the table and per-episode returns and lengths."""
    Q: np.ndarray
    returns: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    epsilons: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)


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
        if record_every and (ep + 1) % record_every == 0:
            run.snapshots.append(Q.copy())
    return run


def run_policy(env, policy, episodes: int = 100, seed: int = 10_000):
    """Follow ``policy`` for ``episodes`` episodes (reset seeds ``seed, seed + 1,
    ...); return the returns, ``(episodes,)``. ``policy`` is an array
    ``(n_states,)`` (state -> action) or a function of the state returning an
    action."""
    act = policy if callable(policy) else (lambda s, table=np.asarray(policy): table[s])
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


# --- policy gradient ---------------------------------------------------------

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
    from .train import progress_bar

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


def render_episode(env, act, seed: int | None = None, every: int = 1,
                   max_steps: int | None = None) -> list:
    """Play one episode of ``env`` (made with ``render_mode="rgb_array"``) and
    return every ``every``-th frame, first and last included, as ``(H, W, 3)``
    uint8 arrays. Rendering needs pygame; nothing opens a window."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError(f"render_episode: expected an env made with "
                         f"render_mode='rgb_array', got {getattr(env, 'render_mode', None)!r}")
    if not (isinstance(every, int) and every >= 1):
        raise ValueError(f"render_episode: expected every >= 1, got {every!r}")
    s, _ = env.reset(seed=seed)
    frames, t, done = [env.render()], 0, False
    while not done and (max_steps is None or t < max_steps):
        s, _, terminated, truncated, _ = env.step(int(act(s)))
        t += 1
        done = terminated or truncated
        if t % every == 0 or done:
            frames.append(env.render())
    return frames
