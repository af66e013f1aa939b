"""Figures the chapters share: a colour-blind-safe palette, decision regions,
image grids, training curves, gridworlds and latent spaces; and the figures
the live panels of ``nnlib.viz.widgets`` redraw (the playground's run, a step
of the LSTM, a kernel's output, a point of a latent space). Each function
draws on an Axes it is given (or a new one) and returns it, so chapters add
their own titles and captions."""
from __future__ import annotations

import numpy as np

from ..playground import ToyRun

__all__ = ["OKABE_ITO", "use_book_style", "plot_decision_regions", "show_images",
           "plot_history", "latent_manifold", "plot_codes", "image_rows", "plot_gridworld",
           "draw_toy_run", "draw_lstm_step", "draw_kernel_output", "draw_latent_point"]


#: Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
             "#F0E442", "#000000"]


def use_book_style() -> None:
    """Matplotlib settings of the book: the palette, readable fonts at 600 px."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update({
        "axes.prop_cycle": cycler(color=OKABE_ITO),
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (6.0, 4.0),
        "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
        "axes.spines.top": False, "axes.spines.right": False,
        "animation.embed_limit": 40.0, "image.cmap": "gray_r",
    })


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots()
    return ax


def plot_decision_regions(predict, X, y, ax=None, resolution: int = 200, pad: float = 0.3):
    """Shade the plane by ``predict(points) -> class`` and scatter ``(X, y)`` on top."""
    from matplotlib.colors import ListedColormap

    ax = _axes(ax)
    k = int(max(y.max() + 1, 2))
    cmap = ListedColormap(OKABE_ITO[:k])
    (x0, y0), (x1, y1) = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    zz = np.asarray(predict(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax.contourf(gx, gy, zz, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.25)
    for c in range(k):
        m = y == c
        ax.scatter(X[m, 0], X[m, 1], s=14, color=OKABE_ITO[c], edgecolor="white",
                   linewidth=0.4, label=f"class {c}")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return ax


def show_images(images, labels=None, ncols: int = 10, size: float = 0.8, fig=None):
    """A grid of grey images (N, H, W) or (N, 1, H, W), with optional titles."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig = fig or plt.figure(figsize=(ncols * size, nrows * (size + 0.25)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r", interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=9, pad=2)
    return fig


def plot_history(history, ax=None):
    """Training loss (left axis) and accuracies (right axis) per epoch."""
    ax = _axes(ax)
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, color=OKABE_ITO[0], label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean cross-entropy loss")
    if history.train_acc:
        ax2 = ax.twinx()
        ax2.plot(epochs, history.train_acc, color=OKABE_ITO[1], ls="--",
                 label="training accuracy")
        if history.val_acc:
            ax2.plot(epochs, history.val_acc, color=OKABE_ITO[2], ls=":",
                     label="validation accuracy")
        ax2.set_ylabel("accuracy")
        ax2.set_ylim(0, 1.02)
        ax2.spines["right"].set_visible(True)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=9)
    return ax


def latent_manifold(decode, z_range=(-3.0, 3.0), n: int = 15, image_shape=(8, 8), ax=None):
    """Decode an ``n x n`` grid of points of a 2-D latent space and draw the
    images as one mosaic, placed where their codes lie (``z_1`` to the right,
    ``z_2`` up). ``decode``: ``(M, 2) -> (M, H*W)``; ``z_range``: the same
    ``(low, high)`` for both axes, or ``((x_low, x_high), (y_low, y_high))``.
    Returns the Axes.
    """
    ax = _axes(ax)
    (x0, x1), (y0, y1) = (z_range, z_range) if np.ndim(z_range) == 1 else z_range
    h, w = image_shape
    zx, zy = np.linspace(x0, x1, n), np.linspace(y1, y0, n)    # top row = largest z_2
    grid = np.array([[a, b] for b in zy for a in zx])
    images = np.asarray(decode(grid), dtype=np.float64)
    if images.shape != (n * n, h * w):
        raise ValueError(f"latent_manifold: expected decode to return ({n * n}, {h * w}), "
                         f"got {images.shape}")
    mosaic = images.reshape(n, n, h, w).transpose(0, 2, 1, 3).reshape(n * h, n * w)
    dx, dy = (x1 - x0) / (n - 1) / 2, (y1 - y0) / (n - 1) / 2
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest",
              extent=(x0 - dx, x1 + dx, y0 - dy, y1 + dy), aspect="auto")
    ax.set_box_aspect(n * h / (n * w))      # every small image keeps its shape
    ax.set_xlabel("code $z_1$")
    ax.set_ylabel("code $z_2$")
    return ax


