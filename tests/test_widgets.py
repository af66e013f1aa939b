import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nnlib import models, widgets  # noqa: E402

pytestmark = pytest.mark.train


def test_train_toy_learns_and_snapshots():
    run = widgets.train_toy("xor", epochs=40, snapshot_every=10)
    assert [e for e, _ in run.snapshots] == [0, 10, 20, 30, 40]
    assert run.train_acc[-1] > 0.9 and run.error is None
    assert len(run.train_loss) == 40


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset="swirl"), "dataset in"),
    (dict(lr=-0.1), "learning rate > 0, got -0.1"),
    (dict(lr=float("nan")), "learning rate > 0"),
    (dict(width=0), "integer width >= 1, got 0"),
    (dict(weight_decay=-1.0), "weight_decay >= 0"),
    (dict(activation="swish"), "activation in"),
])
def test_train_toy_rejects_nonsense(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.train_toy(epochs=1, **kwargs)


def test_static_twin_and_live_panel_build():
    run = widgets.train_toy("moons", epochs=20, snapshot_every=10)
    html = widgets.playground_animation(run).data
    assert html.count("data:image/png;base64") == 3 and "https://" not in html
    panel = widgets.playground(epochs=5)
    assert "Train" in repr(panel.children[1])


def test_mlp_builder():
    m = models.mlp(4, 3, hidden=(5, 6), activation="tanh", dropout=0.2)
    assert [type(l).__name__ for l in m] == ["Linear", "Tanh", "Dropout", "Linear", "Tanh",
                                             "Dropout", "Linear"]
    assert m(np.zeros((2, 4))).shape == (2, 3)
    with pytest.raises(ValueError, match="positive integer widths"):
        models.mlp(4, 3, hidden=(0,))


def test_kernel_parsing_and_application():
    k = widgets.parse_kernel("1 0 -1; 2 0 -2\n1, 0, -1")
    np.testing.assert_array_equal(k, widgets.KERNELS["vertical edges (Sobel x)"])
    with pytest.raises(ValueError, match="3 rows of 3 numbers, got rows of lengths \\[2, 3, 3\\]"):
        widgets.parse_kernel("1 0; 2 0 -2; 1 0 -1")
    with pytest.raises(ValueError, match="expected numbers"):
        widgets.parse_kernel("a b c; 1 2 3; 4 5 6")
    img = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(widgets.apply_kernel(img, widgets.KERNELS["identity"]), img)
    panel = widgets.kernel_explorer(img)
    assert len(panel.children) == 2
