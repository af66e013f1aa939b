"""nnlib.exercises, the checker behind the chapters' "checked" exercises.

For every exercise: the solution printed in the chapter (the dropdown's code
block that starts with ``# solution: NAME``) passes, and typical wrong
answers fail with the right diagnosis; the reference agrees with PyTorch;
the messages for misuse (unknown name, not a function, None, wrong shape,
an exception) say what was expected and what was got; and no message shows
the solution.
"""
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import nnlib.exercises as ex
from nnlib.exercises import foundations as ref

pytestmark = pytest.mark.book

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = {"01-concepts": ["log_softmax", "softmax_cross_entropy", "sigmoid_backward"],
            "02-backprop": ["linear_backward", "relu_backward", "tanh_backward",
                            "softmax_backward"],
            "03-training": ["momentum_step", "adam_step", "batchnorm_forward"],
            "03b-optimisation": ["layer_norm_backward", "warmup_cosine_lr"]}
ALL = [n for names in CHAPTERS.values() for n in names]


def harvest(chapters) -> dict:
    """name -> (chapter, source of the solution's code block), over the
    notebooks ``chapters`` names (tests/test_checker_deep.py uses it too)."""
    found = {}
    for chapter in chapters:
        nb = json.loads((BOOK / f"{chapter}.ipynb").read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            for block in re.findall(r"```python\n(# solution: (\w+)\n.*?)```", text, re.S):
                assert block[1] not in found, f"two solutions for {block[1]}"
                found[block[1]] = (chapter, block[0])
    return found


SOLUTIONS = harvest(CHAPTERS)


def solution(name, solutions=SOLUTIONS):
    _, source = solutions[name]
    namespace = {"np": np}
    exec(compile(source, f"<solution {name}>", "exec"), namespace)
    return namespace[name]


def run(name, fn):
    return ex.check(name, fn, verbose=False)


def registered_in_their_chapters(chapters, solutions):
    """The exercises registered for ``chapters`` are exactly those it names,
    each under its own chapter, each with a solution block there (the other
    tests/test_checker*.py use it too)."""
    names = [n for ns in chapters.values() for n in ns]
    assert {n for n in ex.names() if ex.get(n).chapter in chapters} == set(names)
    for name in names:
        assert name in solutions, f"no '# solution: {name}' block in the chapters"
        chapter = solutions[name][0]
        assert ex.get(name).chapter == chapter and name in chapters[chapter]


def solution_passes(name, solutions):
    """The chapter's solution passes, on 6 cases or more, and says so."""
    result = run(name, solution(name, solutions))
    assert result and result.passed, result.message
    assert result.message.startswith(f"{name}: passed on {result.cases} cases")
    assert result.cases >= 6


def test_every_exercise_is_registered_with_a_solution_in_its_chapter():
    # chapters 4 and 5 (nnlib.exercises.deep) are tests/test_checker_deep.py's
    registered_in_their_chapters(CHAPTERS, SOLUTIONS)
    assert len(ALL) >= 8


@pytest.mark.parametrize("name", ALL)
def test_the_chapters_solution_passes(name):
    solution_passes(name, SOLUTIONS)


@pytest.mark.parametrize("name", ALL)
def test_the_stub_in_the_chapter_runs_and_says_not_yet(name, capsys):
    stub_says_not_yet(name, SOLUTIONS, capsys)


def stub_says_not_yet(name, solutions, capsys):
    """The ``ex-chk-NAME`` cell of the solution's chapter runs, says "not
    yet", and says the same thing twice (tests/test_checker_deep.py too).
    It runs alone, in an empty namespace, as in a fresh kernel or when a
    reader jumps to the exercises: it imports what it uses itself."""
    chapter = solutions[name][0]
    nb = json.loads((BOOK / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c.get("id") == f"ex-chk-{name}")
    namespace = {}
    exec("".join(cell["source"]), namespace)
    out = capsys.readouterr().out
    assert not namespace["result"] and "not yet" in out and "returned None" in out, out
    assert f"{name}: not yet" in out
    exec("".join(cell["source"]), namespace)
    assert capsys.readouterr().out == out, "the stub's message is not deterministic"
    # the stub's imports and the chapter's solution, alone in a fresh
    # namespace as in a fresh kernel, pass: the stub imports what it needs
    source = "".join(cell["source"])
    imports = source[:source.index("\ndef ")]
    fresh = {}
    exec(imports + "\n" + solutions[name][1], fresh)
    assert ex.check(name, fresh[name], verbose=False), name
    capsys.readouterr()


def _e(z):
    return np.exp(z - z.max(axis=-1, keepdims=True))


def _ce(loss_fn, dz_fn, stable=True, guard=None):
    def f(z, y):
        n = len(y)
        if stable:
            s = z - z.max(axis=1, keepdims=True)
            logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
            if guard == "eps":                # log of the softmax, guarded
                logp = np.log(np.exp(logp) + 1e-12)
            elif guard == "clip":
                logp = np.log(np.clip(np.exp(logp), 1e-12, 1.0))
        else:
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            logp = np.log(p)
        per = -logp[np.arange(n), y]
        onehot = np.eye(z.shape[1])[y]
        return loss_fn(per, n), dz_fn(np.exp(logp), onehot, n)
    return f


def _lin(dx=None, dW=None, db=None):
    def f(dout, cache):
        x, W, _ = cache
        return (dout @ W if dx is None else dx(dout, x, W),
                dout.T @ x if dW is None else dW(dout, x, W),
                dout.sum(axis=0) if db is None else db(dout, x, W))
    return f


def _sig(y):
    return 1 / (1 + np.exp(-y))


def _adam(bias=True, eps_inside=False, t_shift=0, corrected=False, v_of_g=False,
          sign=1, only=None):
    def f(w, g, m, v, t, lr, b1, b2, eps):
        t = t + t_shift
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g if v_of_g else g * g)
        mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias else (m, v)
        mh = m if only == "v" else mh          # bias correction on one moment
        vh = v if only == "m" else vh
        den = np.sqrt(vh + eps) if eps_inside else np.sqrt(vh) + eps
        w = w - sign * lr * mh / den
        return (w, mh, vh) if corrected else (w, m, v)
    return f


def _bn(axis=0, ddof=0, eps_out=False, affine=True, no_eps=False):
    def f(x, gamma, beta, eps):
        mu = x.mean(axis=axis, keepdims=True)
        var = x.var(axis=axis, ddof=ddof, keepdims=True)
        if no_eps:
            xhat = (x - mu) / np.sqrt(var)
        elif eps_out:
            xhat = (x - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (x - mu) / np.sqrt(var + eps)
        return gamma * xhat + beta if affine else xhat
    return f


def _ln_bw(paths="mean+var", axis=1, ddof=0, per_d=True, reduce="sum", gamma_in=True,
           gamma_out=False, eps=True):
    """Layer norm's backward staged as in CS231n (through the variance,
    then the mean), over the features of each example, with a known
    mistake switched on."""
    def f(dout, cache):
        x, gamma, _, e = cache
        d = x.shape[axis]
        mu = x.mean(axis=axis, keepdims=True)
        var = ((x - mu) ** 2).sum(axis=axis, keepdims=True) / (d - ddof)
        inv = 1 / np.sqrt(var + e) if eps else 1 / np.sqrt(var)
        xhat = (x - mu) * inv
        dxhat = dout * gamma if gamma_in and not gamma_out else dout
        k = (d - ddof) if per_d else 1
        dvar = (dxhat * (x - mu)).sum(axis=axis, keepdims=True) * -0.5 * inv ** 3
        dmu = -(dxhat * inv).sum(axis=axis, keepdims=True)
        dx = dxhat * inv
        if "var" in paths:
            dx = dx + dvar * 2 * (x - mu) / k
        if "mean" in paths:
            dx = dx + dmu / (d if per_d else 1)
        if gamma_out:                             # batch norm's shortcut
            dx = dx * gamma
        total = {"sum": np.sum, "mean": np.mean}[reduce]
        return dx, total(dout * xhat, axis=0), total(dout, axis=0)
    return f


def _warm_cos(warm="right", phase="after", floor="right", warmup=True):
    """The chapter's schedule written with ifs, with a known mistake."""
    def f(step, base_lr, warmup_steps, total_steps, min_lr, start_factor):
        w, t, s0 = warmup_steps, total_steps, start_factor
        if warmup and step < w:
            if warm == "from zero":
                return base_lr * step / w
            frac = {"right": step / w, "ahead": (step + 1) / w,
                    "integer": step // w}[warm]
            return base_lr * (s0 + (1 - s0) * frac)
        e, length = {"after": (step - w, t - w), "total": (step, t),
                     "shifted over total": (step - w, t)}[phase]
        half = (1 + np.cos(np.pi * e / length)) / 2
        if floor == "ignored":
            return base_lr * half
        if floor == "on top":
            return min_lr + base_lr * half
        return min_lr + (base_lr - min_lr) * half
    return f


# name -> [(wrong answer, words the diagnosis must contain)]
WRONG = {
    "log_softmax": [
        (lambda z: np.log(np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)),
         "subtract each row's maximum"),
        (lambda z: z - np.log(np.exp(z).sum(axis=-1, keepdims=True)),
         "subtract each row's maximum"),
        (lambda z: np.log(_e(z) / _e(z).sum(axis=-1, keepdims=True)),
         "computed the log of the softmax"),
        (lambda z: np.log(_e(z) / _e(z).sum(axis=-1, keepdims=True) + 1e-12),
         "adding eps to p (log(p + eps)) or clipping p hides"),
        (lambda z: np.log(np.clip(_e(z) / _e(z).sum(axis=-1, keepdims=True), 1e-10, 1)),
         "capped near log(eps)"),
        (lambda z: z - z.max(axis=0) - np.log(_e(z.T).T.sum(axis=0)),
         "over the batch (axis 0)"),
        (lambda z: _e(z) / _e(z).sum(axis=-1, keepdims=True), "returned the probabilities"),
        (lambda z: z - z.max(axis=-1, keepdims=True), "forgot the log of the sum"),
        (lambda z: z - np.log(_e(z).sum(axis=-1, keepdims=True)), "did not add it back"),
        (lambda z: z - z.max() - np.log(np.exp(z - z.max()).sum()),
         "summed over the whole batch"),
        (lambda z: z - z.max(axis=-1) - np.log(_e(z).sum(axis=-1)), "keepdims=True"),
    ],
    "softmax_cross_entropy": [
        (_ce(lambda per, n: per.sum(), lambda p, oh, n: (p - oh) / n),
         "summed the examples' losses"),
        (_ce(lambda per, n: per, lambda p, oh, n: (p - oh) / n), "each example's loss"),
        (_ce(lambda per, n: -per.mean(), lambda p, oh, n: (p - oh) / n),
         "the sign is wrong"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: p - oh), "missing the 1/N"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: (oh - p) / n),
         "dz has the wrong sign"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: p / n),
         "missing the -1 at the true class"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: (p - oh) / n, stable=False),
         "underflowed to 0"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: (p - oh) / n, guard="eps"),
         "adding eps to p (log(p + eps)) or clipping p hides the underflow"),
        (_ce(lambda per, n: per.mean(), lambda p, oh, n: (p - oh) / n, guard="clip"),
         "use log-softmax"),
    ],
    "sigmoid_backward": [
        (lambda d, y: d * _sig(y) * (1 - _sig(y)), "applied the sigmoid to y again"),
        (lambda d, y: y * (1 - y), "forgot to multiply by dout"),
        (lambda d, y: d * (1 - y ** 2), "derivative of tanh"),
        (lambda d, y: d * y * (y - 1), "wrong sign"),
    ],
    "linear_backward": [
        (_lin(dW=lambda d, x, W: x.T @ d), "dW is transposed"),
        (_lin(dW=lambda d, x, W: d.T @ x / len(x)), "dW is averaged over the batch"),
        (_lin(db=lambda d, x, W: None), "db is missing"),
        (_lin(db=lambda d, x, W: np.zeros(W.shape[0])), "db is missing"),
        (_lin(db=lambda d, x, W: d.mean(axis=0)), "db is averaged over the batch"),
        (_lin(db=lambda d, x, W: d.sum(axis=1)), "db is summed over the wrong axis"),
        (_lin(dx=lambda d, x, W: d @ W.T), "dx used W transposed"),
    ],
    "relu_backward": [
        (lambda d, x: d * (d > 0), "the mask is x > 0"),
        (lambda d, x: (x > 0) * 1.0, "without multiplying by dout"),
        (lambda d, x: d * (x >= 0), "at x = 0"),
        (lambda d, x: d * np.maximum(x, 0), "by relu(x)"),
    ],
    "tanh_backward": [
        (lambda d, y: d * (1 - np.tanh(y) ** 2), "applied tanh to y again"),
        (lambda d, y: 1 - y ** 2, "forgot to multiply by dout"),
        (lambda d, y: d * (1 - y), "used 1 - y"),
        (lambda d, y: d * y * (1 - y), "the sigmoid's derivative"),
        (lambda d, y: -d * (1 - y ** 2), "wrong sign"),
    ],
    "softmax_backward": [
        (lambda d, p: d * p * (1 - p), "only the diagonal of the Jacobian"),
        (lambda d, p: p * (d - (d * p).sum(axis=0, keepdims=True)),
         "summed over the batch (axis 0)"),
        (lambda d, p: d - (d * p).sum(axis=-1, keepdims=True), "forgot the outer factor p"),
        (lambda d, p: -p * (d - (d * p).sum(axis=-1, keepdims=True)), "wrong sign"),
    ],
    "momentum_step": [
        (lambda w, g, b, lr, m: (w + lr * (m * b + g), m * b + g), "moved up the gradient"),
        (lambda w, g, b, lr, m: (w - lr * g, m * b + g), "gradient g instead of"),
        (lambda w, g, b, lr, m: (w - lr * b, m * b + g), "stepped with the old velocity"),
        (lambda w, g, b, lr, m: (w - lr * (m * b + (1 - m) * g), m * b + (1 - m) * g),
         "mixed (1 - momentum) g"),
        (lambda w, g, b, lr, m: (w - (m * b + lr * g), m * b + lr * g),
         "put lr inside the buffer"),
        (lambda w, g, b, lr, m: (w - lr * (m * b + g), b), "returned the old buffer"),
        (lambda w, g, b, lr, m: (w + (m * b - lr * g), m * b - lr * g),
         "buf is momentum buf + g and lr multiplies it outside"),
    ],
    "adam_step": [
        (_adam(bias=False), "no bias correction"),
        (_adam(eps_inside=True), "eps inside the square root"),
        (_adam(t_shift=1), "t is off by one"),
        (_adam(corrected=True), "returned the bias-corrected moments"),
        (_adam(v_of_g=True), "v averages g, not g^2"),
        (_adam(sign=-1), "moved up the gradient"),
        (_adam(only="v"), "bias-corrected only v"),
        (_adam(only="m"), "bias-corrected only m"),
    ],
    "batchnorm_forward": [
        (_bn(ddof=1), "unbiased variance"),
        (_bn(axis=1), "that is layer norm"),
        (_bn(eps_out=True), "eps outside the square root"),
        (_bn(no_eps=True), "without eps"),
        (_bn(affine=False), "forgot the scale gamma"),
    ],
    "layer_norm_backward": [
        (_ln_bw(axis=0), "the statistics are over the batch (axis 0), as in batch"),
        (_ln_bw(paths=""), "forgot the paths through the mean and the variance"),
        (_ln_bw(paths="mean"), "forgot the path through the variance"),
        (_ln_bw(paths="var"), "forgot the path through the mean"),
        (_ln_bw(per_d=False), "dx is missing the 1/D"),
        (_ln_bw(gamma_out=True), "took gamma out of the sums over the features"),
        (_ln_bw(gamma_in=False), "missing the factor gamma"),
        (_ln_bw(ddof=1), "unbiased variance"),
        (_ln_bw(reduce="mean"), "averaged over the batch"),
        (_ln_bw(eps=False), "without eps"),
    ],
    "warmup_cosine_lr": [
        (_warm_cos(warm="ahead"), "the warm-up is one step ahead"),
        (_warm_cos(warm="from zero"), "the warm-up starts from 0"),
        (_warm_cos(warm="integer"), "integer division"),
        (_warm_cos(warmup=False, phase="total"), "no warm-up"),
        (_warm_cos(phase="total"), "the cosine runs over total_steps"),
        (_warm_cos(phase="shifted over total"), "the cosine runs over total_steps"),
        (_warm_cos(floor="ignored"), "min_lr is ignored"),
        (_warm_cos(floor="on top"), "min_lr is added on top"),
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


@pytest.mark.parametrize("name", ALL)
def test_no_message_shows_the_solution_or_the_reference(name):
    shows_no_solution(name, SOLUTIONS, ref, WRONG[name])


def shows_no_solution(name, solutions, reference, wrong):
    """No message (for the wrong answers, a stub, the solution) contains a
    line of the chapter's solution or of the reference in ``reference``
    (tests/test_checker_deep.py too)."""
    body = solutions[name][1].splitlines()[1:]
    code = inspect.getsource(getattr(reference, name)).split('"""')[-1]
    lines = [ln.strip() for ln in body + code.splitlines()
             if len(ln.strip()) >= 12 and not ln.strip().startswith("def ")]
    assert lines, name
    messages = [run(name, fn).message for fn, _ in wrong]
    messages += [run(name, lambda *a: None).message,
                 run(name, solution(name, solutions)).message]
    for message in messages:
        flat = " ".join(message.split())
        for line in lines:
            assert line not in flat, f"{name}: the message shows {line!r}:\n{message}"


def test_unknown_name_lists_the_exercises():
    with pytest.raises(ex.UnknownExerciseError) as info:
        ex.check("softmaxx", lambda z: z)
    message = str(info.value)
    assert "'softmaxx'" in message and all(n in message for n in ALL)
    assert isinstance(info.value, KeyError)


def test_not_callable_is_a_type_error_naming_what_was_got():
    with pytest.raises(TypeError, match=r"expected a function .*got an array of shape \(3,\)"):
        ex.check("log_softmax", np.zeros(3))
    with pytest.raises(TypeError, match=r"def relu_backward\(dout, x\).*got None"):
        ex.check("relu_backward", None)


class _Flat:
    """A result whose message is read with its line breaks undone."""

    def __init__(self, result):
        self.result, self.message = result, " ".join(result.message.split())

    def __bool__(self):
        return bool(self.result)


def test_wrong_shape_none_tuple_and_exceptions_are_reported_in_words(capsys):
    def run(name, fn):
        return _Flat(ex.check(name, fn, verbose=False))

    r = ex.check("log_softmax", lambda z: z.sum(axis=1))
    assert not r and "output logp: expected shape (4, 4), got (4,)" in r.message
    assert r.message in capsys.readouterr().out                       # verbose prints
    r = run("log_softmax", lambda z: None)
    assert "returned None" in r.message and "an array logp of shape (4, 4)" in r.message
    r = run("softmax_cross_entropy", lambda z, y: z)
    assert "expected a tuple of 2 outputs (loss, dz)" in r.message, r.message
    r = run("softmax_cross_entropy", lambda z, y: (1.0,))
    assert "a tuple of 1 items; expected 2 outputs" in r.message, r.message
    r = run("log_softmax", lambda z: (z, z))
    assert "not a tuple" in r.message
    r = run("log_softmax", lambda z: "p")
    assert "output logp: expected an array logp of shape (4, 4), got a str" in r.message
    r = run("linear_backward", lambda d, c: (d @ c[1], d.T @ c[0], np.zeros((2, 2))))
    assert "output dW" not in r.message and "output db: expected shape (3,)" in r.message
    r = run("linear_backward", lambda d, c: (d @ c[0], d.T @ c[0], d.sum(0)))
    assert "raised ValueError" in r.message and "shapes of a product" in r.message

    def raises(z):
        raise ValueError("operands could not be broadcast")
    r = run("log_softmax", raises)
    assert "raised ValueError on case 1 of 8" in r.message
    assert "operands could not be broadcast" in r.message

    def todo(z):
        raise NotImplementedError
    assert "raised NotImplementedError" in run("log_softmax", todo).message
    r = run("softmax_cross_entropy", _ce(lambda per, n: np.float64(per.mean()),
                                         lambda p, oh, n: (p - oh) / n))
    assert r, r.message                           # a NumPy scalar is a number too


def test_a_failure_names_the_case_the_output_the_index_and_both_values():
    r = run("relu_backward", lambda d, x: d * (x >= 0))
    m = " ".join(r.message.split())
    assert "case 8 of 8" in m and "x with exact zeros" in m
    assert re.search(r"output dx at index \(\d+, \d+\): expected 0, got -?\d", m), m


def test_values_that_differ_beyond_six_digits_are_printed_with_more():
    right = ex.get("relu_backward").reference
    r = run("relu_backward", lambda d, x: right(d, x) * (1 + 1.2e-6))
    m = " ".join(r.message.split())
    got = re.search(r"expected (\S+), got (\S+)", m)
    assert got and got.group(1) != got.group(2), m


def test_the_same_seed_gives_the_same_message_and_another_seed_other_cases():
    wrong = WRONG["linear_backward"][1][0]
    a, b = run("linear_backward", wrong).message, run("linear_backward", wrong).message
    assert a == b
    c = ex.check("linear_backward", wrong, seed=1, verbose=False).message
    assert c != a


def test_register_refuses_a_name_twice():
    with pytest.raises(ValueError, match="'log_softmax'"):
        ex.register("log_softmax", cases=lambda rng: [], args=("z",), outputs=("p",))(
            lambda z: z)


def test_a_new_exercise_can_be_registered_and_checked():
    from nnlib.exercises import _core

    def cases(rng):
        return [ex.Case((rng.standard_normal((2, 3)),)), ex.Case((np.ones((1, 1)),), "ones")]
    try:
        ex.register("double", cases=cases, args=("x",), outputs=("y",), diagnosers=[
            ex.Diagnoser("added instead of multiplied", variant=lambda x: x + 2)])(
            lambda x: 2 * x)
        assert run("double", lambda x: x * 2)
        r = run("double", lambda x: x + 2)
        assert "likely cause: added instead of multiplied" in r.message
        assert "passed on 2 cases (including ones)" in run("double", lambda x: x + x).message
    finally:
        _core._REGISTRY.pop("double", None)


# --- the references agree with PyTorch ---------------------------------------
def _cases(name, seed=0):
    return ex.get(name).cases(np.random.default_rng(seed))


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-8, atol=1e-10)


