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


def test_step_draws_what_rng_choice_would_draw_from_the_model():
    env = rl.GridWorld(CLASSIC, slip=0.2)
    reference, actions = np.random.default_rng(3), np.random.default_rng(9)
    for episode in range(200):
        s, _ = env.reset(seed=3) if episode == 0 else env.reset()
        done = False
        while not done:
            a = int(actions.integers(4))
            outcomes = env.P[s][a]
            k = reference.choice(len(outcomes), p=[o[0] for o in outcomes])
            s, r, terminated, truncated, _ = env.step(a)
            assert (s, r, terminated) == outcomes[k][1:]
            done = terminated or truncated


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


def _q_learning_by_the_book(env, episodes, alpha, gamma, epsilon, rng):
    """The update written out with a NumPy table, drawing the same random
    numbers in the same order as rl.q_learning (constant epsilon)."""
    Q, visits = np.zeros((env.n_states, 4)), np.zeros((env.n_states, 4), int)
    for ep in range(episodes):
        s, _ = env.reset(seed=ep)
        done = False
        while not done:
            if rng.random() < epsilon:
                a = int(rng.integers(4))
            else:
                best = np.flatnonzero(Q[s] == Q[s].max())
                a = int(best[rng.integers(len(best))])
            s2, r, terminated, truncated, _ = env.step(a)
            target = r + (0.0 if terminated else gamma * Q[s2].max())
            Q[s, a] += alpha * (target - Q[s, a])
            visits[s, a] += 1
            s, done = s2, terminated or truncated
    return Q, visits


def test_q_learning_equals_the_update_written_out_and_counts_visits():
    env = rl.GridWorld(CLASSIC, slip=0.2)
    run = rl.q_learning(env, episodes=300, alpha=0.2, gamma=0.9, epsilon=0.3,
                        rng=np.random.default_rng(4))
    Q, visits = _q_learning_by_the_book(env, 300, 0.2, 0.9, 0.3,
                                        np.random.default_rng(4))
    np.testing.assert_array_equal(run.Q, Q)
    np.testing.assert_array_equal(run.visits, visits)
    assert run.visits.sum() == sum(run.lengths)
    for cell in (3, 5, 7):                  # goal, wall, pit: never updated
        assert (run.visits[cell] == 0).all() and (run.Q[cell] == 0).all()
    assert (run.visits[env.start] > 0).all()


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


