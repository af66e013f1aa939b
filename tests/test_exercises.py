"""The exercises whose answers are numbers or facts about nnlib: each test
recomputes the answer with nnlib (or PyTorch) and checks that the solution in
the chapter states it. An edit to the library or to a solution that makes them
disagree fails here. Exercises whose answers are measured training runs (seconds
to minutes each) are measured in the chapters' own words and not rerun here.
"""
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


def test_ch02_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, cls = rng.standard_normal((1, 3)), 1
    loss = nnlib.CrossEntropyLoss()

    def value(v):
        return float(loss(v.reshape(1, 3), np.array([cls])))

    value(logits)
    analytic = loss.backward()
    p = np.exp(logits) / np.exp(logits).sum()
    assert rel_error(analytic, p - np.eye(3)[cls]) < 1e-12
    assert rel_error(numerical_grad(value, logits.copy()), p - np.eye(3)[cls]) < 1e-7
    assert r"\partial L/\partial h_k = -[k = c] + p_k" in solution("02", 1)


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
    text = solution("08", 1)
    assert "still goes up" in text and "−0.05" in text and "(↓)" in text


@pytest.mark.rl
def test_ch08_off_policy_q_learning_from_a_random_agent():
    gym = pytest.importorskip("gymnasium")
    firm = gym.make("FrozenLake-v1", is_slippery=False)
    run = rl.q_learning(firm, episodes=2000, alpha=0.5, epsilon=1.0,
                        rng=np.random.default_rng(0))
    random_success = np.mean(np.array(run.returns) > 0)
    greedy_success = rl.run_policy(firm, rl.greedy_policy(run.Q), 10).mean()
    assert round(100 * random_success, 1) == 1.2
    assert greedy_success == 1.0
    assert round(run.Q[0].max(), 3) == round(0.99 ** 5, 3) == 0.951
    text = solution("08", 2)
    assert "1.2% of its episodes" in text and r"$0.951 = \gamma^5$" in text


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

    assert all(acc(1, 8, s) >= 0.95 for s in range(3))
    assert all(acc(2, 4, s) >= 0.95 for s in range(3))
    assert [acc(1, 4, s) >= 0.95 for s in range(3)] == [False, True, False]
    width2 = np.array([[acc(layers, 2, s) for s in range(3)] for layers in (1, 2, 3)])
    assert (width2 >= 0.95).sum() == 1 and width2[2, 0] >= 0.95
    assert 0.78 <= np.sort(width2.ravel())[-2] <= 0.92 and width2.min() >= 0.775
    text = solution("03", 2)
    assert "width 2 reaches 95% in one run of nine" in text
    assert "(0.947, 0.977, 0.863)" in text


def _chapter10_recommender():
    """The recommender's code cells of chapter 10, run as they stand."""
    nb = json.loads(next(BOOK.glob("10-*.ipynb")).read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    setup = next(c for c in cells if "class MatrixFactorization" in c)
    namespace = {}
    exec("import numpy as np\nimport nnlib\nfrom nnlib.train import fit\n"
         + setup.split("baseline = ")[0], namespace)
    return namespace


def test_ch10_recommender_size_sweep():
    ns = _chapter10_recommender()
    measured = {dim: ns["train_mf"](dim) for dim in (2, 3, 4, 6)}
    test = {d: round(ns["rmse"](m, ns["test_idx"]), 3) for d, m in measured.items()}
    train = {d: round(ns["rmse"](m, ns["train_idx"]), 3) for d, m in measured.items()}
    assert min(test, key=test.get) == 3
    assert list(train.values()) == sorted(train.values(), reverse=True)
    text = solution("10", 1)
    assert (f"3 is best (test RMSE {test[3]:.3f}), then 4 ({test[4]:.3f}), "
            f"2 ({test[2]:.3f}) and 6 ({test[6]:.3f})") in text, (test, text)
    assert ", ".join(f"{train[d]:.3f}" for d in (2, 3, 4, 6)) in text, train


def test_ch10_perturbation_norms():
    rng = np.random.default_rng(0)
    for eps, stated in ((0.5, "4.0 for the random step"), (0.1, "0.8 for the gradient step")):
        step = eps * np.sign(rng.standard_normal(64))
        assert np.isclose(np.linalg.norm(step), 8 * eps)
        assert stated in solution("10", 2)
