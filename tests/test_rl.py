"""Tabular RL: the gridworld's model and dynamics, value iteration against values
worked out by hand, Q-learning against value iteration, and gymnasium's
FrozenLake through the same functions."""
import numpy as np
import pytest

from nnlib import rl

pytestmark = pytest.mark.rl

CLASSIC = ["...G",          # Russell & Norvig's 4x3 world
           ".#.X",
           "S..."]


def test_corridor_values_by_hand():
    env = rl.GridWorld(["S..G"], step_reward=0.0)
    V, Q, _ = rl.value_iteration(env, gamma=0.9)
    # the goal is entered on the 3rd, 2nd, 1st move: values 0.9^2, 0.9, 1
    np.testing.assert_allclose(V[:3], [0.81, 0.9, 1.0], rtol=1e-9)
    assert V[3] == 0.0                                   # terminal
    assert list(rl.greedy_policy(Q)[:3]) == [2, 2, 2]    # always right
    np.testing.assert_allclose(Q[1, 0], 0.9 * 0.81, rtol=1e-9)   # left, then optimal


def test_model_is_a_distribution_and_walls_block():
    env = rl.GridWorld(CLASSIC, slip=0.2)
    for s in range(env.n_states):
        for a in range(4):
            assert abs(sum(p for p, *_ in env.P[s][a]) - 1.0) < 1e-12
    below_wall = 2 * 4 + 1             # row 2, col 1: moving up hits the wall
    assert env.P[below_wall][3][0][1] == below_wall
    start = env.start
    assert env.cell(start) == "S" and env._move(start, 0) == start    # border


def test_step_follows_the_model_and_rejects_misuse():
    env = rl.GridWorld(["S.G"], step_reward=-0.1)
    s, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 0-3 .*got 7"):
        env.step(7)
    s, r, term, trunc, _ = env.step(2)
    assert (s, r, term) == (1, -0.1, False)
    s, r, term, trunc, _ = env.step(2)
    assert (s, term) == (2, True) and abs(r - 0.9) < 1e-12
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(2)


@pytest.mark.parametrize("rows, message", [
    (["S.", "."], "rows of equal length"),
    (["S.Q"], "only the characters"),
    (["..G"], "exactly one start"),
])
def test_gridworld_rejects_bad_layouts(rows, message):
    with pytest.raises(ValueError, match=message):
        rl.GridWorld(rows)


def test_q_learning_finds_the_optimal_policy_of_a_deterministic_world():
    env = rl.GridWorld(CLASSIC)
    V, Q_star, _ = rl.value_iteration(env, gamma=0.95)
    run = rl.q_learning(env, episodes=3000, alpha=0.5, gamma=0.95,
                        rng=np.random.default_rng(0))
    policy = rl.greedy_policy(run.Q)
    ours = rl.run_policy(env, policy, episodes=1)[0]
    best = rl.run_policy(env, rl.greedy_policy(Q_star), episodes=1)[0]
    assert ours == pytest.approx(best)
    assert run.Q[env.start].max() == pytest.approx(V[env.start], abs=1e-3)
    assert run.epsilons[0] == 1.0 and run.epsilons[-1] == pytest.approx(0.05)


def test_q_learning_rejects_nonsense():
    env = rl.GridWorld(CLASSIC)
    for kwargs, message in [(dict(episodes=0), "episodes >= 1"),
                            (dict(alpha=0.0), r"alpha in \(0, 1\]"),
                            (dict(epsilon=(1.5, 0.1)), r"epsilon values in \[0, 1\]")]:
        with pytest.raises(ValueError, match=message):
            rl.q_learning(env, **(dict(episodes=5) | kwargs))
    with pytest.raises(ValueError, match=r"gamma in \[0, 1\)"):
        rl.value_iteration(env, gamma=1.0)
    with pytest.raises(TypeError, match="model P"):
        rl.value_iteration(object())


def test_frozen_lake_through_the_same_functions():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("FrozenLake-v1", is_slippery=False)
    V, Q, _ = rl.value_iteration(env, gamma=0.99)
    assert V[0] == pytest.approx(0.99 ** 5)            # 6 moves, reward on the last
    returns = rl.run_policy(env, rl.greedy_policy(Q), episodes=5)
    assert (returns == 1.0).all()
    run = rl.q_learning(env, episodes=500, alpha=0.5, gamma=0.99,
                        rng=np.random.default_rng(0))
    assert (rl.run_policy(env, rl.greedy_policy(run.Q), episodes=5) == 1.0).all()
