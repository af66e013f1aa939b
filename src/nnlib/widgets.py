"""The network playground: train a small MLP on a toy 2-D set and watch the
decision boundary and the loss.

``playground()`` is the live ipywidgets panel. ``train_toy`` does the work and
keeps snapshots of the weights, from which ``playground_animation`` renders the
static twin for the HTML book (no kernel needed, nothing from the network).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import data, models, optim
from .losses import CrossEntropyLoss
from .train import DivergenceError, accuracy, fit, predict

__all__ = ["ToyRun", "train_toy", "draw_toy_run", "playground_animation", "playground",
           "KERNELS", "parse_kernel", "apply_kernel", "kernel_explorer",
           "draw_lstm_step", "lstm_animation", "lstm_stepper", "latent_explorer",
           "gridworld_explorer"]


@dataclass
class ToyRun:
    """What ``train_toy`` returns: the data, the model, per-epoch losses and
    accuracies, and ``(epoch, state_dict)`` snapshots; ``error`` holds the
    message if training diverged (the losses then stop at the last good epoch)."""
    X: np.ndarray
    y: np.ndarray
    model: object
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    error: str | None = None
    config: dict = field(default_factory=dict)


def train_toy(dataset: str = "spiral", hidden_layers: int = 2, width: int = 16,
              activation: str = "tanh", lr: float = 0.03, weight_decay: float = 0.0,
              epochs: int = 150, n: int = 300, seed: int = 0,
              snapshot_every: int = 10) -> ToyRun:
    """Train an MLP (Adam, full-batch-ish mini-batches of 50) on a toy set."""
    where = "train_toy"
    if dataset not in data.TOY_SETS:
        raise ValueError(f"{where}: expected dataset in {sorted(data.TOY_SETS)}, got {dataset!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{where}: expected a learning rate > 0, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"{where}: expected weight_decay >= 0, got {weight_decay!r}")
    for name, v, lo in (("hidden_layers", hidden_layers, 0), ("width", width, 1),
                        ("epochs", epochs, 1), ("n", n, 4), ("snapshot_every", snapshot_every, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{where}: expected an integer {name} >= {lo}, got {v!r}")
    X, y = data.make_toy(dataset, n=n, seed=seed)
    rng = np.random.default_rng(seed)
    model = models.mlp(2, int(y.max()) + 1, hidden=(width,) * hidden_layers,
                       activation=activation, rng=rng)
    opt = optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    run = ToyRun(X, y, model, config=dict(dataset=dataset, hidden_layers=hidden_layers,
                                          width=width, activation=activation, lr=lr,
                                          weight_decay=weight_decay))
    run.snapshots.append((0, model.state_dict()))

    def record(epoch, hist):
        run.train_loss.append(hist.train_loss[-1])
        run.train_acc.append(hist.train_acc[-1])
        if epoch % snapshot_every == 0 or epoch == epochs:
            run.snapshots.append((epoch, model.state_dict()))

    try:
        fit(model, CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=50, rng=rng,
            progress=False, callback=record)
    except DivergenceError as e:
        run.error = str(e)
    return run


def draw_toy_run(run: ToyRun, upto: int | None = None, axes=None, resolution: int = 150):
    """Decision regions of the snapshot taken at or before epoch ``upto`` (left)
    and the training loss up to then (right)."""
    import matplotlib.pyplot as plt

    from .plots import plot_decision_regions

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    ax_regions, ax_loss = axes
    ax_regions.clear()
    ax_loss.clear()
    epoch, state = run.snapshots[-1]
    if upto is not None:
        epoch, state = max((s for s in run.snapshots if s[0] <= upto), key=lambda s: s[0])
    run.model.load_state_dict(state)
    plot_decision_regions(lambda P: predict(run.model, P), run.X, run.y, ax=ax_regions,
                          resolution=resolution)
    acc = accuracy(run.model, run.X, run.y)
    ax_regions.set_title(f"{run.config['dataset']}: epoch {epoch}, accuracy {acc:.2f}")
    ax_regions.set_xlabel("feature $x_1$")
    ax_regions.set_ylabel("feature $x_2$")
    epochs = np.arange(1, len(run.train_loss) + 1)
    ax_loss.plot(epochs, run.train_loss, color="0.8", lw=1)
    ax_loss.plot(epochs[:epoch], run.train_loss[:epoch], color="#0072B2", lw=2)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy, log scale)")
    ax_loss.set_title("loss so far (grey: the whole run)")
    if run.error:
        ax_loss.text(0.5, 0.5, "diverged:\nsee the message", transform=ax_loss.transAxes,
                     ha="center", color="#D55E00")
    return axes


def playground_animation(run: ToyRun, fps: float = 4):
    """The static twin of the playground: every snapshot of ``run`` as one frame."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    from .plots import animation_html

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=72, layout="constrained")
    epochs = [e for e, _ in run.snapshots]
    anim = FuncAnimation(fig, lambda i: draw_toy_run(run, epochs[i], axes, resolution=80),
                         frames=len(epochs))
    html = animation_html(anim, fps=fps)
    plt.close(fig)
    return html


