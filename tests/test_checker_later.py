"""nnlib.exercises for sections 5d to 5f and chapter 8
(``nnlib.exercises.later``).

As tests/test_checker.py for chapters 1 to 3: for every exercise the
solution printed in the chapter (the dropdown's code block that starts with
``# solution: NAME``) passes, typical wrong answers fail with the right
diagnosis, the stub in the chapter says "not yet", no message shows the
solution, and the reference agrees with PyTorch (layer norm, the
cross-entropy, LoRA) or with an independent implementation (loops over
``env.P``, nnlib's ``value_iteration``, the chapter's REINFORCE twin).
"""

import numpy as np
import pytest
from test_checker import harvest, run, shows_no_solution, stub_says_not_yet
from test_checker import solution as shared_solution

import nnlib.exercises as ex
from nnlib import rl
from nnlib.exercises import later as ref

pytestmark = pytest.mark.book

CHAPTERS = {"05d-transformer-block": ["layer_norm_forward"],
            "05e-transformer-lm": ["causal_lm_loss"],
            "05f-lora": ["lora_forward"],
            "08-rl": ["bellman_backup", "reinforce_loss"]}
ALL = [n for names in CHAPTERS.values() for n in names]


SOLUTIONS = harvest(CHAPTERS)


def solution(name):
    return shared_solution(name, SOLUTIONS)


def test_every_exercise_is_registered_with_a_solution_in_its_chapter():
    assert set(ALL) <= set(ex.names())
    assert {n for n in ex.names() if ex.get(n).chapter in CHAPTERS} == set(ALL)
    assert set(ref.__all__) == set(ALL)
    for name in ALL:
        assert name in SOLUTIONS, f"no '# solution: {name}' block in the chapters"
        chapter = SOLUTIONS[name][0]
        assert ex.get(name).chapter == chapter and name in CHAPTERS[chapter]


@pytest.mark.parametrize("name", ALL)
def test_the_chapters_solution_passes(name):
    result = run(name, solution(name))
    assert result and result.passed, result.message
    assert result.message.startswith(f"{name}: passed on {result.cases} cases")
    assert result.cases >= 6


@pytest.mark.parametrize("name", ALL)
def test_the_stub_in_the_chapter_runs_and_says_not_yet(name, capsys):
    stub_says_not_yet(name, SOLUTIONS, capsys)


