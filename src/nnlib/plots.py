"""Figures the chapters share: a colour-blind-safe palette, decision regions,
image grids and training curves. Each function draws on an Axes it is given (or
a new one) and returns it, so chapters add their own titles and captions."""
from __future__ import annotations

import numpy as np

__all__ = ["OKABE_ITO", "use_book_style", "plot_decision_regions", "show_images",
           "plot_history", "animation_html", "latent_manifold", "plot_codes", "image_rows",
           "plot_gridworld", "frames_animation"]

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


# matplotlib's to_jshtml draws its buttons with Font Awesome 4 icons from a CDN;
# plain text symbols (with U+FE0E: not as emoji) work offline and everywhere.
_ANIMATION_ICONS = {  # all in DejaVu Sans and every common system font
    "fa-minus": "\u2212", "fa-fast-backward": "\u21e4", "fa-step-backward": "\u25c1",
    "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "\u2016", "fa-play": "\u25b6",
    "fa-step-forward": "\u25b7", "fa-fast-forward": "\u21e5", "fa-plus": "+",
}


def animation_html(anim, fps: float | None = None, default_mode: str = "loop"):
    """A matplotlib animation as self-contained HTML (the static twin of a widget).

    Same as ``anim.to_jshtml`` but with nothing loaded from the network: the
    Font Awesome stylesheet link is dropped and the button icons become text.
    Returns an ``IPython.display.HTML`` object.
    """
    import re

    from IPython.display import HTML

    html = anim.to_jshtml(fps=fps, default_mode=default_mode)
    html, n_links = re.subn(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">',
                            "", html)

    def icon(m):
        return _ANIMATION_ICONS.get(m.group(1).replace("fa ", "", 1).strip(), m.group(0))

    html = re.sub(r'<i class="(fa [^"]*)"></i>', icon, html)
    if re.search(r"https?://", html.split("<script", 1)[0]) or 'class="fa ' in html:
        raise RuntimeError("animation_html: matplotlib's animation template changed; "
                           "update nnlib.plots._ANIMATION_ICONS")
    return HTML(html)


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


def frames_animation(frames, titles=None, interval: int = 50, width: float = 4.0):
    """A matplotlib animation of image ``frames`` (``(H, W, 3)`` arrays, such as
    ``nnlib.rl.render_episode`` returns), one ``titles`` entry per frame.
    Returns ``(fig, anim)``; pass ``anim`` to ``animation_html``."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    if not len(frames):
        raise ValueError("frames_animation: expected at least one frame, got none")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"frames_animation: expected one title per frame "
                         f"({len(frames)}), got {len(titles)}")
    h, w = np.shape(frames[0])[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w + 0.35), layout="constrained")
    im = ax.imshow(frames[0])
    ax.axis("off")
    label = ax.set_title(titles[0] if titles else "", fontsize=10)

    def draw(i):
        im.set_data(frames[i])
        if titles:
            label.set_text(titles[i])
        return im, label

    anim = FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False)
    plt.close(fig)
    return fig, anim
