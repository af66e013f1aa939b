"""The live ipywidgets panels of the chapters: the network playground, the
kernel explorer, the LSTM stepper, the latent explorer and the gridworld
explorer.

Each panel only wires controls to a figure of ``nnlib.viz.plots`` (with
``ipywidgets.interactive_output`` where a control redraws it); the work is
done elsewhere (``nnlib.playground.train_toy``, ``nnlib.data.apply_kernel``,
``nnlib.rl.value_iteration``). Each has a static twin for the HTML book, in
``nnlib.viz.animations`` or drawn by ``nnlib.viz.plots``.
"""
from __future__ import annotations

import numpy as np

from .. import data, models
from ..playground import train_toy
from .plots import (_check_trace, draw_kernel_output, draw_latent_point, draw_lstm_step,
                    draw_toy_run, plot_gridworld)

__all__ = ["playground", "kernel_explorer", "lstm_stepper", "latent_explorer",
           "gridworld_explorer"]


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


def kernel_explorer(image: np.ndarray):
    """Live panel: pick a preset or type a 3x3 kernel, see it applied to
    ``image`` (``nnlib.viz.plots.draw_kernel_output``)."""
    import ipywidgets as w

    preset = w.Dropdown(options=list(data.KERNELS), description="preset")
    text = w.Textarea(value="0 0 0; 0 1 0; 0 0 0", description="kernel",
                      layout=w.Layout(width="260px", height="70px"))

    def show(kernel_text):
        try:
            k = data.parse_kernel(kernel_text)
        except ValueError as e:
            print(e)
            return
        draw_kernel_output(image, k)

    def use_preset(change):
        text.value = "; ".join(" ".join(f"{v:.3g}" for v in row)
                               for row in data.KERNELS[preset.value])

    preset.observe(use_preset, names="value")
    use_preset(None)
    out = w.interactive_output(show, {"kernel_text": text})
    return w.VBox([w.HBox([preset, text]), out])


def lstm_stepper(inputs, trace, marks=None):
    """Live panel: a slider over time steps redraws
    ``nnlib.viz.plots.draw_lstm_step``."""
    import ipywidgets as w

    inputs, marks = _check_trace(inputs, trace, marks)
    slider = w.IntSlider(value=len(inputs) - 1, min=1, max=len(inputs), description="step t",
                         continuous_update=False)
    out = w.interactive_output(lambda t: draw_lstm_step(inputs, trace, t - 1, marks),
                               {"t": slider})
    return w.VBox([slider, out])


def latent_explorer(decode, codes, labels, z_range=(-3.0, 3.0), image_shape=(8, 8)):
    """Live panel: two sliders choose a point ``(z_1, z_2)`` of a 2-D latent
    space; the left plot marks it among the training codes (coloured by label),
    the right one shows ``decode`` of that point as an image
    (``nnlib.viz.plots.draw_latent_point``). The static twin is
    ``nnlib.viz.plots.latent_manifold``.
    """
    import ipywidgets as w

    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"latent_explorer: expected codes of shape (N, 2), got {codes.shape}")
    lo, hi = z_range
    sliders = [w.FloatSlider(value=0.0, min=lo, max=hi, step=(hi - lo) / 60,
                             description=f"z{i + 1}", continuous_update=True)
               for i in range(2)]

    def show(z1, z2):
        draw_latent_point(decode, codes, labels, (z1, z2), z_range, image_shape)

    out = w.interactive_output(show, {"z1": sliders[0], "z2": sliders[1]})
    return w.VBox([w.HBox(sliders), out])


def gridworld_explorer(rows, gamma: float = 0.99, step_reward: float = -0.04,
                       slip: float = 0.2):
    """Live panel: sliders for the discount ``gamma``, the reward of every step
    and the probability of slipping sideways; each change rebuilds the
    ``nnlib.rl.GridWorld`` given by ``rows``, runs value iteration and draws the
    optimal values and policy. The static twin is a grid of
    ``nnlib.viz.plots.plot_gridworld`` panels."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from ..rl import GridWorld, greedy_policy, value_iteration

    GridWorld(rows)                      # reject a bad layout before building sliders
    g = w.FloatSlider(value=gamma, min=0.5, max=0.99, step=0.01, description="gamma")
    r = w.FloatSlider(value=step_reward, min=-2.0, max=0.1, step=0.01,
                      description="step reward")
    p = w.FloatSlider(value=slip, min=0.0, max=0.8, step=0.05, description="slip")

    def show(gamma, step_reward, slip):
        env = GridWorld(rows, step_reward=step_reward, slip=slip)
        V, Q, _ = value_iteration(env, gamma=gamma)
        fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
        plot_gridworld(env, V, greedy_policy(Q), ax=ax,
                       title=f"gamma {gamma:.2f}, step reward {step_reward:+.2f}, "
                             f"slip {slip:.2f}")

    out = w.interactive_output(show, {"gamma": g, "step_reward": r, "slip": p})
    return w.VBox([w.HBox([g, r, p]), out])