# --- wrong answers, written as a learner would -------------------------------
def _ln(axes=-1, ddof=0, eps_out=False, no_eps=False, affine="both"):
    def f(x, gamma, beta, eps):
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (
            np.prod([x.shape[a] for a in np.atleast_1d(axes)]) - ddof)
        if no_eps:
            xhat = (x - mu) / np.sqrt(var)
        elif eps_out:
            xhat = (x - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (x - mu) / np.sqrt(var + eps)
        return {"both": gamma * xhat + beta, "none": xhat, "no beta": gamma * xhat,
                "swapped": beta * xhat + gamma}[affine]
    return f


def _lm(shift=1, reduce="mean", stable=True, axis=-1, sign=1, bits=False,
        guard=None):
    def f(logits, ids):
        n, t, v = logits.shape
        targets = ids[:, shift:shift + t]
        if stable:
            z = logits - logits.max(axis=axis, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
            p = np.exp(logp)                  # the softmax, then a guarded log
            if guard == "eps":
                logp = np.log(p + 1e-12)
            elif guard == "clip":
                logp = np.log(np.clip(p, 1e-12, 1.0))
        else:
            logp = np.log(np.exp(logits) / np.exp(logits).sum(axis=axis,
                                                               keepdims=True))
        rows = np.arange(n)[:, None], np.arange(t)[None, :]
        nll = -logp[rows[0], rows[1], targets] / (np.log(2) if bits else 1)
        out = {"mean": nll.mean(), "sum": nll.sum(), "per seq": nll.sum() / n,
               "per pos": nll.sum() / t}[reduce]
        return sign * out
    return f


def _lm_hf_style(logits, ids):
    """Hugging Face's shift applied to windows already cut for it: the last
    position's scores dropped."""
    z = logits[:, :-1]
    y = ids[:, 1:-1]
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, y[..., None], axis=-1).mean()


def _lora(scale="alpha/r", base=True, bias=True, merged_T=True, W_T=True,
          whole=False):
    def f(x, W, b, A, B, alpha, r):
        s = {"alpha/r": alpha / r, "alpha": alpha, "r/alpha": r / alpha,
             "none": 1.0, "alpha/d_in": alpha / A.shape[1]}[scale]
        dW = B @ A                                    # (d_out, d_in)
        update = x @ (dW.T if merged_T else dW)
        y = x @ (W.T if W_T else W) + (b if bias else 0)
        if whole:
            return s * (y + update)
        return (y if base else 0) + s * update
    return f


def _backup(discount=True, reduce="max", bootstrap_terminal=False,
            zero_target=False, reward_unweighted=False, current=False,
            mask_current=False):
    def f(V, P, R, terminal, gamma):
        S, A, _ = P.shape
        g = gamma if discount else 1.0
        Q = np.zeros((S, A))
        for s in range(S):
            for a in range(A):
                for s2 in range(S):
                    here = s if current else s2
                    v = V[here]
                    if terminal[s if mask_current else here] and not bootstrap_terminal:
                        v = 0.0
                    target = R[s, a, s2] + g * v
                    if zero_target and terminal[s2]:
                        target = 0.0
                    if reward_unweighted:
                        Q[s, a] += R[s, a, s2] + P[s, a, s2] * g * v
                    else:
                        Q[s, a] += P[s, a, s2] * target
        V_new = {"max": Q.max(axis=1), "mean": Q.mean(axis=1),
                 "sum": Q.sum(axis=1)}[reduce]
        return V_new, Q
    return f


def _pg(returns="to go", normalise="both", ddof=0, sign=1, reduce="mean",
        eps=1e-8, gamma_t=False):
    def f(log_probs, rewards, gamma):
        T = len(rewards)
        G = np.zeros(T)
        for t in range(T):
            for k in range(T):
                if returns == "to go" and k >= t:
                    G[t] += gamma ** (k - t) * rewards[k]
                elif returns == "undiscounted" and k >= t:
                    G[t] += rewards[k]
                elif returns == "from next" and k > t:
                    G[t] += gamma ** (k - t - 1) * rewards[k]
                elif returns == "from start" and k >= t:
                    G[t] += gamma ** k * rewards[k]
                elif returns == "so far" and k <= t:
                    G[t] += rewards[k]
                elif returns == "total":
                    G[t] += gamma ** k * rewards[k]
        if normalise in ("both", "centre"):
            G = G - G.mean()
        if normalise in ("both", "scale"):
            G = G / (np.std(G, ddof=ddof) + eps)
        if gamma_t:                                    # the derivation's factor
            G = G * gamma ** np.arange(T)
        terms = G * log_probs
        return -sign * (terms.mean() if reduce == "mean" else terms.sum())
    return f


# name -> [(wrong answer, words the diagnosis must contain)]
WRONG = {
    "layer_norm_forward": [
        (_ln(axes=0), "normalised over the batch (axis 0)"),
        (_ln(axes=(0, 1)), "over the batch and the positions"),
        (_ln(axes=(1, 2)), "normalised each sequence as a whole"),
        (_ln(ddof=1), "used the unbiased variance"),
        (_ln(eps_out=True), "eps outside the square root"),
        (_ln(no_eps=True), "without eps"),
        (_ln(affine="none"), "forgot the scale gamma and the shift beta"),
        (_ln(affine="no beta"), "forgot the shift beta"),
        (_ln(affine="swapped"), "swapped gamma and beta"),
    ],
    "causal_lm_loss": [
        (_lm(shift=0), "the targets are not shifted"),
        (_lm_hf_style, "shifted the scores as well as the targets"),
        (_lm(reduce="sum"), "summed over all the predictions"),
        (_lm(reduce="per seq"), "summed over the positions and averaged over"),
        (_lm(reduce="per pos"), "averaged over the positions and summed over"),
        (_lm(stable=False), "compute log p as z - max"),
        (_lm(guard="eps"), "adding eps to p (log(p + eps)) or clipping p hides"),
        (_lm(guard="clip"), "finite but wrong on large scores"),
        (_lm(axis=1), "the softmax is over the positions"),
        (_lm(sign=-1), "the sign is wrong"),
        (_lm(bits=True), "used log base 2"),
    ],
    "lora_forward": [
        (_lora(scale="alpha"), "scaled the update by alpha: the scale is alpha / r"),
        (_lora(scale="r/alpha"), "scaled the update by r / alpha"),
        (_lora(scale="none"), "forgot the scale alpha / r"),
        (_lora(scale="alpha/d_in"), "r is A.shape[0] (the rows of A), not d_in"),
        (_lora(base=False), "forgot the base term"),
        (_lora(bias=False), "forgot the bias b"),
        (_lora(whole=True), "scaled the base term too"),
        (_lora(merged_T=False), "computed x (B A)"),
        (_lora(W_T=False), "computed x W: W has PyTorch's layout"),
    ],
    "bellman_backup": [
        (_backup(discount=False), "forgot the discount"),
        (_backup(reduce="mean"), "averaged over the actions"),
        (_backup(reduce="sum"), "summed over the actions"),
        (_backup(bootstrap_terminal=True), "bootstrapped from terminal states"),
        (_backup(zero_target=True), "dropped the reward of the step into a terminal"),
        (_backup(reward_unweighted=True), "the rewards are not weighted"),
        (_backup(current=True), "used the value of the current state"),
        (_backup(mask_current=True), "applied the terminal mask to the current state"),
    ],
    "reinforce_loss": [
        (_pg(returns="undiscounted"), "the returns are not discounted"),
        (_pg(returns="from start"), "discounted from the start of the episode"),
        (_pg(returns="so far"), "summed the rewards up to step t"),
        (_pg(returns="total"), "every step got the same weight"),
        (_pg(sign=-1), "wrong sign"),
        (_pg(normalise="none"), "the returns are not standardised"),
        (_pg(normalise="centre"), "did not divide by their standard deviation"),
        (_pg(normalise="scale"), "did not subtract their mean"),
        (_pg(ddof=1), "sample standard deviation (ddof=1)"),
        (_pg(eps=0.0), "divided by a standard deviation of 0"),
        (_pg(reduce="sum"), "summed over the steps"),
        (_pg(returns="from next"), "the return-to-go starts at step t + 1"),
        (_pg(gamma_t=True), "weighted step t by gamma^t as well"),
    ],
}


def test_every_exercise_has_at_least_three_wrong_answers():
    assert set(WRONG) == set(ALL)
    assert all(len(v) >= 3 for v in WRONG.values())
    assert all(len(ex.get(n).diagnosers) >= 3 for n in ALL)


@pytest.mark.parametrize("name,k", [(n, k) for n in ALL for k in range(len(WRONG[n]))])
def test_a_wrong_answer_fails_with_its_diagnosis(name, k):
    fn, words = WRONG[name][k]
    with np.errstate(all="ignore"):
        result = run(name, fn)
    assert not result and not result.passed, result.message
    assert f"{name}: not yet" in result.message
    assert "likely cause:" in result.message, result.message
    flat = " ".join(result.message.split())
    assert words in flat, f"expected a diagnosis with {words!r}:\n{result.message}"
    assert "expected" in flat and "got" in flat


def test_a_correct_answer_written_differently_passes():
    """The learner-style twins with no mistake switched on are right too."""
    assert run("layer_norm_forward", _ln())
    assert run("causal_lm_loss", _lm())
    assert run("lora_forward", _lora())
    assert run("bellman_backup", _backup())
    assert run("reinforce_loss", _pg())


@pytest.mark.parametrize("name", ALL)
def test_no_message_shows_the_solution_or_the_reference(name):
    with np.errstate(all="ignore"):
        shows_no_solution(name, SOLUTIONS, ref, WRONG[name])


def _cases(name):
    return ex.get(name).cases(np.random.default_rng(0))


def test_every_case_set_has_a_batch_of_one_odd_sizes_and_its_edge_cases():
    for name in ALL:
        cases = _cases(name)
        assert len(cases) >= 6 and any(c.note for c in cases)
        shapes = [np.shape(c.args[0]) for c in cases]
        assert any(any(d % 2 and d > 1 for d in s) for s in shapes), (name, shapes)
    ln = _cases("layer_norm_forward")
    assert min(c.args[0].shape[0] for c in ln) == 1
    assert {c.args[0].ndim for c in ln} == {2, 3}
    assert any(c.args[0].shape[-1] == 1 for c in ln)                 # E = 1
    assert any((c.args[0].std(axis=-1) == 0).any() and c.args[0].shape[-1] > 1
               for c in ln)                                          # a constant token
    assert any(c.args[3] >= 0.1 for c in ln)                         # a large eps
    lm = _cases("causal_lm_loss")
    assert min(c.args[0].shape[0] for c in lm) == 1
    assert any(c.args[0].shape[1] == 1 for c in lm)                  # T = 1
    assert all(c.args[1].shape == (c.args[0].shape[0], c.args[0].shape[1] + 1)
               for c in lm)
    assert any(np.abs(c.args[0]).max() > 710 for c in lm)            # exp overflows
    lora = _cases("lora_forward")
    assert min(c.args[0].shape[0] for c in lora) == 1
    assert any(c.args[0].ndim == 3 for c in lora)
    assert any(not c.args[4].any() for c in lora)                    # B = 0
    assert all(c.args[3].shape[0] == c.args[6] for c in lora)
    assert len({c.args[5] / c.args[6] for c in lora}) > 3
    first = lora[0].args                     # square, so transposes run
    assert first[1].shape[0] == first[1].shape[1] and first[5] not in (first[6], 1.0)
    mdp = _cases("bellman_backup")
    assert any(c.args[1].shape[1] == 1 for c in mdp)                 # one action
    assert any(not c.args[3].any() for c in mdp)                     # no terminal
    assert {0.0, 1.0} <= {c.args[4] for c in mdp}
    for c in mdp:
        V, P, R, terminal, gamma = c.args
        np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
        for s in np.flatnonzero(terminal):                           # absorbing
            assert (P[s, :, s] == 1).all() and not R[s].any()
    pg = _cases("reinforce_loss")
    assert any(len(c.args[0]) == 1 for c in pg)                      # one step
    assert {0.0, 1.0} <= {c.args[2] for c in pg}
    assert all((c.args[0] < 0).all() for c in pg)                    # log-probabilities


# --- the references agree with PyTorch or with an independent route ------------
def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-8, atol=1e-10)