@np.errstate(divide="ignore")
def test_references_agree_with_torch_ch1_ch2():
    torch = pytest.importorskip("torch")
    scipy_special = pytest.importorskip("scipy.special")
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    for case in _cases("log_softmax"):
        _close(ref.log_softmax(*case.args),
               torch.log_softmax(t(case.args[0]), -1).detach())
        z = case.args[0]                          # and scipy's logsumexp
        _close(ref.log_softmax(z), z - scipy_special.logsumexp(z, axis=-1, keepdims=True))
    for case in _cases("softmax_cross_entropy"):
        z, y = case.args
        zt = t(z)
        loss = torch.nn.functional.cross_entropy(zt, torch.tensor(y))
        loss.backward()
        got = ref.softmax_cross_entropy(z, y)
        _close(got[0], loss.item())
        _close(got[1], zt.grad)
    for name, f in [("sigmoid_backward", torch.sigmoid), ("tanh_backward", torch.tanh),
                    ("relu_backward", torch.relu)]:
        for case in _cases(name):
            dout, c = case.args
            x = {"sigmoid_backward": lambda y: np.log(y / (1 - y)),
                 "tanh_backward": np.arctanh, "relu_backward": lambda x: x}[name](c)
            if not np.all(np.isfinite(x)):
                continue                   # saturated: y rounds to 1, x is not recoverable
            xt = t(x)
            f(xt).backward(torch.tensor(dout))
            _close(getattr(ref, name)(dout, c), xt.grad)
    for case in _cases("linear_backward"):
        dout, (x, W, _) = case.args
        xt, Wt, bt = t(x), t(W), t(np.zeros(W.shape[0]))
        torch.nn.functional.linear(xt, Wt, bt).backward(torch.tensor(dout))
        for a, b in zip(ref.linear_backward(*case.args), (xt.grad, Wt.grad, bt.grad)):
            _close(a, b)
    for case in _cases("softmax_backward"):
        dout, p = case.args
        # logits with this softmax: log p (softmax is shift-invariant)
        zt = t(np.log(p))
        torch.softmax(zt, -1).backward(torch.tensor(dout))
        if np.all(p > 1e-300):
            _close(ref.softmax_backward(dout, p), zt.grad)


