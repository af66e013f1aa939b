"""nnlib.exercises for chapters 4 and 5 (``nnlib.exercises.deep``), 5c
included.

As tests/test_checker.py for chapters 1 to 3: for every exercise the
solution printed in the chapter (the dropdown's code block that starts with
``# solution: NAME``) passes, typical wrong answers fail with the right
diagnosis, the stub in the chapter says "not yet", no message shows the
solution, and the reference agrees with PyTorch.
"""

import numpy as np
import pytest
from test_checker import (harvest, registered_in_their_chapters, run, shows_no_solution,
                          solution_passes, stub_says_not_yet)
from test_checker import solution as shared_solution

import nnlib.exercises as ex
from nnlib.exercises import deep as ref

pytestmark = pytest.mark.book

CHAPTERS = {"04-cnn": ["conv2d_forward", "maxpool_backward"],
            "04b-modern-cnns": ["batchnorm2d_backward", "global_avg_pool_backward"],
            "05-rnn": ["rnn_step_backward", "lstm_step_forward"],
            "05c-attention": ["attention_forward", "attention_backward"]}
ALL = [n for names in CHAPTERS.values() for n in names]


SOLUTIONS = harvest(CHAPTERS)


def solution(name):
    return shared_solution(name, SOLUTIONS)


def test_every_exercise_is_registered_with_a_solution_in_its_chapter():
    registered_in_their_chapters(CHAPTERS, SOLUTIONS)


@pytest.mark.parametrize("name", ALL)
def test_the_chapters_solution_passes(name):
    solution_passes(name, SOLUTIONS)


@pytest.mark.parametrize("name", ALL)
def test_the_stub_in_the_chapter_runs_and_says_not_yet(name, capsys):
    stub_says_not_yet(name, SOLUTIONS, capsys)


# --- wrong answers, written as a learner would -------------------------------
def _conv(flip=False, dpad=0, one_side=False, ignore_stride=False, bias=True,
          order="ckk", crop=0, mix=False):
    def f(x, W, b, stride, padding):
        n, c, h, w = x.shape
        nf, _, k, _ = W.shape
        s, p = (1 if ignore_stride else stride), padding + dpad
        pads = (p, 0) if one_side else (p, p)
        xp = np.pad(x, ((0, 0), (0, 0), pads, pads))
        ho, wo = (xp.shape[2] - k) // s + 1 - crop, (xp.shape[3] - k) // s + 1 - crop
        Wf = W[..., ::-1, ::-1] if flip else W
        cols = np.empty((n, c, k, k, ho, wo))
        for i in range(k):
            for j in range(k):
                cols[:, :, i, j] = xp[:, :, i:i + s * ho:s, j:j + s * wo:s]
        axes = (1, 2, 3) if order == "ckk" else (2, 3, 1)
        cols = cols.transpose(*axes, 0, 4, 5).reshape(c * k * k, -1)
        y = Wf.reshape(nf, -1) @ cols
        if bias:
            y = y + b[:, None]
        if mix:                                    # no transpose
            return y.reshape(n, nf, ho, wo)
        return y.reshape(nf, n, ho, wo).transpose(1, 0, 2, 3)
    return f


def _pool(rule="first", step=None, overwrite=False):
    def f(dout, x, k, s):
        n, c, ho, wo = dout.shape
        dx = np.zeros_like(x)
        start = {None: s, "kernel": k, "one": 1}[step]
        for i in range(ho):
            for j in range(wo):
                r, q = i * start, j * start
                win = x[:, :, r:r + k, q:q + k]
                g = dout[:, :, i, j][:, :, None, None]
                if rule == "mean":
                    part = np.broadcast_to(g / (k * k), win.shape)
                elif rule == "every":
                    part = np.broadcast_to(g, win.shape)
                elif rule == "ties":
                    part = (win == win.max(axis=(2, 3), keepdims=True)) * g
                else:
                    flat = win.reshape(n, c, -1)
                    first = flat.argmax(axis=-1)[..., None]
                    part = ((np.arange(k * k) == first) * g[..., 0]).reshape(win.shape)
                if overwrite:
                    dx[:, :, r:r + k, q:q + k] = part
                else:
                    dx[:, :, r:r + k, q:q + k] += part
        return dx
    return f