def test_layer_norm_agrees_with_torch_and_with_nnlib_layer():
    torch = pytest.importorskip("torch")
    import nnlib

    for case in _cases("layer_norm_forward"):
        x, gamma, beta, eps = case.args
        e = x.shape[-1]
        y = torch.nn.functional.layer_norm(torch.tensor(x), (e,), torch.tensor(gamma),
                                           torch.tensor(beta), eps)
        _close(ref.layer_norm_forward(*case.args), y)
        layer = nnlib.LayerNorm(e, eps=eps)
        layer.weight.data[...] = gamma
        layer.bias.data[...] = beta
        _close(ref.layer_norm_forward(*case.args), layer(x))


def test_causal_lm_loss_agrees_with_torch():
    torch = pytest.importorskip("torch")
    for case in _cases("causal_lm_loss"):
        logits, ids = case.args
        v = logits.shape[-1]
        loss = torch.nn.functional.cross_entropy(
            torch.tensor(logits).reshape(-1, v), torch.tensor(ids[:, 1:]).reshape(-1))
        _close(ref.causal_lm_loss(*case.args), loss.item())
        # and Hugging Face's form: logits for all T + 1 positions, shifted inside
        full = np.concatenate([logits, np.zeros_like(logits[:, :1])], axis=1)
        hf = torch.nn.functional.cross_entropy(
            torch.tensor(full)[:, :-1].reshape(-1, v), torch.tensor(ids)[:, 1:].reshape(-1))
        _close(ref.causal_lm_loss(*case.args), hf.item())


