"""Environments: a small gridworld with gymnasium's interface and toy-text
model, the model of any such environment, and the frames of an episode of a
gymnasium environment that renders.

``reset(seed=...) -> (state, info)``, ``step(action) -> (state, reward,
terminated, truncated, info)``; the model ``P[s][a]`` is a list of
``(probability, next_state, reward, terminated)``, as in gymnasium's
``FrozenLake-v1`` (``env.unwrapped.P``).
"""
from __future__ import annotations

import bisect
import os

import numpy as np

__all__ = ["GridWorld", "ARROWS", "render_episode"]


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
        # cumulative probabilities of each (s, a)'s outcomes, normalised as
        # Generator.choice does, so that a step draws what choice would
        self._cdf = {}
        for s, row in self.P.items():
            for a, outcomes in row.items():
                cdf = np.array([o[0] for o in outcomes]).cumsum()
                self._cdf[s, a] = (cdf / cdf[-1]).tolist()
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
        action = int(action)
        # the draw of rng.choice(len(outcomes), p=...), without its overhead
        k = bisect.bisect_right(self._cdf[self._state, action], self._rng.random())
        _, s2, reward, terminated = self.P[self._state][action][k]
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_steps
        self._state = None if (terminated or truncated) else s2
        return s2, reward, terminated, truncated, {}


# The wrappers gymnasium.make puts around a toy-text environment; none of
# them changes a step's outcome except TimeLimit, which _FrozenLakeSteps copies.
_PLAIN_WRAPPERS = {"TimeLimit", "OrderEnforcing", "PassiveEnvChecker"}


class _FrozenLakeSteps:
    """Gymnasium's ``FrozenLake-v1`` as ``gymnasium.make`` builds it, stepped
    without the wrappers and without ``categorical_sample``'s NumPy calls
    (microseconds each, most of a tabular run's time). A step draws the same
    ``np_random.random()`` and picks the same outcome (the first whose
    cumulative probability, summed by ``np.cumsum``, exceeds the draw; the
    first if none does, as ``np.argmax`` of all False), so the states,
    rewards and random stream are exactly the environment's. ``reset`` is
    the environment's own; the state, last action and step count are written
    back to the environment after every step."""

    def __init__(self, env, limit):
        self.env, self.limit, self.lake = env, limit, env.unwrapped
        self.P = self.lake.P
        self.cdf = {(s, a): np.cumsum(np.asarray([t[0] for t in out])).tolist()
                    for s, row in self.P.items() for a, out in row.items()}
        self.steps = 0

    def reset(self, seed=None):
        state, info = self.env.reset(seed=seed)
        self.draw, self.steps = self.lake.np_random.random, 0
        return state, info

    def step(self, a):
        lake = self.lake
        cdf = self.cdf[lake.s, a]
        k = bisect.bisect_right(cdf, self.draw())
        p, s2, r, terminated = self.P[lake.s][a][k if k < len(cdf) else 0]
        lake.s, lake.lastaction = s2, a
        self.steps += 1
        self.limit._elapsed_steps = self.steps
        truncated = self.steps >= self.limit._max_episode_steps
        return int(s2), r, terminated, truncated, {"prob": p}


def _fast_steps(env):
    """``env`` itself, or a faster twin of it with the same ``reset``/``step``
    results where one is known (gymnasium's FrozenLake, without rendering,
    inside only the wrappers ``gymnasium.make`` adds, one of them a time
    limit)."""
    inner, limit = env, None
    while type(inner).__name__ in _PLAIN_WRAPPERS and hasattr(inner, "env"):
        if type(inner).__name__ == "TimeLimit":
            if limit is not None:
                return env
            limit = inner
        inner = inner.env
    if (type(inner).__name__ == "FrozenLakeEnv"
            and type(inner).__module__.startswith("gymnasium.envs.toy_text")
            and getattr(inner, "render_mode", None) is None
            and limit is not None
            and isinstance(getattr(limit, "_max_episode_steps", None), int)):
        return _FrozenLakeSteps(env, limit)
    return env


def _model_of(env):
    P = getattr(env, "P", None)
    if P is None:
        P = getattr(getattr(env, "unwrapped", None), "P", None)
    if P is None:
        raise TypeError(f"expected an environment with a model P[s][a] (GridWorld, or a "
                        f"gymnasium toy-text env), got {type(env).__name__}")
    return P


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
