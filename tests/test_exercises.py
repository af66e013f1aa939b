"""The exercises whose answers are numbers or facts about nnlib: each test
recomputes the answer with nnlib (or PyTorch) and checks that the solution in
the chapter states it. An edit to the library or to a solution that makes them
disagree fails here. Solutions that quote measured numbers are in
``MEASURED_HERE``: a test below reruns what they ran (the few seconds of
training each takes) and finds the numbers, formatted from its own results, in
the solution; tests/test_prose_numbers.py lets typed numbers stand only there.
Solutions whose measurements would take minutes say what to expect in words,
or quote glued numbers from the chapter.
"""
import contextlib
import functools
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import nnlib
from nnlib import models, rl
from nnlib.testing import numerical_grad, rel_error
from nnlib.layers.conv import output_size

pytestmark = pytest.mark.book

BOOK = Path(__file__).resolve().parents[1] / "book"


def exercises(chapter: str) -> list[str]:
    """The text of each numbered exercise of a chapter, with its solution."""
    nb = json.loads(next(BOOK.glob(f"{chapter}-*.ipynb")).read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"]
                     if c["cell_type"] == "markdown")
    part = text.split("## Exercises", 1)[1]
    return [m.strip() for m in re.split(r"^\d+\. ", part, flags=re.M)[1:]]


# (chapter, exercise) whose solutions quote measured numbers that a test
# below recomputes and finds in the solution's text; tests/test_prose_numbers.py
# accepts typed numbers in these solutions, and only in these
MEASURED_HERE = {("01", 2), ("03", 2), ("08", 1), ("08", 2), ("10", 1), ("10", 2),
                 ("10", 3)}


