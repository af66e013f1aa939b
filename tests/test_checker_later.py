"""nnlib.exercises for sections 5d to 5f and chapter 8
(``nnlib.exercises.later``).

As tests/test_checker.py for chapters 1 to 3: for every exercise the
solution printed in the chapter (the dropdown's code block that starts with
``# solution: NAME``) passes, typical wrong answers fail with the right
diagnosis, the stub in the chapter says "not yet", no message shows the
solution, and the reference agrees with PyTorch (layer norm, patches
put back by ``fold``, the cross-entropy, the cached step as causal attention's
last row, LoRA) or with an independent implementation (loops over
``env.P``, nnlib's ``value_iteration``, the chapter's REINFORCE twin).
"""

import numpy as np
import pytest
from test_checker import (harvest, registered_in_their_chapters, run, shows_no_solution,
                          solution_passes, stub_says_not_yet)
from test_checker import solution as shared_solution

import nnlib.exercises as ex
from nnlib import rl
from nnlib.exercises import later as ref

pytestmark = pytest.mark.book

CHAPTERS = {"05d-transformer-block": ["layer_norm_forward", "unpatchify"],
            "05e-transformer-lm": ["causal_lm_loss", "kv_cache_step"],
            "05f-lora": ["lora_forward", "lora_sgd_step"],
            "08-rl": ["bellman_backup", "reinforce_loss_batch"]}
ALL = [n for names in CHAPTERS.values() for n in names]


SOLUTIONS = harvest(CHAPTERS)


def solution(name):
    return shared_solution(name, SOLUTIONS)


def test_every_exercise_is_registered_with_a_solution_in_its_chapter():
    registered_in_their_chapters(CHAPTERS, SOLUTIONS)
    assert set(ref.__all__) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_the_chapters_solution_passes(name):
    solution_passes(name, SOLUTIONS)


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


def _lora(scale="alpha/r", grads_scaled=True, merge_scaled=True, sequential=False,
          linear=False, full=False, mean=False, ascent=False):
    """A learner's LoRA step: the gradients by loops over the rows, then
    SGD, then the merged weights before and after."""
    def f(x, dy, A, B, alpha, r, lr):
        s = {"alpha/r": alpha / r, "alpha": alpha}[scale]
        X, G = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        g = s if grads_scaled else 1.0
        dA, dB = np.zeros_like(A), np.zeros_like(B)
        for row in range(len(X)):
            u = A @ X[row]                                # (r,)
            dB += g * np.outer(G[row], u)
        sign = 1.0 if ascent else -1.0
        B_new = B + sign * lr * dB / (len(X) if mean else 1)
        B_used = B_new if sequential else B
        for row in range(len(X)):
            dA += g * np.outer(B_used.T @ G[row], X[row])
        A_new = A + sign * lr * dA / (len(X) if mean else 1)
        m = s if merge_scaled else 1.0
        if full:
            dW = -lr * G.T @ X
        elif linear:
            dW = -lr * m * (dB @ A + B @ dA)
        else:
            dW = m * B_new @ A_new - m * B @ A
        return A_new, B_new, dW
    return f