def plot_codes(codes, labels, ax=None, s: float = 6):
    """Scatter 2-D codes ``(N, 2)`` coloured by integer label (up to 10 classes,
    the Okabe-Ito colours plus grey and a dark red), with a legend."""
    ax = _axes(ax)
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"plot_codes: expected codes of shape (N, 2), got {codes.shape}")
    colours = OKABE_ITO + ["#999999", "#882255"]
    for k in np.unique(labels):
        sel = np.asarray(labels) == k
        ax.scatter(codes[sel, 0], codes[sel, 1], s=s, color=colours[int(k) % len(colours)],
                   label=str(k), linewidths=0)
    ax.set_xlabel("code $z_1$")
    ax.set_ylabel("code $z_2$")
    ax.legend(markerscale=2.5, fontsize=8, ncol=2, loc="best", handletextpad=0.2)
    return ax


def image_rows(rows, title: str | None = None, size: float = 0.7, shape=None):
    """Rows of grey images with a label at the left of each row: ``rows`` is a
    list of ``(label, images)`` with images ``(n, H, W)`` or ``(n, H*W)``
    (square, or reshaped to ``shape``), values in [0, 1]. Returns the figure."""
    import matplotlib.pyplot as plt

    ncols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False, layout="constrained",
                             figsize=(ncols * size + 0.9, len(rows) * size + 0.4))
    for row, (label, images) in zip(axes, rows):
        images = np.asarray(images, dtype=np.float64)
        if shape is None and images.ndim == 2:
            side = int(round(np.sqrt(images.shape[1])))
            images = images.reshape(len(images), side, side)
        elif shape is not None:
            images = images.reshape(len(images), *shape)
        for j, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(images):
                ax.imshow(images[j], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        row[0].set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig


def plot_gridworld(env, values=None, policy=None, ax=None, title: str | None = None,
                   fmt: str = "{:.2f}"):
    """Draw a ``nnlib.rl.GridWorld`` (or FrozenLake's map): cells coloured by
    ``values`` (one per state), each value written in its cell, the action of
    ``policy`` (one per state) as an arrow; walls grey, goals and pits
    (FrozenLake's holes) labelled."""
    import matplotlib.pyplot as plt

    ax = _axes(ax)
    rows = getattr(env, "rows", None)
    if rows is None:                      # gymnasium's FrozenLake: desc holds bytes
        desc = getattr(getattr(env, "unwrapped", env), "desc", None)
        if desc is None:
            raise TypeError(f"plot_gridworld: expected a GridWorld or FrozenLake, got "
                            f"{type(env).__name__}")
        rows = ["".join(c.decode() for c in r).replace("F", ".").replace("H", "X")
                for r in desc]
    h, w = len(rows), len(rows[0])
    cells = "".join(rows)
    for name, x in (("values", values), ("policy", policy)):
        if x is not None and np.shape(x) != (h * w,):
            raise ValueError(f"plot_gridworld: expected {name} of shape ({h * w},), "
                             f"one per cell, got {np.shape(x)}")
    grid = np.full((h, w), np.nan)
    if values is not None:
        grid = np.asarray(values, dtype=float).reshape(h, w).copy()
        grid[np.array([c in "#" for c in cells]).reshape(h, w)] = np.nan
        lim = np.nanmax(np.abs(grid)) or 1.0
        ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim)
        dark = np.abs(np.nan_to_num(grid)) > 0.6 * lim    # white text on dark cells
    else:
        dark = np.zeros((h, w), bool)
        ax.imshow(np.zeros((h, w)), cmap="Greys", vmin=0, vmax=1)
    arrows = {0: (-0.3, 0), 1: (0, 0.3), 2: (0.3, 0), 3: (0, -0.3)}
    for s, c in enumerate(cells):
        r, col = divmod(s, w)
        if c == "#":
            ax.add_patch(plt.Rectangle((col - 0.5, r - 0.5), 1, 1, color="0.45"))
            continue
        label = {"G": "goal", "X": "pit" if getattr(env, "rows", None) else "hole",
                 "S": "start"}.get(c)
        if label:
            ax.text(col, r - 0.33, label, ha="center", va="center", fontsize=8,
                    color="w" if dark[r, col] else "k")
        if c in "GX":
            continue
        if values is not None:
            ax.text(col, r + 0.33, fmt.format(values[s]), ha="center", va="center",
                    fontsize=8, color="w" if dark[r, col] else "k")
        if policy is not None:
            dx, dy = arrows[int(policy[s])]
            ax.annotate("", xy=(col + dx, r + dy), xytext=(col - dx / 2, r - dy / 2),
                        arrowprops=dict(arrowstyle="-|>", lw=1.5,
                                        color="w" if dark[r, col] else "k"))
    ax.set_xticks(np.arange(w))
    ax.set_yticks(np.arange(h))
    ax.set_xticks(np.arange(w + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(h + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="k", lw=0.5)
    ax.tick_params(which="both", length=0)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if title:
        ax.set_title(title)
    return ax


def draw_toy_run(run: ToyRun, upto: int | None = None, axes=None, resolution: int = 150):
    """Decision regions of the snapshot taken at or before epoch ``upto`` (left)
    and the training loss up to then (right)."""
    import matplotlib.pyplot as plt

    from ..train import accuracy, predict

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


def draw_kernel_output(image, kernel, axes=None):
    """A grey image ``(H, W)`` (left) and its convolution with a 3x3
    ``kernel`` (right, ``nnlib.data.apply_kernel``: red above 0, blue below):
    the figure of the kernel explorer. Returns the two Axes."""
    import matplotlib.pyplot as plt

    from ..data.images import apply_kernel

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(image, cmap="gray_r")
    axes[0].set_title("input")
    axes[1].imshow(apply_kernel(image, kernel), cmap="RdBu_r")
    axes[1].set_title("output (red > 0 > blue)")
    for ax in axes:
        ax.axis("off")
    return axes


def draw_latent_point(decode, codes, labels, z, z_range=(-3.0, 3.0), image_shape=(8, 8),
                      axes=None):
    """A point ``z = (z_1, z_2)`` of a 2-D latent space marked among the
    training ``codes`` ``(N, 2)``, coloured by label (left), and ``decode`` of
    that point as an image (right): the figure of the latent explorer.
    ``decode``: ``(1, 2) -> (1, H*W)``. Returns the two Axes."""
    import matplotlib.pyplot as plt

    lo, hi = z_range
    z = np.asarray(z, dtype=np.float64).reshape(1, 2)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
    a, b = axes
    plot_codes(codes, labels, ax=a, s=4)
    a.plot(*z[0], "k+", ms=18, mew=2.5)
    a.set_xlim(lo, hi)
    a.set_ylim(lo, hi)
    a.set_title("codes of the training digits")
    b.imshow(np.asarray(decode(z)).reshape(image_shape), cmap="gray_r", vmin=0,
             vmax=1)
    b.set_title(f"decoded at ({z[0, 0]:.2f}, {z[0, 1]:.2f})")
    b.axis("off")
    return axes
