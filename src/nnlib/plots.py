"""Figures the chapters share: a colour-blind-safe palette, decision regions,
image grids and training curves. Each function draws on an Axes it is given (or
a new one) and returns it, so chapters add their own titles and captions."""
from __future__ import annotations

import numpy as np

__all__ = ["OKABE_ITO", "use_book_style", "plot_decision_regions", "show_images",
           "plot_history", "animation_html"]

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