def playground(epochs: int = 150):
    """The live panel: choose a data set and a network, press Train."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    style = {"description_width": "120px"}
    controls = dict(
        dataset=w.Dropdown(options=sorted(data.TOY_SETS), value="spiral",
                           description="data set", style=style),
        hidden_layers=w.IntSlider(2, 0, 4, description="hidden layers", style=style),
        width=w.IntSlider(16, 1, 64, description="width", style=style),
        activation=w.Dropdown(options=sorted(models.ACTIVATIONS), value="tanh",
                              description="activation", style=style),
        lr=w.FloatLogSlider(0.03, base=10, min=-4, max=1, description="learning rate",
                            style=style),
        weight_decay=w.FloatLogSlider(1e-6, base=10, min=-6, max=-1,
                                      description="weight decay", style=style),
    )
    button = w.Button(description="Train", button_style="primary")
    out = w.Output()

    def train(_=None):
        button.disabled = True
        with out:
            out.clear_output(wait=True)
            cfg = {k: c.value for k, c in controls.items()}
            if cfg["weight_decay"] <= 1e-6:
                cfg["weight_decay"] = 0.0
            run = train_toy(epochs=epochs, **cfg)
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
            draw_toy_run(run, axes=axes)
            fig.tight_layout()
            plt.show()
            if run.error:
                print(run.error)
        button.disabled = False

    button.on_click(train)
    return w.VBox([w.HBox([w.VBox(list(controls.values())[:3]),
                           w.VBox(list(controls.values())[3:])]), button, out])


#: 3x3 kernels the convolution chapter starts from
KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "vertical edges (Sobel x)": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "horizontal edges (Sobel y)": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "blur (box)": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}


def parse_kernel(text: str) -> np.ndarray:
    """'1 0 -1; 2 0 -2; 1 0 -1' (rows separated by ';' or new lines) -> 3x3 array."""
    rows = [r.replace(",", " ").split() for r in text.replace("\n", ";").split(";") if r.strip()]
    try:
        values = [[float(v) for v in r] for r in rows]
    except ValueError:
        raise ValueError(f"parse_kernel: expected numbers, got {text!r}") from None
    if [len(r) for r in values] != [3, 3, 3]:
        raise ValueError(f"parse_kernel: expected 3 rows of 3 numbers, got rows of lengths "
                         f"{[len(r) for r in rows]}")
    return np.array(values)


def apply_kernel(image: np.ndarray, kernel) -> np.ndarray:
    """One grey image (H, W) convolved with a 3x3 kernel, zero padding 1 (same size)."""
    from .layers.conv import conv2d_forward

    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    y, _ = conv2d_forward(image[None, None], kernel[None, None], padding=1)
    return y[0, 0]


def kernel_explorer(image: np.ndarray):
    """Live panel: pick a preset or type a 3x3 kernel, see it applied to ``image``."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    preset = w.Dropdown(options=list(KERNELS), description="preset")
    text = w.Textarea(value="0 0 0; 0 1 0; 0 0 0", description="kernel",
                      layout=w.Layout(width="260px", height="70px"))
    out = w.Output()

    def show(_=None):
        with out:
            out.clear_output(wait=True)
            try:
                k = parse_kernel(text.value)
            except ValueError as e:
                print(e)
                return
            fig, axes = plt.subplots(1, 2, figsize=(6, 3))
            axes[0].imshow(image, cmap="gray_r")
            axes[0].set_title("input")
            axes[1].imshow(apply_kernel(image, k), cmap="RdBu_r")
            axes[1].set_title("output (red > 0 > blue)")
            for ax in axes:
                ax.axis("off")
            plt.show()

    def use_preset(change):
        text.value = "; ".join(" ".join(f"{v:.3g}" for v in row) for row in KERNELS[preset.value])

    preset.observe(use_preset, names="value")
    text.observe(show, names="value")
    use_preset(None)
    show()
    return w.VBox([w.HBox([preset, text]), out])