def test_lora_agrees_with_torch_and_with_the_merged_weight():
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    for case in _cases("lora_forward"):
        x, W, b, A, B, alpha, r = (torch.tensor(a) if isinstance(a, np.ndarray) else a
                                   for a in case.args)
        peft_style = fn.linear(x, W, b) + (alpha / r) * fn.linear(fn.linear(x, A), B)
        merged = fn.linear(x, W + (alpha / r) * B @ A, b)
        got = ref.lora_forward(*case.args)
        _close(got, peft_style)
        _close(got, merged)


def _backup_from_model(env, V, gamma):
    """One backup by loops over ``env.P[s][a]``'s ``(p, s', r, done)``."""
    n = env.n_states
    Q = np.zeros((n, env.n_actions))
    for s in range(n):
        for a in range(env.n_actions):
            Q[s, a] = sum(p * (r + gamma * V[s2] * (not done))
                          for p, s2, r, done in env.P[s][a])
    return Q.max(axis=1), Q


def test_bellman_backup_agrees_with_loops_and_with_value_iteration():
    for case in _cases("bellman_backup"):
        got = ref.bellman_backup(*case.args)
        V_loops, Q_loops = _backup()(*case.args)
        _close(got[0], V_loops)
        _close(got[1], Q_loops)
    # on the chapter's worlds, from the model P[s][a] itself
    rows = ["...G", ".#.X", "S..."]
    for world, gamma in [(rl.GridWorld(rows, step_reward=-0.04, slip=0.2), 0.99),
                         (rl.GridWorld(rows, step_reward=-2.0, slip=0.2), 0.99),
                         (rl.GridWorld(rows, step_reward=-0.04, slip=0.0), 0.5)]:
        n = world.n_states
        P, R = np.zeros((n, 4, n)), np.zeros((n, 4, n))
        terminal = np.array([world.cell(s) in "GX#" for s in range(n)])
        for s in range(n):
            for a in range(4):
                for p, s2, r, done in world.P[s][a]:
                    P[s, a, s2] += p
                    R[s, a, s2] = r
                    assert done == terminal[s2]
        V = np.random.default_rng(0).standard_normal(n)
        got = ref.bellman_backup(V, P, R, terminal, gamma)
        expected = _backup_from_model(world, V, gamma)
        _close(got[0], expected[0])
        _close(got[1], expected[1])
        V = np.zeros(n)
        for _ in range(5000):                    # sweeps until nothing changes
            V_next, Q = ref.bellman_backup(V, P, R, terminal, gamma)
            if np.abs(V_next - V).max() < 1e-12:
                break
            V = V_next
        V_star, Q_star, _ = rl.value_iteration(world, gamma=gamma, tol=1e-12)
        np.testing.assert_allclose(V_next, V_star, rtol=0, atol=1e-9)
        np.testing.assert_allclose(Q, Q_star, rtol=0, atol=1e-9)
    # a control: the same comparison fails when terminal states bootstrap
    world = rl.GridWorld(rows, step_reward=-0.04, slip=0.2)
    V = np.random.default_rng(1).standard_normal(world.n_states)
    wrong = _backup(bootstrap_terminal=True)(V, P, R, terminal, 0.5)
    assert np.abs(wrong[1] - ref.bellman_backup(V, P, R, terminal, 0.5)[1]).max() > 0.1