def _unpatch(way="right"):
    """A learner's unpatchify, patch by patch into an empty image (or a
    mistake, as a learner would write it)."""
    def f(patches, p, H, W):
        n, length, cpp = patches.shape
        c = cpp // (p * p)
        rows, cols = H // p, W // p
        if way == "reshape":
            return patches.reshape(n, c, H, W)
        if way == "channels last, reshape":
            return patches.reshape(n, H, W, c).transpose(0, 3, 1, 2)
        if way == "split wrong":
            return patches.reshape(n, rows, cols, c, p, p).transpose(
                0, 3, 1, 2, 4, 5).reshape(n, c, H, W)
        if way == "grid swapped":
            return patches.reshape(n, cols, rows, c, p, p).transpose(
                0, 3, 1, 4, 2, 5).reshape(n, c, H, W)
        if way == "cutting's transpose":
            return patches.reshape(n, rows, cols, c, p, p).transpose(
                0, 2, 4, 1, 3, 5).reshape(n, c, H, W)
        if way == "unfold layout":
            return patches.transpose(0, 2, 1).reshape(n, c, H, W)
        if way == "channels first":
            return patches.reshape(n, c, rows, cols, p, p).transpose(
                0, 1, 2, 4, 3, 5).reshape(n, c, H, W)
        images = np.zeros((n, c, H, W))
        for i in range(rows):
            for j in range(cols):
                token = patches[:, j * rows + i if way == "columns" else i * cols + j]
                if way == "channels last":
                    block = token.reshape(n, p, p, c).transpose(0, 3, 1, 2)
                else:
                    block = token.reshape(n, c, p, p)
                if way == "patch transposed":
                    block = block.transpose(0, 1, 3, 2)
                images[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p] = block
        return images
    return f


def _kv(way="right"):
    """A learner's cached step: a loop over the sequences of the batch."""
    def f(q, k, v, K_cache, V_cache):
        if way == "front":
            K, V = np.concatenate([k[:, None], K_cache], 1), np.concatenate([v[:, None], V_cache], 1)
        elif way == "query":
            K, V = np.concatenate([K_cache, q[:, None]], 1), np.concatenate([V_cache, v[:, None]], 1)
        elif way == "replace":
            K, V = k[:, None].copy(), v[:, None].copy()
        else:
            K, V = np.concatenate([K_cache, k[:, None]], 1), np.concatenate([V_cache, v[:, None]], 1)
        Ka, Va = (K_cache, V_cache) if way == "before append" else (K, V)
        d = q.shape[-1]
        scale = {"unscaled": 1.0, "over d": 1.0 / d, "d_v": 1.0 / np.sqrt(v.shape[-1]),
                 "t": 1.0 / np.sqrt(K.shape[1])}.get(way, 1.0 / np.sqrt(d))
        out = np.empty((len(q), V.shape[-1]))
        scores = np.stack([Ka[n] @ q[n] for n in range(len(q))]) * scale
        if way == "batch axis":
            w = np.exp(scores - scores.max(axis=0)); w = w / w.sum(axis=0)
        elif way == "overflow":
            w = np.exp(scores); w = w / w.sum(axis=1, keepdims=True)
        elif way == "global max":
            w = np.exp(scores - scores.max()); w = w / w.sum(axis=1, keepdims=True)
        else:
            w = np.exp(scores - scores.max(axis=1, keepdims=True))
            w = w / w.sum(axis=1, keepdims=True)
        for n in range(len(q)):
            out[n] = w[n] @ Va[n]
        if way == "old cache":
            return out, K_cache, V_cache
        return out, K, V
    return f


def _lora_fw(way="right"):
    """A learner's LoRA output, through the merged update (or a mistake)."""
    def f(x, W, b, A, B, alpha, r):
        s = {"alpha": alpha, "r/alpha": r / alpha, "no scale": 1.0, "//": alpha // r,
             "sqrt": alpha / np.sqrt(r)}.get(way, alpha / r)
        delta = s * (B @ A)                                # (d_out, d_in)
        base = (x @ W if way == "W" else x @ W.T) + (0.0 if way == "no bias" else b)
        if way == "merged, no transpose":
            return x @ (W + delta) + b
        if way == "BA":
            return base + x @ delta
        if way == "update only":
            return x @ delta.T
        if way == "scale all":
            return s * (base + x @ (B @ A).T)
        return base + x @ delta.T
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