def _check_trace(inputs, trace, marks):
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 1:
        raise ValueError(f"lstm stepper: expected inputs of shape (T,), got {inputs.shape}")
    missing = sorted(set("cif") - set(trace))
    if missing:
        raise ValueError(f"lstm stepper: expected a trace with keys c, i, f (LSTM.trace "
                         f"for one sequence), missing {missing}")
    for k in "cif":
        if np.ndim(trace[k]) != 2 or len(trace[k]) != len(inputs):
            raise ValueError(f"lstm stepper: expected trace[{k!r}] of shape "
                             f"({len(inputs)}, H), got {np.shape(trace[k])}")
    marks = np.zeros(len(inputs), bool) if marks is None else np.asarray(marks, bool)
    return inputs, marks


def draw_lstm_step(inputs, trace, t: int, marks=None, axes=None):
    """One frame of the LSTM stepper: the input sequence (marked steps in
    orange) with a cursor at step ``t``, and, for steps 1..t, the cell state
    and the input and forget gates of every unit (rows) as heat maps.

    ``trace`` is ``LSTM.trace`` for one sequence: arrays of shape (T, H).
    """
    import matplotlib.pyplot as plt

    inputs, marks = _check_trace(inputs, trace, marks)
    t_len = len(inputs)
    if not 0 <= t < t_len:
        raise ValueError(f"draw_lstm_step: expected 0 <= t < {t_len}, got {t}")
    if axes is None:
        _, axes = plt.subplots(4, 1, figsize=(8, 7), sharex=True, layout="constrained")
    for ax in axes:
        ax.clear()
    steps = np.arange(1, t_len + 1)
    colours = np.where(marks, "#E69F00", "0.75")
    axes[0].bar(steps, inputs, color=colours, width=0.8)
    axes[0].set_ylabel("input value")
    axes[0].set_title(f"step t = {t + 1} of {t_len}"
                      + ("  (a marked step)" if marks[t] else ""))
    panels = [("c", "cell state $c_t$", "RdBu_r", None),
              ("i", "input gate $i_t$", "viridis", (0, 1)),
              ("f", "forget gate $f_t$", "viridis", (0, 1))]
    for ax, (key, label, cmap, lims) in zip(axes[1:], panels):
        shown = np.full(np.shape(trace[key]), np.nan)
        shown[:t + 1] = trace[key][:t + 1]
        if lims is None:
            v = max(float(np.abs(trace[key]).max()), 1e-12)
            lims = (-v, v)
        ax.imshow(shown.T, aspect="auto", cmap=cmap, vmin=lims[0], vmax=lims[1],
                  extent=(0.5, t_len + 0.5, shown.shape[1] - 0.5, -0.5),
                  interpolation="nearest")
        ax.set_ylabel(f"{label}\nunit")
    for ax in axes:
        ax.axvline(t + 1, color="#D55E00", lw=1)
    axes[-1].set_xlabel("time step t")
    return axes