def test_references_agree_with_torch_ch3():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal((3, 2)), rng.standard_normal((4, 3, 2))
    for mom in (0.9, 0.5):
        p = torch.tensor(w0.copy(), requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1, momentum=mom)
        w, buf = w0.copy(), np.zeros_like(w0)
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
            w, buf = ref.momentum_step(w, g, buf, 0.1, mom)
            _close(w, p.detach())
            _close(buf, opt.state[p]["momentum_buffer"])
    for eps in (1e-8, 0.1):
        p = torch.tensor(w0.copy(), requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=eps)
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        for t, g in enumerate(grads, start=1):
            p.grad = torch.tensor(g)
            opt.step()
            w, m, v = ref.adam_step(w, g, m, v, t, 0.01, 0.8, 0.99, eps)
            _close(w, p.detach())
            _close(m, opt.state[p]["exp_avg"])
            _close(v, opt.state[p]["exp_avg_sq"])
    for case in _cases("batchnorm_forward"):
        x, gamma, beta, eps = case.args
        y = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(gamma),
                                           torch.tensor(beta), training=True, eps=eps)
        _close(ref.batchnorm_forward(*case.args), y)


def test_references_agree_with_torch_ch3b():
    torch = pytest.importorskip("torch")
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    for case in _cases("layer_norm_backward"):
        dout, (x, gamma, beta, eps) = case.args
        xt, gt, bt = t(x), t(gamma), t(beta)
        y = torch.nn.functional.layer_norm(xt, (x.shape[1],), gt, bt, eps=eps)
        y.backward(torch.tensor(dout))
        for a, b in zip(ref.layer_norm_backward(*case.args), (xt.grad, gt.grad, bt.grad)):
            _close(a, b)
    S = torch.optim.lr_scheduler
    configs = [(0.1, 5, 30, 0.0, 0.1),              # the chapter's
               (0.5, 4, 20, 0.01, 0.01), (1.0, 1, 7, 0.05, 0.5),
               (0.3, 40, 400, 0.003, 0.01)]
    configs += sorted({c.args[1:] for c in _cases("warmup_cosine_lr")})
    for base, w, total, eta_min, f0 in configs:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
        sched = S.SequentialLR(opt, [
            S.LinearLR(opt, start_factor=f0, total_iters=w),
            S.CosineAnnealingLR(opt, T_max=total - w, eta_min=eta_min)],
            milestones=[w])
        for step in range(total + 1):
            got = ref.warmup_cosine_lr(step, base, w, total, eta_min, f0)
            _close(got, sched.get_last_lr()[0])
            opt.step()
            sched.step()
        assert got == pytest.approx(eta_min, abs=1e-12)        # ends at min_lr