def test_frozen_lake_fast_steps_are_the_environment_s_own():
    """q_learning and run_policy step gymnasium's FrozenLake without its
    wrappers; an extra wrapper turns that off, and both ways must give the
    same tables, counts, returns and environment state, bit for bit."""
    gym = pytest.importorskip("gymnasium")
    from nnlib.rl.envs import _fast_steps, _FrozenLakeSteps

    class Plain(gym.Wrapper):                # a wrapper it does not know
        pass

    fast, slow = (gym.make("FrozenLake-v1", is_slippery=True, max_episode_steps=20)
                  for _ in range(2))
    slow = Plain(slow)
    assert isinstance(_fast_steps(fast), _FrozenLakeSteps)
    assert _fast_steps(slow) is slow
    a, b = (rl.q_learning(env, episodes=400, alpha=0.5, gamma=0.99, epsilon=0.3,
                          record_every=100, seed=7, rng=np.random.default_rng(1))
            for env in (fast, slow))
    for name in ("Q", "visits", "snapshots", "returns", "lengths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert max(a.lengths) == 20 and sum(a.returns) > 0      # truncated, and goals
    assert (fast.unwrapped.s, fast.unwrapped.lastaction, fast._elapsed_steps) == \
        (slow.unwrapped.s, slow.unwrapped.lastaction, slow.env._elapsed_steps)
    policy = rl.greedy_policy(a.Q)
    np.testing.assert_array_equal(rl.run_policy(fast, policy, episodes=300),
                                  rl.run_policy(slow, policy, episodes=300))
    assert fast.step(0)[1:4] == slow.step(0)[1:4]   # the wrapped env carries on


# --- exact policy evaluation and policy gradients ------------------------------

def test_policy_values_agree_with_value_iteration():
    env = rl.GridWorld(CLASSIC, slip=0.2)
    V, Q, _ = rl.value_iteration(env, gamma=0.95, tol=1e-13)
    exact = rl.policy_values(env, rl.greedy_policy(Q), gamma=0.95)
    np.testing.assert_allclose(exact, V, atol=1e-10)
    # a worse policy (always left) is worth less everywhere it matters
    left = rl.policy_values(env, np.zeros(env.n_states, int), gamma=0.95)
    assert left[env.start] < V[env.start] - 0.5
    with pytest.raises(ValueError, match=r"one action per state, shape \(12,\), got \(3,\)"):
        rl.policy_values(env, [0, 1, 2])
    with pytest.raises(ValueError, match=r"gamma in \[0, 1\), got 1.0"):
        rl.policy_values(env, np.zeros(12, int), gamma=1.0)


def test_returns_to_go_by_hand():
    np.testing.assert_allclose(rl.returns_to_go([1, 1, 1], 0.5), [1.75, 1.5, 1.0])
    np.testing.assert_allclose(rl.returns_to_go([0, 0, 2], 1.0), [2, 2, 2])
    with pytest.raises(ValueError, match=r"1-D sequence of rewards, got shape \(2, 2\)"):
        rl.returns_to_go(np.ones((2, 2)))


def test_policy_gradient_matches_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, actions, w = rng.normal(size=(7, 3)), rng.integers(0, 3, 7), rng.normal(size=7)
    loss, grad = rl.policy_gradient(logits, actions, w)
    z = torch.tensor(logits, requires_grad=True)
    ref = -(torch.tensor(w) * torch.log_softmax(z, 1)[torch.arange(7), torch.tensor(actions)]).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("args, error, message", [
    ((np.zeros(3), [0], [1.0]), ValueError, r"logits of shape \(N, n_actions\), got \(3,\)"),
    ((np.zeros((2, 3)), [0.0, 1.0], [1, 1]), ValueError, r"2 integer actions"),
    ((np.zeros((2, 3)), [0, 3], [1, 1]), ValueError, r"actions in \[0, 3\), got values from 0 to 3"),
    ((np.zeros((2, 3)), [0, 1], [1.0]), ValueError, r"2 weights, shape \(2,\), got \(1,\)"),
    ((np.zeros((2, 3)), [0, 1], [1.0, np.nan]), ValueError, r"finite weights"),
])
def test_policy_gradient_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        rl.policy_gradient(*args)


def test_sample_action_follows_the_softmax():
    from nnlib import models
    from nnlib.losses import softmax
    policy = models.mlp(2, 3, hidden=(4,), rng=np.random.default_rng(0))
    s = np.array([0.5, -1.0])
    p = softmax(policy(s[None])[0])
    rng = np.random.default_rng(1)
    counts = np.bincount([rl.sample_action(policy, s, rng) for _ in range(20_000)], minlength=3)
    se = np.sqrt(p * (1 - p) / 20_000)
    assert np.all(np.abs(counts / 20_000 - p) < 4 * se)
    assert rl.greedy_action(policy, s) == p.argmax()


def test_reinforce_step_equals_the_same_step_in_torch():
    torch = pytest.importorskip("torch")
    from nnlib import models, optim
    from nnlib.testing import torch_twin
    rng = np.random.default_rng(0)
    policy = models.mlp(4, 2, hidden=(8,), activation="tanh", rng=rng)
    twin = torch_twin(policy, dtype=torch.float64)
    episodes = [rl.Episode(rng.normal(size=(n, 4)), rng.integers(0, 2, n), np.ones(n))
                for n in (5, 9)]
    rl.reinforce_step(policy, optim.Adam(policy.parameters(), lr=0.01), episodes, gamma=0.9)
    S = torch.tensor(np.concatenate([e.states for e in episodes]))
    A = torch.tensor(np.concatenate([e.actions for e in episodes]))
    G = np.concatenate([rl.returns_to_go(e.rewards, 0.9) for e in episodes])
    G = torch.tensor((G - G.mean()) / (G.std() + 1e-8))
    opt = torch.optim.Adam(twin.parameters(), lr=0.01)
    loss = -(G * torch.log_softmax(twin(S), 1)[torch.arange(len(A)), A]).mean()
    loss.backward()
    opt.step()
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(policy.state_dict()[name], p.detach().numpy(),
                                   rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="at least one episode"):
        rl.reinforce_step(policy, None, [])


def test_reinforce_solves_cartpole():
    gym = pytest.importorskip("gymnasium")
    from nnlib import models, optim
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    policy = models.mlp(4, 2, hidden=(32,), activation="tanh", rng=rng)
    run = rl.reinforce(env, policy, optim.Adam(policy.parameters(), lr=0.01), seed=0,
                       rng=rng, progress=False)
    assert run.solved_at is not None and run.episodes == 8 * run.solved_at
    evaluation = rl.run_policy(env, lambda s: rl.greedy_action(policy, s), 20)
    assert evaluation.mean() >= 475
    with pytest.raises(ValueError, match="batch >= 1 episodes, got 0"):
        rl.reinforce(env, policy, None, batch=0)


def test_render_episode_gives_frames_and_rejects_a_silent_env():
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("pygame")
    from nnlib.viz import animations
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    frames = rl.render_episode(env, lambda s: 0, seed=0, every=3)
    assert frames[0].shape == (400, 600, 3) and frames[0].dtype == np.uint8
    episode = rl.play_episode(gym.make("CartPole-v1"), lambda s: 0, seed=0)
    assert len(frames) == 1 + len(episode.rewards) // 3 + (len(episode.rewards) % 3 > 0)
    fig, anim = animations.frames_animation(frames, [str(i) for i in range(len(frames))])
    assert "<img" in animations.animation_html(anim).data
    with pytest.raises(ValueError, match="render_mode='rgb_array', got None"):
        rl.render_episode(gym.make("CartPole-v1"), lambda s: 0)
    with pytest.raises(ValueError, match=r"one title per frame \(2\), got 1"):
        animations.frames_animation(frames[:2], ["a"])


def test_plot_gridworld_checks_shapes():
    import matplotlib.pyplot as plt
    from nnlib.viz import plots
    env = rl.GridWorld(CLASSIC)
    V, Q, _ = rl.value_iteration(env)
    ax = plots.plot_gridworld(env, V, rl.greedy_policy(Q), title="x")
    assert len(ax.patches) == 1                         # the wall
    with pytest.raises(ValueError, match=r"values of shape \(12,\), one per cell, got \(4, 3\)"):
        plots.plot_gridworld(env, V.reshape(4, 3))
    plt.close("all")
