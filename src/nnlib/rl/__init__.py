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

The modules (every name is also here, ``nnlib.rl.X``): ``envs`` (``GridWorld``,
``ARROWS``, ``render_episode``), ``tabular`` (value iteration, exact policy
values, Q-learning, ``run_policy``) and ``reinforce`` (the policy gradient and REINFORCE).
"""
from .envs import ARROWS, GridWorld, render_episode
from .reinforce import (Episode, ReinforceRun, greedy_action, play_episode,
                              policy_gradient, reinforce, reinforce_step, returns_to_go,
                              sample_action)
from .tabular import (QLearningRun, greedy_policy, policy_values, q_learning, run_policy,
                      value_iteration)

__all__ = ["GridWorld", "ARROWS", "value_iteration", "policy_values", "q_learning",
           "QLearningRun", "greedy_policy", "run_policy", "returns_to_go",
           "policy_gradient", "sample_action", "play_episode", "Episode",
           "reinforce_step", "reinforce", "ReinforceRun", "render_episode",
           "greedy_action"]