def _bn2d(axes=(0, 2, 3), ddof=0, stats="full", per_channel=True, dgamma_x=False,
          gamma_in_dx=True, eps=True):
    """A learner's backward of batch norm, by the chain rule one node at a
    time (xhat, var, mean), as the classic derivation."""
    def f(dy, x, gamma, e):
        m = np.prod([x.shape[a] for a in np.atleast_1d(axes)])
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        var = (xc ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
        std = np.sqrt(var + e) if eps else np.sqrt(var)
        xhat = xc / std
        g = gamma.reshape(1, -1, 1, 1) if per_channel else gamma
        dxhat = dy * g if gamma_in_dx else dy
        dvar = (dxhat * xc).sum(axis=axes, keepdims=True) * -0.5 * std ** -3
        dmu = -(dxhat / std).sum(axis=axes, keepdims=True)
        if stats == "constant":
            dvar, dmu = 0.0 * dvar, 0.0 * dmu
        elif stats == "no var":
            dvar = 0.0 * dvar
        dx = dxhat / std + dvar * 2 * xc / (m - ddof) + dmu / m
        red = (0, 2, 3)
        dgamma = (dy * (x if dgamma_x else xhat)).sum(axis=red)
        return dx, dgamma, dy.sum(axis=red)
    return f


def _gap(divide="HW", spread="broadcast"):
    def f(dout, x_shape):
        n, c, h, w = x_shape
        d = dout / {"HW": h * w, "none": 1, "H": h, "NHW": n * h * w}[divide]
        if spread == "flat":                 # (N, C) lined up with (H, W)
            return np.ones(x_shape) * d.reshape(n, c)
        if spread == "corner":
            dx = np.zeros(x_shape)
            dx[:, :, 0, 0] = d[:, :, 0, 0]
            return dx
        return np.ones(x_shape) * d
    return f


def _rnn(local=lambda h, hp: 1 - h ** 2, dWi_T=False, dWh_T=False, db="sum"):
    def f(dh, cache):
        x, h_prev, W_ih, W_hh, h = cache
        da = dh * local(h, h_prev)
        dWi = x.T @ da if dWi_T else da.T @ x
        dWh = h_prev.T @ da if dWh_T else da.T @ h_prev
        d_b = {"sum": da.sum(axis=0), "none": da, "mean": da.mean(axis=0)}[db]
        return da @ W_ih, da @ W_hh, dWi, dWh, d_b
    return f


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm(order="ifgo", tanh_on="g", cell="f*c+i*g", out="o*tanh(c)",
          bias=True, interleaved=False):
    def f(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
        a = x @ W_ih.T + b_ih + h_prev @ W_hh.T + (b_hh if bias else 0)
        if interleaved:                     # gate k in rows k, k + 4, ...
            z = {k: a[:, j::4] for j, k in enumerate(order)}
        else:
            z = dict(zip(order, np.split(a, 4, axis=1)))
        gate = {k: (np.tanh if k in tanh_on else _sigmoid)(z[k]) for k in z}
        i, f, g, o = gate["i"], gate["f"], gate["g"], gate["o"]
        c = f * c_prev + g if cell == "no i" else f * c_prev + i * g
        h = {"o*tanh(c)": o * np.tanh(c), "o*c": o * c,
             "o*tanh(c_prev)": o * np.tanh(c_prev)}[out]
        return h, c
    return f


def _att(scale="sqrt", invert=False, mask_on=True, axis=-1, stable=True,
         fill=-np.inf, after=False):
    def f(Q, K, V, mask):
        d = Q.shape[-1]
        S = Q @ K.transpose(0, 2, 1)
        S = {"sqrt": S / np.sqrt(d), "none": S, "d": S / d,
             "dv": S / np.sqrt(V.shape[-1]), "Tk": S / np.sqrt(K.shape[1])}[scale]
        if mask is not None and mask_on and not after:
            S = np.where(~mask if invert else mask, fill, S)
        if stable:
            S = S - S.max(axis=axis, keepdims=True)
        A = np.exp(S) / np.exp(S).sum(axis=axis, keepdims=True)
        if mask is not None and after:
            A = A * ~mask
        return A @ V, A
    return f


def _attb(scale="sqrt", jacobian="full", axis=-1, dv_t=True, dk_t=True,
          dq_t=False, recompute=False, dv_scaled=False):
    def f(dout, Q, K, V, A):
        d = Q.shape[-1]
        c = {"sqrt": 1 / np.sqrt(d), "none": 1.0, "d": 1 / d,
             "d_v": 1 / np.sqrt(V.shape[-1]), "times": np.sqrt(d)}[scale]
        if recompute:             # the weights again from Q and K, no mask
            S = Q @ K.transpose(0, 2, 1) * c
            A = np.exp(S - S.max(-1, keepdims=True))
            A = A / A.sum(-1, keepdims=True)
        dV = A.transpose(0, 2, 1) @ dout if dv_t else A @ dout
        if dv_scaled:
            dV = dV * c
        dA = dout @ V.transpose(0, 2, 1)
        if jacobian == "full":
            dS = A * (dA - np.sum(dA * A, axis=axis, keepdims=True))
        elif jacobian == "none":
            dS = dA
        elif jacobian == "mean":
            dS = A * (dA - dA.mean(axis=-1, keepdims=True))
        elif jacobian == "diag":
            dS = A * (1 - A) * dA
        elif jacobian == "minus":
            dS = A * (np.sum(dA * A, axis=-1, keepdims=True) - dA)
        elif jacobian == "no A":
            dS = dA - np.sum(dA * A, axis=-1, keepdims=True)
        else:
            dS = A * dA
        dQ = (dS.transpose(0, 2, 1) if dq_t else dS) @ K * c
        dK = (dS.transpose(0, 2, 1) if dk_t else dS) @ Q * c
        return dQ, dK, dV
    return f


# name -> [(wrong answer, words the diagnosis must contain)]
WRONG = {
    "conv2d_forward": [
        (_conv(flip=True), "flipped the filter"),
        (_conv(dpad=1), "the padding is off by one"),
        (_conv(dpad=-1), "the padding is off by one"),
        (_conv(one_side=True), "padded one side only"),
        (_conv(ignore_stride=True), "ignored the stride"),
        (_conv(bias=False), "the bias is missing"),
        (_conv(order="kkc"), "the channels are summed wrong"),
        (_conv(crop=1), "one row and column short"),
        (_conv(mix=True), "the last reshape mixes the examples and the filters"),
    ],
    "maxpool_backward": [
        (_pool(rule="mean"), "average pooling's backward"),
        (_pool(rule="every"), "to every element of the window"),
        (_pool(rule="ties"), "ties double-counted"),
        (_pool(step="kernel"), "wrong window"),
        (_pool(step="one"), "wrong window"),
        (_pool(overwrite=True), "overwrote each other's gradient"),
    ],
    "batchnorm2d_backward": [
        (_bn2d(stats="constant"), "treated the mean and the variance as constants"),
        (_bn2d(stats="no var"), "left out the path through the variance"),
        (_bn2d(axes=(2, 3)), "the statistics are per image (over H and W only)"),
        (_bn2d(axes=0), "the sums in dx are over the batch (axis 0) only"),
        (_bn2d(ddof=1), "unbiased variance"),
        (_bn2d(dgamma_x=True), "dgamma is the sum of dy times the normalised xhat"),
        (_bn2d(per_channel=False), "broadcast along the last axis"),
        (_bn2d(gamma_in_dx=False), "forgot gamma in dx"),
        (_bn2d(eps=False), "without eps"),
    ],
    "global_avg_pool_backward": [
        (_gap(divide="none"), "forgot to divide by H W"),
        (_gap(divide="H"), "divided by H or by W only"),
        (_gap(divide="NHW"), "divided by N H W as well"),
        (_gap(spread="flat"), "broadcast along the wrong axes"),
        (_gap(divide="none", spread="corner"), "the whole gradient on one pixel"),
    ],
    "rnn_step_backward": [
        (_rnn(local=lambda h, hp: 1.0), "forgot tanh'"),
        (_rnn(local=lambda h, hp: 1 - h), "used 1 - h as tanh's derivative"),
        (_rnn(local=lambda h, hp: 1 - hp ** 2), "derivative at h_prev"),
        (_rnn(dWi_T=True), "dW_ih is transposed"),
        (_rnn(dWh_T=True), "dW_hh is transposed"),
        (_rnn(db="none"), "db is not summed over the batch"),
        (_rnn(db="mean"), "db is averaged over the batch"),
    ],
    "lstm_step_forward": [
        (_lstm(order="figo"), "the gates are in the wrong order (your "
         "output matches the order f, i, g, o)"),
        (_lstm(order="ifog"), "matches the order i, f, o, g"),
        (_lstm(tanh_on="gf"), "used tanh on the gate f"),
        (_lstm(tanh_on="gifo"), "used tanh on every gate"),
        (_lstm(tanh_on=""), "used a sigmoid on g"),
        (_lstm(cell="no i"), "forgot the input gate"),
        (_lstm(out="o*c"), "h = o c, without the tanh"),
        (_lstm(out="o*tanh(c_prev)"), "h from c_prev"),
        (_lstm(bias=False), "used one bias only"),
        (_lstm(interleaved=True), "the gates are interleaved"),
    ],
    "attention_forward": [
        (_att(scale="none"), "the scores are not scaled"),
        (_att(scale="d"), "the scores are divided by d"),
        (_att(scale="dv"), "scaled with the size of the values"),
        (_att(scale="Tk"), "scaled with the number of keys (K.shape[1], T_k)"),
        (_att(mask_on=False), "the mask is not applied"),
        (_att(invert=True), "the mask is inverted"),
        (_att(axis=-2), "the softmax is over the queries"),
        (_att(stable=False), "exp overflowed on large scores"),
        (_att(fill=0.0), "the masked scores were set to 0"),
        (_att(after=True), "masked the weights after the softmax"),
    ],
    "attention_backward": [
        (_attb(scale="none"), "the scale is left out"),
        (_attb(scale="d"), "divided by d"),
        (_attb(jacobian="none"), "without the softmax's Jacobian"),
        (_attb(jacobian="A*dA"), "left out the softmax's row-sum term"),
        (_attb(axis=-2), "row sum runs over the queries"),
        (_attb(dv_t=False), "dV is not transposed"),
        (_attb(dk_t=False), "dK is not transposed"),
        (_attb(dq_t=True), "dQ uses dS transposed"),
        (_attb(jacobian="mean"), "subtracted the plain mean of each row of dA"),
        (_attb(jacobian="diag"), "only the diagonal of the softmax's Jacobian"),
        (_attb(dv_scaled=True), "scaled dV too"),
        (_attb(scale="d_v"), "scaled by 1 / sqrt(d_v)"),
        (_attb(recompute=True), "recomputed the weights from Q and K without the mask"),
        (_attb(scale="times"), "multiplied by sqrt(d)"),
        (_attb(jacobian="minus"), "dS has the wrong sign"),
        (_attb(jacobian="no A"), "left out the factor A in dS"),
    ],
}


def test_every_exercise_has_at_least_three_wrong_answers():
    assert set(WRONG) == set(ALL)
    assert all(len(v) >= 3 for v in WRONG.values())


@pytest.mark.parametrize("name,k", [(n, k) for n in ALL for k in range(len(WRONG[n]))])
def test_a_wrong_answer_fails_with_its_diagnosis(name, k):
    fn, words = WRONG[name][k]
    result = run(name, fn)
    assert not result and not result.passed, result.message
    assert f"{name}: not yet" in result.message
    assert "likely cause:" in result.message, result.message
    flat = " ".join(result.message.split())
    assert words in flat, f"expected a diagnosis with {words!r}:\n{result.message}"
    assert "expected" in flat and "got" in flat


def test_a_correct_answer_written_differently_passes():
    """A direct loop over output pixels (no im2col) is right too."""
    def conv_loops(x, W, b, stride, padding):
        n, c, h, w = x.shape
        f, _, k, _ = W.shape
        xp = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
        ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        y = np.empty((n, f, ho, wo))
        for i in range(ho):
            for j in range(wo):
                win = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
                y[:, :, i, j] = np.einsum("nckl,fckl->nf", win, W) + b
        return y
    def bn2d_channels_first(dy, x, gamma, eps):
        c = x.shape[1]
        flat = np.moveaxis(x, 1, 0).reshape(c, -1)                # (C, N H W)
        d = np.moveaxis(dy, 1, 0).reshape(c, -1)
        xhat = (flat - flat.mean(axis=1)[:, None]) / np.sqrt(
            flat.var(axis=1)[:, None] + eps)
        g = gamma[:, None] * d
        dx = (g - g.mean(axis=1)[:, None] - xhat * (g * xhat).mean(axis=1)[:, None]
              ) / np.sqrt(flat.var(axis=1)[:, None] + eps)
        dx = np.moveaxis(dx.reshape((c, x.shape[0]) + x.shape[2:]), 0, 1)
        return dx, (d * xhat).sum(axis=1), d.sum(axis=1)

    def gap_repeat(dout, x_shape):
        h, w = x_shape[2:]
        return np.repeat(np.repeat(dout, h, axis=2), w, axis=3) / (h * w)
    assert run("batchnorm2d_backward", bn2d_channels_first)
    assert run("global_avg_pool_backward", gap_repeat)
    assert run("batchnorm2d_backward", _bn2d())
    assert run("conv2d_forward", conv_loops)
    assert run("maxpool_backward", _pool())
    assert run("rnn_step_backward", _rnn())
    assert run("lstm_step_forward", _lstm())
    assert run("attention_forward", _att())
    assert run("attention_forward", _att(fill=-1e9))    # -inf or very negative
    assert run("attention_backward", _attb())
    # the first case is square (T_q = T_k), so a transposed product has the
    # right shape there and is caught by its values
    first = ex.get("attention_backward").cases(np.random.default_rng(0))[0].args
    assert first[1].shape[1] == first[2].shape[1]


@pytest.mark.parametrize("name", ALL)
def test_no_message_shows_the_solution_or_the_reference(name):
    shows_no_solution(name, SOLUTIONS, ref, WRONG[name])


def test_every_case_set_has_a_batch_of_one_odd_sizes_and_its_edge_cases():
    for name in ALL:
        cases = ex.get(name).cases(np.random.default_rng(0))
        shapes = [np.shape(c.args[1 if name == "maxpool_backward" else 0])
                  for c in cases]
        assert min(s[0] for s in shapes) == 1, (name, shapes)
        assert any(any(d % 2 and d > 1 for d in s) for s in shapes), (name, shapes)
        assert len(cases) >= 6 and any(c.note for c in cases)
    conv = ex.get("conv2d_forward").cases(np.random.default_rng(0))
    assert {c.args[3] for c in conv} >= {1, 2, 3} and {c.args[4] for c in conv} >= {0, 1, 2}
    assert any(c.args[1].shape[2] % 2 == 0 for c in conv)           # an even kernel
    pool = ex.get("maxpool_backward").cases(np.random.default_rng(0))
    assert any(c.args[3] < c.args[2] for c in pool)                  # overlapping windows
    assert any(c.args[1].shape[2] > (c.args[0].shape[2] - 1) * c.args[3] + c.args[2]
               for c in pool)                                        # rows left over
    ties = [c for c in pool if "ties" in c.note]
    assert ties and all(
        (lambda f: (f == f.max(-1, keepdims=True)).sum(-1).max() > 1)(
            np.lib.stride_tricks.sliding_window_view(
                c.args[1], (c.args[2],) * 2, axis=(2, 3))[
                :, :, ::c.args[3], ::c.args[3]].reshape(
                *c.args[0].shape, -1)) for c in ties)                 # real ties
    bn = ex.get("batchnorm2d_backward").cases(np.random.default_rng(0))
    assert all(c.args[0].shape == c.args[1].shape for c in bn)       # dy like x
    assert bn[0].args[1].shape[3] == bn[0].args[1].shape[1]          # W = C first
    assert any(c.args[1].shape[2:] == (1, 1) and c.args[1].shape[0] > 1 for c in bn)
    assert any(np.ptp(c.args[1][:, 1]) == 0 for c in bn)             # constant
    assert any(c.args[3] >= 0.1 for c in bn)                         # large eps
    gap = ex.get("global_avg_pool_backward").cases(np.random.default_rng(0))
    gshapes = [c.args[1] for c in gap]
    assert all(c.args[0].shape == s[:2] + (1, 1) for c, s in zip(gap, gshapes))
    assert gshapes[0][2:] == gshapes[0][:2] and gshapes[0][2] != gshapes[0][3]
    assert any(s[2:] == (1, 1) for s in gshapes)
    assert any(s[2] != s[3] and s[2] % 2 for s in gshapes)            # odd, H != W
    rnn = ex.get("rnn_step_backward").cases(np.random.default_rng(0))
    assert any(c.args[1][0].shape[1] == c.args[1][4].shape[1] for c in rnn)   # D = H
    lstm = ex.get("lstm_step_forward").cases(np.random.default_rng(0))
    sizes = [(c.args[0].shape[1], c.args[1].shape[1]) for c in lstm]
    assert any(h == 1 for _, h in sizes)                             # H = 1
    assert {d < h for d, h in sizes} == {True, False}                 # D != H
    assert any(d == h for d, h in sizes)                             # D = H
    pre = [np.abs(c.args[0] @ c.args[3].T + c.args[1] @ c.args[4].T).max()
           for c in lstm]
    assert max(pre) > 20 > min(pre)                         # saturated gates
    att = ex.get("attention_forward").cases(np.random.default_rng(0))
    masks = [c.args[3] for c in att]
    assert sum(m is None for m in masks) >= 2
    assert any(m is not None and np.array_equal(m, np.triu(np.ones_like(m), 1))
               and m.shape[0] == m.shape[1] for m in masks)  # square causal
    assert any(m is not None and m.shape[0] < m.shape[1] and np.array_equal(
        m, np.triu(np.ones_like(m), 1)) for m in masks)     # causal, T_q < T_k
    assert any(m is not None and m[:, -1].all() and not m[:, 0].any()
               for m in masks)                                  # padding
    assert all(m is None or not m.all(axis=-1).any() for m in masks)
    assert any(c.args[0].shape[1] != c.args[1].shape[1] for c in att)
    assert any(c.args[0].shape[2] != c.args[2].shape[2] for c in att)  # d != d_v
    assert any(c.args[0].shape[2] % 2 for c in att)                    # odd d
    assert any(np.max(c.args[0] @ c.args[1].transpose(0, 2, 1)
                      / np.sqrt(c.args[0].shape[2])) > 710 for c in att)


# --- the references agree with PyTorch ---------------------------------------
def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-8, atol=1e-10)


def test_references_agree_with_torch():
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    for case in ex.get("conv2d_forward").cases(np.random.default_rng(0)):
        x, W, b, s, p = case.args
        y = fn.conv2d(torch.tensor(x), torch.tensor(W), torch.tensor(b), stride=s,
                      padding=p)
        _close(ref.conv2d_forward(*case.args), y)
    for case in ex.get("maxpool_backward").cases(np.random.default_rng(0)):
        dout, x, k, s = case.args
        xt = t(x)
        fn.max_pool2d(xt, k, s).backward(torch.tensor(dout))
        _close(ref.maxpool_backward(*case.args), xt.grad)
    for case in ex.get("batchnorm2d_backward").cases(np.random.default_rng(0)):
        dy, x, gamma, eps = case.args
        xt, gt = t(x), t(gamma)
        bt = t(np.zeros_like(gamma))
        fn.batch_norm(xt, None, None, gt, bt, training=True,
                      eps=eps).backward(torch.tensor(dy))
        got = ref.batchnorm2d_backward(*case.args)
        for mine, theirs in zip(got, (xt.grad, gt.grad, bt.grad)):
            _close(mine, theirs)
        bn = torch.nn.BatchNorm2d(x.shape[1], eps=eps, dtype=torch.float64).train()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(gamma))
        xt = t(x)
        bn(xt).backward(torch.tensor(dy))
        _close(got[0], xt.grad)
        _close(got[1], bn.weight.grad)
        _close(got[2], bn.bias.grad)
    for case in ex.get("global_avg_pool_backward").cases(np.random.default_rng(0)):
        dout, x_shape = case.args
        xt = t(np.random.default_rng(2).standard_normal(x_shape))
        fn.adaptive_avg_pool2d(xt, 1).backward(torch.tensor(dout))
        _close(ref.global_avg_pool_backward(*case.args), xt.grad)
    from nnlib.functional import recurrent as Fr
    rng = np.random.default_rng(1)
    for case in ex.get("rnn_step_backward").cases(np.random.default_rng(0)):
        dh, (x, h_prev, W_ih, W_hh, _) = case.args
        b_ih, b_hh = rng.standard_normal((2, len(W_ih)))
        _, cache = Fr.rnn_step_forward(x, h_prev, W_ih, W_hh, b_ih, b_hh)
        leaves = [t(v) for v in (x, h_prev, W_ih, W_hh, b_ih, b_hh)]
        h = torch.rnn_tanh_cell(leaves[0], leaves[1], *leaves[2:])
        _close(h.detach(), cache[4])
        h.backward(torch.tensor(dh))
        got = ref.rnn_step_backward(dh, cache)
        for g, leaf in zip(got + (got[4],), leaves):
            _close(g, leaf.grad)
    for case in ex.get("lstm_step_forward").cases(np.random.default_rng(0)):
        x, h_prev, c_prev, *weights = (torch.tensor(a) for a in case.args)
        h, c = torch.lstm_cell(x, [h_prev, c_prev], *weights)
        got = ref.lstm_step_forward(*case.args)
        _close(got[0], h)
        _close(got[1], c)
        cell = torch.nn.LSTMCell(case.args[3].shape[1], case.args[4].shape[1],
                                 dtype=torch.float64)
        with torch.no_grad():
            for name, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                               weights):
                getattr(cell, name).copy_(w)
            h2, c2 = cell(x, (h_prev, c_prev))
        _close(got[0], h2)
        _close(got[1], c2)
    for case in ex.get("attention_forward").cases(np.random.default_rng(0)):
        Q, K, V, mask = case.args
        q, k, v = (torch.tensor(a) for a in (Q, K, V))
        keep = None if mask is None else torch.tensor(~mask)
        out = fn.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        s = q @ k.transpose(1, 2) / Q.shape[-1] ** 0.5
        if mask is not None:
            s = s.masked_fill(torch.tensor(mask), float("-inf"))
        weights = torch.softmax(s, dim=-1)
        got = ref.attention_forward(*case.args)
        _close(got[0], out)
        _close(got[0], weights @ v)
        _close(got[1], weights)
    for case in ex.get("attention_backward").cases(np.random.default_rng(0)):
        dout, Q, K, V, A = case.args
        q, k, v = (t(a) for a in (Q, K, V))
        s = q @ k.transpose(1, 2) / Q.shape[-1] ** 0.5
        s = s.masked_fill(torch.tensor(A == 0), float("-inf"))
        weights = torch.softmax(s, dim=-1)
        _close(weights.detach(), A)
        (weights @ v).backward(torch.tensor(dout))
        for mine, leaf in zip(ref.attention_backward(*case.args), (q, k, v)):
            _close(mine, leaf.grad)


def test_every_registered_exercise_is_tested_by_one_of_the_checker_files():
    """tests/test_checker*.py between them (each names its exercises in
    ``ALL``) test every exercise there is."""
    import importlib
    from pathlib import Path

    tested = set()
    for f in sorted(Path(__file__).parent.glob("test_checker*.py")):
        tested |= set(importlib.import_module(f.stem).ALL)
    assert set(ALL) <= tested and set(ex.names()) == tested