def test_every_case_set_has_a_batch_of_one_or_its_smallest_and_odd_sizes():
    """The cases reach the corners: a batch of 1 (2 for batch norm, whose
    variance needs two examples), odd sizes and each exercise's edge case."""
    for name in ALL:
        if name == "warmup_cosine_lr":             # numbers, not arrays: below
            continue
        cases = _cases(name)
        shapes = [np.shape(c.args[0]) for c in cases]
        smallest = 2 if name.startswith("batchnorm") else 1
        assert min(s[0] for s in shapes if s) == smallest, (name, shapes)
        assert any(any(d % 2 and d > 1 for d in s) for s in shapes), (name, shapes)
        assert len(cases) >= 6 and any(c.note for c in cases)
    ln = _cases("layer_norm_backward")
    assert any(c.args[0].shape[0] == c.args[0].shape[1] for c in ln)   # N = D
    assert any(c.args[0].shape[1] == 1 for c in ln)                    # D = 1
    assert any(np.ptp(c.args[1][0], axis=1).min() == 0 and c.args[0].shape[1] > 1
               for c in ln)                                            # constant
    assert any(c.args[1][3] >= 0.1 for c in ln)                        # large eps
    sched = [c.args for c in _cases("warmup_cosine_lr")]
    assert len(sched) >= 6 and all(1 <= w < t for _, _, w, t, _, _ in sched)
    steps = {(s, w, t) for s, _, w, t, _, _ in sched}
    for where in (lambda w, t: 0, lambda w, t: w - 1, lambda w, t: w,
                  lambda w, t: t):                 # the corners of the schedule
        assert any(s == where(w, t) for s, w, t in steps)
    assert any(m > 0 for *_, m, _ in sched) and any(w == 1 for _, _, w, *_ in sched)
    assert all(0 <= s <= t for s, _, _, t, _, _ in sched)


def test_a_correct_answer_written_differently_passes():
    """CS231n's staged backward of layer norm (through the variance, then
    the mean) and a schedule written with ifs are right too."""
    assert run("layer_norm_backward", _ln_bw())
    assert run("warmup_cosine_lr", _warm_cos())


def test_float32_output_is_named_as_the_cause():
    def log_softmax32(z):
        s = z.astype(np.float32) - z.max(axis=-1, keepdims=True).astype(np.float32)
        return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))
    r = run("log_softmax", log_softmax32)
    assert not r and "your output is float32" in " ".join(r.message.split()), r.message


def test_import_nnlib_does_not_import_the_exercises():
    import subprocess
    import sys
    code = ("import sys, nnlib\nassert 'nnlib.exercises' not in sys.modules\n"
            "import nnlib.exercises\nassert nnlib.exercises.names()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