def _pg(returns="to go", normalise="both", ddof=0, sign=1, reduce="batch",
        eps=1e-8, per_episode=False):
    """A learner's REINFORCE loss of a stream of episodes: cut at the dones
    (or not), returns by a double loop, standardised and averaged."""
    def f(log_probs, rewards, dones, gamma):
        T = len(rewards)
        if returns == "across":
            cuts = [0, T]
        else:
            cuts = [0] + [t + 1 for t in range(T) if dones[t]]
        if returns == "off by one":                    # dones read as first steps
            cuts = sorted({0, T} | {t for t in range(T) if dones[t]})
        episodes = [(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
        G = np.zeros(T)
        for a, b in episodes:
            for t in range(a, b):
                for k in range(t, b):
                    power = {"to go": k - t, "across": k - t, "off by one": k - t,
                             "undiscounted": 0, "from start": k - a}[returns]
                    G[t] += gamma ** power * rewards[k]

        def standardise(g):
            if normalise in ("both", "centre"):
                g = g - g.mean()
            if normalise in ("both", "scale"):
                g = g / (np.std(g, ddof=ddof) + eps)
            return g
        if per_episode:
            G = np.concatenate([standardise(G[a:b]) for a, b in episodes])
        else:
            G = standardise(G)
        terms = G * log_probs
        if reduce == "per episode":
            return -sign * np.mean([terms[a:b].mean() for a, b in episodes])
        return -sign * terms.mean()
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
    "unpatchify": [
        (_unpatch("reshape"), "put the image back with a plain reshape"),
        (_unpatch("channels last"), "read each patch as (p, p, C)"),
        (_unpatch("channels last, reshape"), "reshaped to (N, H, W, C) and moved"),
        (_unpatch("cutting's transpose"), "used the cutting's transpose (0, 2, 4, 1, 3, 5)"),
        (_unpatch("unfold layout"), "moved the token axis last and reshaped"),
        (_unpatch("channels first"), "split the patches as (C, H/p, W/p, p, p)"),
        (_unpatch("split wrong"), "split the patch axis as (H/p, W/p, p, p)"),
        (_unpatch("columns"), "read the patches as numbered down the columns"),
        (_unpatch("patch transposed"), "transposed each patch"),
        (_unpatch("grid swapped"), "read the grid as W/p rows of H/p patches"),
    ],
    "kv_cache_step": [
        (_kv("before append"), "attended before appending"),
        (_kv("front"), "put the new key and value in front of the cache"),
        (_kv("query"), "appended the query to the keys"),
        (_kv("replace"), "replaced the cache by the new position"),
        (_kv("unscaled"), "the scores are not scaled"),
        (_kv("over d"), "the scores are divided by d"),
        (_kv("batch axis"), "the softmax is over the batch (axis 0)"),
        (_kv("overflow"), "exp overflowed, or underflowed to 0 / 0, on large scores"),
        (_kv("global max"), "not the largest of the whole batch"),
        (_kv("d_v"), "scaled with the size of a value"),
        (_kv("t"), "scaled with the number of positions t"),
        (_kv("old cache"), "returned the old cache"),
    ],
    "lora_forward": [
        (_lora_fw("alpha"), "scaled the update by alpha: the scale is alpha / r"),
        (_lora_fw("r/alpha"), "scaled the update by r / alpha"),
        (_lora_fw("no scale"), "forgot the scale alpha / r of the update"),
        (_lora_fw("update only"), "returned the update alone"),
        (_lora_fw("no bias"), "forgot the frozen bias b"),
        (_lora_fw("scale all"), "scaled the frozen layer's output too"),
        (_lora_fw("W"), "multiplied by W, not by its transpose"),
        (_lora_fw("BA"), "multiplied by B A, not by its transpose"),
        (_lora_fw("merged, no transpose"), "multiplied by the merged weight"),
        (_lora_fw("//"), "an integer division"),
        (_lora_fw("sqrt"), "rsLoRA's scale"),
    ],
    "lora_sgd_step": [
        (_lora(scale="alpha"), "scaled the update by alpha: the scale is alpha / r"),
        (_lora(grads_scaled=False), "forgot the scale alpha / r in the gradients"),
        (_lora(merge_scaled=False), "in the change of the merged weight"),
        (_lora(sequential=True), "computed A's gradient from the updated B"),
        (_lora(linear=True), "to first order in lr only"),
        (_lora(full=True), "returned the step of full fine-tuning"),
        (_lora(mean=True), "averaged the gradients over the rows of x"),
        (_lora(ascent=True), "stepped up the gradient"),
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
    "reinforce_loss_batch": [
        (_pg(returns="across"), "the return ran on across the end of an episode"),
        (_pg(returns="off by one"), "the reset is one step off"),
        (_pg(per_episode=True), "standardised each episode on its own: rl."),
        (_pg(reduce="per episode"), "averaged each episode's loss, then the episodes"),
        (_pg(per_episode=True, reduce="per episode"),
         "standardised each episode on its own and averaged the episodes' losses"),
        (_pg(returns="undiscounted"), "the returns are not discounted"),
        (_pg(returns="from start"), "discounted from the start of the episode"),
        (_pg(sign=-1), "wrong sign"),
        (_pg(normalise="none"), "the returns are not standardised"),
        (_pg(normalise="centre"), "did not divide by their standard deviation"),
        (_pg(ddof=1), "sample standard deviation (ddof=1)"),
        (_pg(eps=0.0), "divided by a standard deviation of 0"),
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
    assert run("lora_sgd_step", _lora())
    assert run("unpatchify", _unpatch())
    assert run("kv_cache_step", _kv())
    assert run("lora_forward", _lora_fw())
    assert run("bellman_backup", _backup())
    assert run("reinforce_loss_batch", _pg())


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
    lora = _cases("lora_sgd_step")
    assert min(c.args[0].shape[0] for c in lora) == 1
    assert any(c.args[0].ndim == 3 for c in lora)
    assert all(c.args[1].shape[:-1] == c.args[0].shape[:-1] for c in lora)
    assert any(not c.args[3].any() for c in lora)                    # B = 0
    assert all(c.args[2].shape[0] == c.args[5] for c in lora)
    assert len({c.args[4] / c.args[5] for c in lora}) > 3
    assert max(c.args[6] for c in lora) >= 1.0                       # lr^2 counts
    first = lora[0].args
    assert first[4] not in (first[5], 1.0)
    patch = _cases("unpatchify")
    assert min(c.args[0].shape[0] for c in patch) == 1
    assert any(c.args[2] != c.args[3] for c in patch)                     # H != W
    channels = {c.args[0].shape[2] // c.args[1] ** 2 for c in patch}
    assert 1 in channels and len(channels) > 2                            # C = 1 and more
    assert any(c.args[1] == 1 for c in patch)                             # p = 1
    assert any(c.args[1] == c.args[2] == c.args[3] for c in patch)        # one patch
    for c in patch:
        patches, p, H, W = c.args
        assert H % p == W % p == 0 and patches.shape[1] == (H // p) * (W // p)
        assert patches.shape[2] % (p * p) == 0
    kv = _cases("kv_cache_step")
    assert min(c.args[0].shape[0] for c in kv) == 1
    assert {0, 1} <= {c.args[3].shape[1] for c in kv}                     # empty, one row
    assert any(c.args[0].shape[1] == 1 for c in kv)                       # d = 1
    assert any(c.args[2].shape[1] != c.args[0].shape[1] for c in kv)      # d_v != d
    big = [np.einsum("nd,ntd->nt", c.args[0], c.args[3]) / np.sqrt(c.args[0].shape[1])
           for c in kv if c.args[3].shape[1]]
    assert any(s.max() > 710 for s in big)                                # exp overflows
    assert any(s.max() - s.max(axis=1).min() > 745 for s in big)          # and one max fails
    assert kv[0].args[3].shape[1] > 0
    lf = _cases("lora_forward")
    assert min(c.args[0].shape[0] for c in lf) == 1
    assert any(c.args[0].ndim == 3 for c in lf)
    assert any(not c.args[4].any() for c in lf)                           # B = 0
    assert len({c.args[5] / c.args[6] for c in lf}) > 3
    first = lf[0].args
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
    pg = _cases("reinforce_loss_batch")
    assert all(c.args[2][-1] and c.args[2].dtype == bool for c in pg)  # ends done
    assert any(c.args[2].sum() == 1 for c in pg)                     # one episode
    assert any(c.args[2].sum() >= 3 for c in pg)
    assert any(len(c.args[0]) > 1 and c.args[2][-2] for c in pg)    # a one-step episode
    lengths = [np.diff(np.flatnonzero(np.r_[True, c.args[2]])) for c in pg]
    assert any(len(set(n)) > 1 for n in lengths)                      # unequal lengths
    assert {0.0, 1.0} <= {c.args[3] for c in pg}
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


def test_lora_sgd_step_agrees_with_torch_and_with_nnlib_training():
    torch = pytest.importorskip("torch")
    import nnlib

    for case in _cases("lora_sgd_step"):
        x, dy, A, B, alpha, r, lr = case.args
        A_t, B_t = (torch.tensor(a, requires_grad=True) for a in (A, B))
        W = np.random.default_rng(0).standard_normal((B.shape[0], A.shape[1]))
        x_t = torch.tensor(x)
        y = x_t @ torch.tensor(W).T + (alpha / r) * (x_t @ A_t.T) @ B_t.T
        (y * torch.tensor(dy)).sum().backward()
        opt = torch.optim.SGD([A_t, B_t], lr=lr)
        merged_before = W + (alpha / r) * B @ A
        opt.step()
        A_new, B_new = A_t.detach().numpy(), B_t.detach().numpy()
        got = ref.lora_sgd_step(*case.args)
        _close(got[0], A_new)
        _close(got[1], B_new)
        _close(got[2], W + (alpha / r) * B_new @ A_new - merged_before)
    # one step of nnlib training: a LoRALinear around a real Linear, a loss
    rng = np.random.default_rng(1)
    layer = nnlib.layers.lora.LoRALinear(nnlib.Linear(5, 4, rng=rng), r=2,
                                         alpha=6.0, rng=rng)
    layer.lora_B.data[...] = rng.standard_normal((4, 2))
    x, target = rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 7, 4))
    A, B, before = layer.lora_A.data.copy(), layer.lora_B.data.copy(), layer.merged_weight()
    W = layer.base.weight.data.copy()
    y = layer(x)
    dy = 2 * (y - target) / y.size                         # the mean squared error's
    layer.zero_grad()
    layer.backward(dy)
    nnlib.SGD([p for p in layer.parameters() if p.requires_grad], lr=0.5).step()
    got = ref.lora_sgd_step(x, dy, A, B, 6.0, 2, 0.5)
    _close(got[0], layer.lora_A.data)
    _close(got[1], layer.lora_B.data)
    _close(got[2], layer.merged_weight() - before)
    np.testing.assert_array_equal(layer.base.weight.data, W)   # frozen
    # a control: the first-order change differs from the exact one at lr = 0.5
    assert np.abs(_lora(linear=True)(x, dy, A, B, 6.0, 2, 0.5)[2] - got[2]).max() > 1e-6


def test_unpatchify_agrees_with_torch_fold_and_inverts_the_chapters_cutting():
    torch = pytest.importorskip("torch")
    from nnlib import Conv2d

    rng = np.random.default_rng(3)
    for case in _cases("unpatchify"):
        patches, p, H, W = case.args
        fold = torch.nn.functional.fold(torch.tensor(patches).transpose(1, 2), (H, W), p,
                                        stride=p)
        _close(ref.unpatchify(*case.args), fold)
        # the inverse of the section's cutting, and of torch's unfold
        n, c = len(patches), patches.shape[2] // p ** 2
        images = rng.standard_normal((n, c, H, W))
        np.testing.assert_array_equal(ref.unpatchify(ref._cut(images, p), p, H, W), images)
        unfold = torch.nn.functional.unfold(torch.tensor(images), p, stride=p)
        np.testing.assert_array_equal(ref._cut(images, p), unfold.transpose(1, 2).numpy())
        # the cutting is the section's: with it, a Conv2d of stride p is a matrix product
        conv = Conv2d(c, 5, kernel_size=p, stride=p, rng=np.random.default_rng(0))
        by_patches = ref._cut(images, p) @ conv.weight.data.reshape(5, -1).T + conv.bias.data
        _close(by_patches, conv(images).reshape(n, 5, -1).transpose(0, 2, 1))


def test_kv_cache_step_is_the_last_row_of_causal_attention_in_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in _cases("kv_cache_step"):
        q, k, v, K_cache, V_cache = case.args
        out, K, V = ref.kv_cache_step(*case.args)
        t = K_cache.shape[1]
        # a whole sequence whose last position is the new one; the earlier
        # queries are arbitrary: under the causal mask they do not touch row t
        Q = np.concatenate([np.random.default_rng(1).standard_normal((len(q), t, q.shape[1])),
                            q[:, None]], axis=1)
        full = F.scaled_dot_product_attention(torch.tensor(Q), torch.tensor(K),
                                              torch.tensor(V), is_causal=True)
        _close(out, full[:, -1])
        np.testing.assert_array_equal(K[:, :t], K_cache)
        np.testing.assert_array_equal(V[:, :t], V_cache)
        np.testing.assert_array_equal(K[:, t], k)
        np.testing.assert_array_equal(V[:, t], v)


def test_lora_forward_agrees_with_torch_and_with_the_merged_weight():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in _cases("lora_forward"):
        x, W, b, A, B, alpha, r = (torch.tensor(a) if isinstance(a, np.ndarray) else a
                                   for a in case.args)
        y = F.linear(x, W, b) + (alpha / r) * F.linear(F.linear(x, A), B)
        _close(ref.lora_forward(*case.args), y)
        merged = F.linear(x, W + (alpha / r) * B @ A, b)
        _close(ref.lora_forward(*case.args), merged)


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


def test_reinforce_loss_batch_agrees_with_torch_and_with_reinforce_step():
    torch = pytest.importorskip("torch")
    for case in _cases("reinforce_loss_batch"):
        log_probs, rewards, dones, gamma = case.args
        G, start = [], 0                       # loops, not returns_to_go
        for end in np.flatnonzero(dones) + 1:
            for t in range(start, end):
                G.append(sum(gamma ** (k - t) * rewards[k] for k in range(t, end)))
            start = end
        G = np.array(G)
        W = torch.tensor((G - G.mean()) / (G.std() + 1e-8))   # the chapter's twin
        loss = -(W * torch.tensor(log_probs)).mean()
        _close(ref.reinforce_loss_batch(*case.args), loss.item())
    # the loss reinforce_step reports for a batch of episodes of unequal lengths
    import nnlib
    from nnlib import models, optim

    rng = np.random.default_rng(0)
    policy = models.mlp(3, 2, hidden=(5,), activation="tanh", rng=rng)
    batch = [rl.Episode(rng.standard_normal((n, 3)), rng.integers(0, 2, size=n),
                        rng.standard_normal(n)) for n in (7, 1, 4)]
    states = np.concatenate([e.states for e in batch])
    actions = np.concatenate([e.actions for e in batch])
    logp = nnlib.losses.log_softmax(policy(states), axis=1)[
        np.arange(len(actions)), actions]
    rewards = np.concatenate([e.rewards for e in batch])
    dones = np.zeros(len(rewards), dtype=bool)
    dones[np.cumsum([7, 1, 4]) - 1] = True
    step_loss = rl.reinforce_step(policy, optim.SGD(policy.parameters(), lr=0.0),
                                  batch, gamma=0.9)
    _close(ref.reinforce_loss_batch(logp, rewards, dones, 0.9), step_loss)
    # a control: the stream's loss differs when the returns run across episodes
    across = _pg(returns="across")(logp, rewards, dones, 0.9)
    assert abs(across - step_loss) > 1e-3