def test_reinforce_loss_agrees_with_torch_and_with_reinforce_step():
    torch = pytest.importorskip("torch")
    for case in _cases("reinforce_loss"):
        log_probs, rewards, gamma = case.args
        G = np.zeros(len(rewards))                     # a loop, not returns_to_go
        for t in range(len(rewards)):
            G[t] = sum(gamma ** (k - t) * rewards[k] for k in range(t, len(rewards)))
        W = torch.tensor((G - G.mean()) / (G.std() + 1e-8))   # the chapter's twin
        loss = -(W * torch.tensor(log_probs)).mean()
        _close(ref.reinforce_loss(*case.args), loss.item())
    # the loss reinforce_step reports for a batch of one episode
    import nnlib
    from nnlib import models, optim

    rng = np.random.default_rng(0)
    policy = models.mlp(3, 2, hidden=(5,), activation="tanh", rng=rng)
    episode = rl.Episode(rng.standard_normal((7, 3)), rng.integers(0, 2, size=7),
                         rng.standard_normal(7))
    logp = nnlib.losses.log_softmax(policy(episode.states), axis=1)[
        np.arange(7), episode.actions]
    step_loss = rl.reinforce_step(policy, optim.SGD(policy.parameters(), lr=0.0),
                                  [episode], gamma=0.9)
    _close(ref.reinforce_loss(logp, episode.rewards, 0.9), step_loss)