def lstm_animation(inputs, trace, marks=None, every: int = 2, fps: float = 4):
    """The static twin of ``lstm_stepper``: every ``every``-th step as a frame."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    from .plots import animation_html

    inputs, marks = _check_trace(inputs, trace, marks)
    frames = list(range(0, len(inputs), every))
    if frames[-1] != len(inputs) - 1:
        frames.append(len(inputs) - 1)
    fig, axes = plt.subplots(4, 1, figsize=(7, 6), dpi=60, sharex=True, layout="constrained")
    anim = FuncAnimation(fig, lambda k: draw_lstm_step(inputs, trace, frames[k], marks, axes),
                         frames=len(frames))
    html = animation_html(anim, fps=fps)
    plt.close(fig)
    return html


def lstm_stepper(inputs, trace, marks=None):
    """Live panel: a slider over time steps redraws ``draw_lstm_step``."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    inputs, marks = _check_trace(inputs, trace, marks)
    slider = w.IntSlider(value=len(inputs) - 1, min=1, max=len(inputs), description="step t",
                         continuous_update=False)
    out = w.Output()

    def show(_=None):
        with out:
            out.clear_output(wait=True)
            draw_lstm_step(inputs, trace, slider.value - 1, marks)
            plt.show()

    slider.observe(show, names="value")
    show()
    return w.VBox([slider, out])


def latent_explorer(decode, codes, labels, z_range=(-3.0, 3.0), image_shape=(8, 8)):
    """Live panel: two sliders choose a point ``(z_1, z_2)`` of a 2-D latent
    space; the left plot marks it among the training codes (coloured by label),
    the right one shows ``decode`` of that point as an image. The static twin is
    ``nnlib.plots.latent_manifold``.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from .plots import plot_codes

    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"latent_explorer: expected codes of shape (N, 2), got {codes.shape}")
    lo, hi = z_range
    sliders = [w.FloatSlider(value=0.0, min=lo, max=hi, step=(hi - lo) / 60,
                             description=f"z{i + 1}", continuous_update=True)
               for i in range(2)]
    out = w.Output()

    def show(_=None):
        z = np.array([[sliders[0].value, sliders[1].value]])
        with out:
            out.clear_output(wait=True)
            fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
            plot_codes(codes, labels, ax=a, s=4)
            a.plot(*z[0], "k+", ms=18, mew=2.5)
            a.set_xlim(lo, hi)
            a.set_ylim(lo, hi)
            a.set_title("codes of the training digits")
            b.imshow(np.asarray(decode(z)).reshape(image_shape), cmap="gray_r", vmin=0,
                     vmax=1)
            b.set_title(f"decoded at ({z[0, 0]:.2f}, {z[0, 1]:.2f})")
            b.axis("off")
            plt.show()

    for sl in sliders:
        sl.observe(show, names="value")
    show()
    return w.VBox([w.HBox(sliders), out])


def gridworld_explorer(rows, gamma: float = 0.99, step_reward: float = -0.04,
                       slip: float = 0.2):
    """Live panel: sliders for the discount ``gamma``, the reward of every step
    and the probability of slipping sideways; each change rebuilds the
    ``nnlib.rl.GridWorld`` given by ``rows``, runs value iteration and draws the
    optimal values and policy. The static twin is a grid of
    ``nnlib.plots.plot_gridworld`` panels."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from .plots import plot_gridworld
    from .rl import GridWorld, greedy_policy, value_iteration

    GridWorld(rows)                      # reject a bad layout before building sliders
    g = w.FloatSlider(value=gamma, min=0.5, max=0.99, step=0.01, description="gamma")
    r = w.FloatSlider(value=step_reward, min=-2.0, max=0.1, step=0.01,
                      description="step reward")
    p = w.FloatSlider(value=slip, min=0.0, max=0.8, step=0.05, description="slip")
    out = w.Output()

    def show(_=None):
        env = GridWorld(rows, step_reward=r.value, slip=p.value)
        V, Q, _ = value_iteration(env, gamma=g.value)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
            plot_gridworld(env, V, greedy_policy(Q), ax=ax,
                           title=f"gamma {g.value:.2f}, step reward {r.value:+.2f}, "
                                 f"slip {p.value:.2f}")
            plt.show()

    for sl in (g, r, p):
        sl.observe(show, names="value")
    show()
    return w.VBox([w.HBox([g, r, p]), out])
