import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nnlib import data, models, playground  # noqa: E402
from nnlib.viz import animations, plots, widgets  # noqa: E402

pytestmark = pytest.mark.train


def test_train_toy_learns_and_snapshots():
    run = playground.train_toy("xor", epochs=40, snapshot_every=10)
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
        playground.train_toy(epochs=1, **kwargs)


def test_static_twin_and_live_panel_build():
    run = playground.train_toy("moons", epochs=20, snapshot_every=10)
    html = animations.playground_animation(run).data
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
    k = data.parse_kernel("1 0 -1; 2 0 -2\n1, 0, -1")
    np.testing.assert_array_equal(k, data.KERNELS["vertical edges (Sobel x)"])
    with pytest.raises(ValueError, match="3 rows of 3 numbers, got rows of lengths \\[2, 3, 3\\]"):
        data.parse_kernel("1 0; 2 0 -2; 1 0 -1")
    with pytest.raises(ValueError, match="expected numbers"):
        data.parse_kernel("a b c; 1 2 3; 4 5 6")
    img = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(data.apply_kernel(img, data.KERNELS["identity"]), img)
    axes = plots.draw_kernel_output(img, data.KERNELS["identity"])
    np.testing.assert_array_equal(axes[1].images[0].get_array(), img)
    panel = widgets.kernel_explorer(img)
    assert len(panel.children) == 2
    preset, text = panel.children[0].children
    preset.value = "sharpen"                          # redraw: must not raise
    assert text.value == "0 -1 0; -1 5 -1; 0 -1 0"
    text.value = "1 0; 2 0 -2; 1 0 -1"                # a bad kernel is printed, not raised


def test_lstm_stepper_frames_and_errors():
    import nnlib

    rng = np.random.default_rng(0)
    lstm = nnlib.LSTM(2, 5, rng=rng)
    x = rng.standard_normal((1, 9, 2))
    lstm(x)
    trace = {k: v[0] for k, v in lstm.trace.items()}
    marks = np.zeros(9, bool)
    marks[[2, 6]] = True
    axes = plots.draw_lstm_step(x[0, :, 0], trace, 4, marks)
    assert "step t = 5 of 9" in axes[0].get_title()
    html = animations.lstm_animation(x[0, :, 0], trace, marks, every=3).data
    assert html.count("data:image/png;base64") == 4 and "https://" not in html  # t=1,4,7,9
    panel = widgets.lstm_stepper(x[0, :, 0], trace, marks)
    assert panel.children[0].max == 9
    panel.children[0].value = 3                       # redraw: must not raise
    with pytest.raises(ValueError, match=r"0 <= t < 9, got 9"):
        plots.draw_lstm_step(x[0, :, 0], trace, 9)
    with pytest.raises(ValueError, match=r"trace\['c'\] of shape \(8, H\), got \(9, 5\)"):
        animations.lstm_animation(x[0, :8, 0], trace)
    with pytest.raises(ValueError, match=r"missing \['f'\]"):
        widgets.lstm_stepper(x[0, :, 0], {k: v for k, v in trace.items() if k != "f"})


def test_latent_explorer_and_its_static_twin():
    import matplotlib.pyplot as plt

    decoder = models.mlp(2, 64, hidden=(8,), rng=np.random.default_rng(0))

    def decode(z):
        return 1 / (1 + np.exp(-decoder(z)))

    codes = np.random.default_rng(1).standard_normal((30, 2))
    labels = np.arange(30) % 10
    panel = widgets.latent_explorer(decode, codes, labels, z_range=(-2, 2))
    assert [c.description for c in panel.children[0].children] == ["z1", "z2"]
    panel.children[0].children[1].value = 1.0         # redraw: must not raise
    axes = plots.draw_latent_point(decode, codes, labels, (0.5, -1.0), (-2, 2))
    assert axes[1].get_title() == "decoded at (0.50, -1.00)"
    assert axes[1].images[0].get_array().shape == (8, 8)
    ax = plots.latent_manifold(decode, (-2, 2), n=5)
    assert ax.images[0].get_array().shape == (40, 40)
    plt.close("all")
    with pytest.raises(ValueError, match=r"codes of shape \(N, 2\), got \(30, 3\)"):
        widgets.latent_explorer(decode, np.zeros((30, 3)), labels)
    with pytest.raises(ValueError, match=r"decode to return \(25, 16\), got \(25, 64\)"):
        plots.latent_manifold(decode, n=5, image_shape=(4, 4))


def test_gridworld_explorer_redraws_on_every_slider():
    panel = widgets.gridworld_explorer(["...G", ".#.X", "S..."])
    sliders = panel.children[0].children
    assert [s.description for s in sliders] == ["gamma", "step reward", "slip"]
    sliders[1].value = -1.5                           # redraw: must not raise
    with pytest.raises(ValueError, match="exactly one start"):
        widgets.gridworld_explorer(["..G"])