def code_cells(chapter: str) -> list[str]:
    """The source of each code cell of a chapter, in order."""
    nb = json.loads(next(BOOK.glob(f"{chapter}-*.ipynb")).read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def solution(chapter: str, number: int) -> str:
    text = exercises(chapter)[number - 1]
    assert "{admonition} Solution" in text and ":class: dropdown" in text, (
        f"chapter {chapter}, exercise {number}: no hidden solution")
    return re.sub(r"\s+", " ", text.split("{admonition} Solution", 1)[1])


@pytest.mark.parametrize("chapter", ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"])
def test_every_chapter_has_exercises_with_hidden_solutions(chapter):
    found = exercises(chapter)
    assert len(found) >= 2, f"chapter {chapter}: {len(found)} exercise(s)"
    for n in range(1, len(found) + 1):
        solution(chapter, n)


def test_ch01_parameter_count_of_the_narrow_network():
    narrow = models.mlp(64, 10, hidden=(8,), rng=np.random.default_rng(0))
    wide = models.mlp(64, 10, hidden=(64,), rng=np.random.default_rng(0))
    assert (narrow.num_parameters(), wide.num_parameters()) == (610, 4810)
    text = solution("01", 2)
    assert "= 610$ parameters" in text and "4,810" in text, text


def test_ch01_network_without_activations_is_affine():
    # the claim behind exercise 1: three Linear layers compose to one affine map
    rng = np.random.default_rng(0)
    net = nnlib.Sequential(nnlib.Linear(2, 16), nnlib.Linear(16, 16), nnlib.Linear(16, 3))
    x, x2 = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    for t in (0.3, -1.7, 2.5):      # f(x + t (x2 - x)) is affine in t
        mix = net(x + t * (x2 - x))
        assert np.allclose(mix, net(x) + t * (net(x2) - net(x)), atol=1e-12)
    assert "single affine map" in solution("01", 1)


def _chapter01_digits_trainer(hidden: int):
    """Chapter 1's digits split and ``train_digits``, as they stand, with
    ``hidden`` units instead of 64."""
    cells = code_cells("01")
    split = next(c for c in cells if "digits = data.train_val_test_split" in c)
    trainer = next(c for c in cells if "def train_digits" in c)
    trainer = trainer.split("\n\n\nnet, history")[0]
    assert "nnlib.Linear(64, 64), nnlib.ReLU(), nnlib.Linear(64, 10)" in trainer
    trainer = trainer.replace("nnlib.Linear(64, 64), nnlib.ReLU(), nnlib.Linear(64, 10)",
                              f"nnlib.Linear(64, {hidden}), nnlib.ReLU(), "
                              f"nnlib.Linear({hidden}, 10)")
    namespace = {}
    exec("import numpy as np\nimport nnlib\nfrom nnlib import data\n"
         + split.split("print(")[0] + trainer, namespace)
    return namespace


def test_ch01_accuracy_of_the_narrow_network():
    ns = _chapter01_digits_trainer(8)
    d = ns["digits"]
    accs = np.array([nnlib.train.accuracy(ns["train_digits"](s)[0], d.X_test, d.y_test)
                     for s in (0, 1, 2)])
    text = solution("01", 2)
    stated = (", ".join(f"{a:.3f}" for a in accs[:2]) + f" and {accs[2]:.3f} "
              f"({accs.mean():.3f} ± {accs.std(ddof=1):.3f}")
    assert stated in text, (stated, text)


def test_ch02_engine_sigmoid_solution():
    """Exercise 1's solution, run on the chapter's own scalar engine (its two
    cells, taken from the notebook), passes its own check against torch."""
    import torch
    nb = json.loads((BOOK / "02-backprop.ipynb").read_text(encoding="utf-8"))
    engine = "\n".join("".join(c["source"]) for c in nb["cells"]
                       if c["cell_type"] == "code"
                       and ("class Value" in "".join(c["source"])
                            or "def backprop(" in "".join(c["source"])))
    raw = exercises("02")[0]
    code = re.search(r"```python\n(.*?)```", raw, re.S).group(1)
    scope = {"np": np, "torch": torch}
    exec(engine + "\n" + code, scope)          # asserts inside
    assert "Value.sigmoid" in code and "backprop(" in code


def _lenet_features(pool):
    return nnlib.Sequential(
        nnlib.Conv2d(1, 2, 3, padding=1), nnlib.ReLU(), pool(2),
        nnlib.Conv2d(2, 2, 3, padding=1), nnlib.ReLU(), pool(2))


@pytest.mark.parametrize("pool", [nnlib.MaxPool2d, nnlib.AvgPool2d])
def test_ch04_receptive_field_of_the_feature_stack(pool):
    """Backpropagate from one output unit and count the input pixels reached."""
    nnlib.manual_seed(0)
    feats = _lenet_features(pool)
    for layer in feats:             # all weights positive, so no path cancels
        if isinstance(layer, nnlib.Conv2d):
            layer.weight.data = np.abs(layer.weight.data) + 0.1
            layer.bias.data[:] = 1.0
    x = np.random.default_rng(1).uniform(0.5, 1.0, (1, 1, 32, 32))
    out = feats(x)
    grad = np.zeros_like(out)
    grad[0, 0, 3, 3] = 1.0
    rows, cols = np.nonzero(np.abs(feats.backward(grad)[0, 0]) > 0)
    reach = (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    if pool is nnlib.AvgPool2d:     # max pooling passes one pixel per window
        assert reach == (10, 10), reach
    else:
        assert max(reach) <= 10, reach
    assert "`receptive_field` gives 10" in solution("04", 1)


def test_ch04_sizes_without_padding():
    sizes = [8]
    sizes.append(output_size(sizes[-1], 3))         # conv, no padding
    sizes.append(output_size(sizes[-1], 2, 2))      # pooling
    sizes.append(output_size(sizes[-1], 3))         # conv
    assert sizes == [8, 6, 3, 1]
    with pytest.raises(ValueError, match=r"1"):
        nnlib.MaxPool2d(2)(np.zeros((1, 1, 1, 1)))
    text = solution("04", 2)
    assert r"$8 \to 6$" in text and r"$6 \to 3$" in text and r"$3 \to 1$" in text


def test_ch06_linear_autoencoder_basis_change_leaves_reconstructions_alone():
    k = 4
    rng = np.random.default_rng(0)
    ae = models.autoencoder(64, k, hidden=(), out_activation=None, rng=rng)
    X = rng.standard_normal((20, 64))
    A = rng.standard_normal((k, k))
    before = ae(X)
    enc, dec = ae[0][0], ae[1][0]
    enc.weight.data = A @ enc.weight.data
    enc.bias.data = A @ enc.bias.data
    dec.weight.data = dec.weight.data @ np.linalg.inv(A)
    assert np.abs(ae(X) - before).max() < 1e-10
    assert "about 1e-15" in solution("06", 2)


def test_ch08_gridworld_with_gamma_half():
    world = rl.GridWorld(["...G", ".#.X", "S..."], step_reward=-0.04, slip=0.2)
    V, Q, _ = rl.value_iteration(world, gamma=0.5)
    policy = rl.greedy_policy(Q)
    assert rl.ARROWS[policy[world.start]] == "↑"
    assert round(V[world.start], 2) == -0.05
    assert rl.ARROWS[policy[world.n_states - 1]] == "↓"     # bottom-right corner
    V99, _, _ = rl.value_iteration(world, gamma=0.99)
    text = solution("08", 1)
    assert "still goes up" in text and "(↓)" in text
    assert (f"now worth {V[world.start]:.2f} instead of "
            f"{V99[world.start]:.2f}").replace("-", "−") in text, text
    assert rf"$0.5^4 \approx {0.5 ** 4:.2f}$" in text


@pytest.mark.rl
def test_ch08_off_policy_q_learning_from_a_random_agent():
    gym = pytest.importorskip("gymnasium")
    firm = gym.make("FrozenLake-v1", is_slippery=False)
    run = rl.q_learning(firm, episodes=2000, alpha=0.5, epsilon=1.0,
                        rng=np.random.default_rng(0))
    random_success = np.mean(np.array(run.returns) > 0)
    greedy_success = rl.run_policy(firm, rl.greedy_policy(run.Q), 10).mean()
    assert greedy_success == 1.0
    assert round(run.Q[0].max(), 3) == round(0.99 ** 5, 3)
    text = solution("08", 2)
    assert f"{random_success:.2%} of its episodes" in text, random_success
    assert rf"${run.Q[0].max():.3f} = \gamma^5$" in text


@pytest.mark.vgg
def test_ch09_first_dense_layer_with_seven_by_seven_pooling():
    pytest.importorskip("torch")
    from nnlib.torch import vgg

    counts = {}
    for pool in (1, 7):
        m = vgg.vgg16(num_classes=10, width=8, in_channels=1, pool=pool)
        layer = m.classifier[0]
        counts[pool] = layer.weight.numel() + layer.bias.numel()
    assert counts == {1: 33_280, 7: 1_606_144}
    text = solution("09", 1)
    assert "1{,}606{,}144" in text and "33{,}280" in text


def test_ch03_smallest_network_for_the_spiral():
    from nnlib import playground

    def acc(layers, width, seed):
        return playground.train_toy("spiral", hidden_layers=layers, width=width,
                                    seed=seed).train_acc[-1]

    assert all(acc(1, 8, s) == 1.0 for s in range(3))
    assert all(acc(2, 4, s) >= 0.95 for s in range(3))
    assert [acc(1, 4, s) >= 0.95 for s in range(3)] == [False, True, False]
    width2 = np.array([[acc(layers, 2, s) for s in range(3)] for layers in (1, 2, 3)])
    assert (width2 >= 0.95).sum() == 1 and width2[2, 0] >= 0.95
    text = solution("03", 2)
    assert "width 2 reaches 95% in one run of nine" in text
    rest = np.sort(np.delete(width2.ravel(), 6))       # all but (3 layers, seed 0)
    assert (f"seed 0: {width2[2, 0]:.3f}; the others stay between "
            f"{rest[0]:.2f} and {rest[-1]:.2f}") in text, (width2, text)
    one4 = ", ".join(f"{acc(1, 4, s):.3f}" for s in range(3))
    two4 = ", ".join(f"{acc(2, 4, s):.3f}" for s in range(3))
    assert f"({one4})" in text and f"(47 parameters; {two4})" in text, text
    assert "One layer of 8 (51 parameters) reaches 100% for all three" in text
    sizes = {h: sum(p.data.size for p in models.mlp(2, 3, hidden=h).parameters())
             for h in [(4,), (8,), (4, 4)]}
    assert sizes == {(4,): 27, (8,): 51, (4, 4): 47}
    assert "One hidden layer of 4 neurons (27 parameters)" in text


def _chapter10_recommender():
    """The recommender's code cells of chapter 10, run as they stand."""
    cells = code_cells("10")
    first = next(i for i, c in enumerate(cells) if "def make_ratings" in c)
    last = next(i for i, c in enumerate(cells) if "def train_mf" in c)
    namespace = {}
    exec("import numpy as np\nimport nnlib\nfrom nnlib.train import fit\n"
         + "\n".join(cells[first:last + 1]), namespace)
    return namespace


def test_ch10_recommender_size_sweep():
    ns = _chapter10_recommender()
    measured = {dim: ns["train_mf"](dim) for dim in (2, 3, 4, 6)}
    test = {d: round(ns["rmse"](m, ns["test_idx"]), 3) for d, m in measured.items()}
    train = {d: round(ns["rmse"](m, ns["train_idx"]), 3) for d, m in measured.items()}
    assert list(train.values()) == sorted(train.values(), reverse=True)
    best, *rest = sorted(test, key=test.get)
    text = solution("10", 1)
    assert (f"{best} is best (test RMSE {test[best]:.3f}), then "
            f"{rest[0]} ({test[rest[0]]:.3f}), {rest[1]} ({test[rest[1]]:.3f}) "
            f"and {rest[2]} ({test[rest[2]]:.3f})") in text, (test, text)
    assert best == 3 and "the number of hidden tastes" in exercises("10")[0]
    assert ", ".join(f"{train[d]:.3f}" for d in (2, 3, 4, 6)) in text, train
    assert f"the {len(ns['train_idx']):,} training ratings" in text


def _chapter10_code(*markers: str) -> str:
    """Chapter 10's code cells that contain each of ``markers``, in order."""
    cells = code_cells("10")
    return "\n".join(next(c for c in cells if m in c) for m in markers)


@functools.lru_cache(maxsize=1)
def _chapter10_attack():
    """Chapter 10's digits network and its attack table, run as they stand."""
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec("import numpy as np\nimport nnlib\nfrom nnlib import data, models\n"
             "from nnlib.train import accuracy, fit\n"
             "losses = nnlib.CrossEntropyLoss()\n"
             + _chapter10_code("def digits_net", "grad_x = net.backward"), namespace)
    return namespace


def test_ch10_perturbation_norms():
    ns = _chapter10_attack()
    eps, grad_x, noisy, attacked = (ns[k] for k in ("epsilons", "grad_x", "noisy", "attacked"))
    random_step = 0.5 * ns["random_sign"]
    gradient_step = 0.1 * np.sign(grad_x)
    norms = [np.linalg.norm(s, axis=1) for s in (random_step, gradient_step)]
    assert all(np.allclose(n, n[0]) for n in norms)            # every image alike
    assert np.isclose(norms[0][0], 8 * 0.5) and np.isclose(norms[1][0], 8 * 0.1)
    text = solution("10", 2)
    assert f"{norms[0][0]:.1f} for the random step" in text
    assert f"{norms[1][0]:.1f} for the gradient step" in text
    assert round(norms[0][0] / norms[1][0]) == 5 and "five times smaller" in text
    clean = attacked[eps.index(0.0)]
    assert noisy[eps.index(0.5)] > 0.9 and "above 90%" in text
    drop = clean - attacked[eps.index(0.1)]
    assert 0.08 < drop < 0.12 and "by about ten points" in text, drop
    assert clean - noisy[eps.index(0.5)] < drop


def test_ch10_adversarial_training():
    base = _chapter10_attack()
    raw = exercises("10")[2]
    code = re.findall(r"```python\n(.*?)```", raw, re.S)
    assert len(code) == 1 and "Xtr + 0.2 * np.sign(g)" in code[0]
    ns = {k: base[k] for k in ("np", "nnlib", "fit", "losses", "digits_net",
                               "Xtr", "ytr")}
    exec(code[0], ns)
    net, losses, Xte, yte = ns["net"], base["losses"], base["Xte"], base["yte"]
    net.eval()                                    # attack it as the chapter does
    losses(net(Xte), yte)
    sign = np.sign(net.backward(losses.backward()))
    after = {e: nnlib.train.accuracy(net, Xte + e * sign, yte) for e in (0.0, 0.2, 0.3)}
    before = dict(zip(base["epsilons"], base["attacked"]))
    assert after[0.2] > before[0.2] and after[0.3] > before[0.3]
    assert after[0.0] >= before[0.0]
    text = solution("10", 3)
    assert (f"rose from {before[0.2]:.3f} to {after[0.2]:.3f} (at $\\epsilon = 0.3$, "
            f"from {before[0.3]:.3f} to {after[0.3]:.3f})") in text, (before, after)
    assert (f"did not suffer ({after[0.0]:.3f}, against {before[0.0]:.3f})") in text


@pytest.mark.vgg
def test_ch09_lora_parameter_count():
    torch = pytest.importorskip("torch")
    from nnlib.torch import case_study, finetune, lora

    raw = exercises("09")[1]
    code = re.findall(r"```python\n(.*?)```", raw, re.S)
    shown = re.findall(r"```text\n(.*?)```", raw, re.S)
    assert len(code) == len(shown) == 1
    ns = {"case_study": case_study, "finetune": finetune, "lora": lora}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code[0], ns)
    assert out.getvalue() == shown[0], (out.getvalue(), shown[0])
    # the formula of the solution, r (9 C_in + C_out), layer by layer
    model = lora.add_lora(case_study.small_vgg16(), r=4)
    for m in model.modules():
        if isinstance(m, lora.LoRA) and isinstance(m.base, torch.nn.Conv2d):
            c_out, c_in = m.base.weight.shape[:2]
            assert (m.lora_A.weight.numel() + m.lora_B.weight.numel()
                    == 4 * (9 * c_in + c_out))
    text = solution("09", 2)
    assert "72 / 17, about 4" in text and abs(72 / 17 - 4) < 0.5
    assert "a factor of 14" in text and round(36_864 / 2_560) == 14
    assert "a factor of 64" in text and 262_144 / 4_096 == 64
    assert "2,359,296" in text and 9 * 512 * 512 == 2_359_296
    assert "20,480" in text and 4 * (9 * 512 + 512) == 20_480


def test_ch06_held_out_digits_are_found_in_the_stated_order():
    """Exercise 1: with one digit left out of training, the reconstruction
    error finds held-out 4s almost perfectly, 9s well but not perfectly and
    1s worst, on each of seeds 0, 1 and 2 (the solution's code, per seed)."""
    from sklearn.metrics import roc_auc_score

    X, y = nnlib.data.load_digits()
    split = nnlib.data.train_val_test_split(X, y, seed=0)
    mse = nnlib.MSELoss()
    for seed in (0, 1, 2):
        auc = {}
        for held in (9, 1, 4):
            keep = split.y_train != held
            rng = np.random.default_rng(seed)
            ae = models.autoencoder(64, 16, hidden=(128,), rng=rng)
            nnlib.train.fit(ae, mse, nnlib.Adam(ae.parameters(), lr=3e-3),
                            split.X_train[keep], split.X_train[keep],
                            epochs=100, batch_size=64, rng=rng,
                            classification=False)
            s = np.mean((ae(split.X_test) - split.X_test) ** 2, axis=1)
            auc[held] = roc_auc_score(split.y_test == held, s)
        assert auc[4] > 0.95 and 0.8 < auc[9] < 0.95 and auc[1] < auc[9], auc
    text = solution("06", 1)
    assert "4s picked out almost perfectly" in text and "1s worst" in text
    assert "seeds 0, 1 and 2" in text


def test_ch05c_attend_solution_matches_nnlib():
    """Section 5c's exercise 1: the solution's ``attend`` equals nnlib's scaled
    dot-product attention with and without a causal mask, and exercise 2's
    claim (zero query and key weights make every output the same) holds."""
    from nnlib import functional as F
    raw = exercises("05c")[0]
    code = re.search(r"```python\n(.*?)```", raw, re.S).group(1)
    scope = {"np": np}
    exec(code, scope)
    rng = np.random.default_rng(0)
    Q, K, V = rng.standard_normal((3, 2, 5, 8))
    for mask in (None, F.causal_mask(5)):
        want = F.scaled_dot_product_attention_forward(Q, K, V, mask)[0]
        assert rel_error(scope["attend"](Q, K, V, mask), want) < 1e-14
    mha = nnlib.MultiheadAttention(8, 2, rng=rng)
    mha.in_proj_weight.data[:16] = 0
    y = mha(rng.standard_normal((2, 5, 8)))
    assert np.allclose(y, y[:, :1], rtol=0, atol=1e-14)
    assert "np.allclose(y, y[:, :1])" in exercises("05c")[1]
