"""Attention maps of a language model: one head's weights over a text as a
heat map (``draw_attention``), a grid of every layer's and head's maps, the
static figure for the HTML book (``attention_grid``), and its live twin, an
ipywidgets explorer that picks a layer, a head and a query position
(``attention_explorer``).

The maps come from ``nnlib.transformer_lm.CharTransformer.attention_maps``:
``(L, H, T, T)`` for one text (query positions down the rows, key positions
across, 0 above the diagonal under a causal mask).
"""
from __future__ import annotations

import numpy as np

__all__ = ["draw_attention", "attention_grid", "attention_explorer"]


def _check_maps(maps, chars, where):
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"{where}: expected maps of shape (L, H, T, T), got {maps.shape}")
    if len(chars) != maps.shape[-1]:
        raise ValueError(f"{where}: expected {maps.shape[-1]} characters (one per "
                         f"position), got {len(chars)}")
    return maps, list(chars)


def _shown(c):
    return {"\n": "⏎", " ": "␣", "\t": "⇥"}.get(c, c)


def draw_attention(weights, chars, query=None, ax=None, title=None, ticks=True):
    """One head's attention weights ``(T, T)`` as a heat map, queries down
    the rows and keys across, the characters of the text as tick labels (a
    space shown as ␣, a newline as ⏎). With ``query`` (0-based), that row
    is outlined and its largest weight marked with a cross. Returns the
    image (for a colour bar)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    weights = np.asarray(weights, dtype=np.float64)
    T = weights.shape[0]
    if weights.shape != (T, T) or len(chars) != T:
        raise ValueError(f"draw_attention: expected weights of shape (T, T) and T "
                         f"characters, got {weights.shape} and {len(chars)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    if ticks:
        labels = [_shown(c) for c in chars]
        ax.set_xticks(range(T), labels, fontsize=7, family="monospace")
        ax.set_yticks(range(T), labels, fontsize=7, family="monospace")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if query is not None:
        if not 0 <= query < T:
            raise ValueError(f"draw_attention: expected 0 <= query < {T}, got {query}")
        ax.add_patch(Rectangle((-0.5, query - 0.5), T, 1, fill=False, ec="#E69F00", lw=2))
        ax.plot(int(np.argmax(weights[query])), query, "x", color="#D55E00", ms=9,
                mew=2.5)
    if title:
        ax.set_title(title)
    return im


def attention_grid(maps, chars, fig=None, size: float = 2.2, suptitle=None):
    """The static twin: a grid of heat maps, one row per layer and one column
    per head, of ``maps: (L, H, T, T)`` over the characters ``chars`` (T of
    them). Each panel is titled "layer l, head h"; the outer panels carry
    the axis labels. Returns the figure."""
    import matplotlib.pyplot as plt

    maps, chars = _check_maps(maps, chars, "attention_grid")
    L, H, T, _ = maps.shape
    if fig is None:
        fig = plt.figure(figsize=(size * H + 0.8, size * L + 0.6), layout="constrained")
    axes = np.array(fig.subplots(L, H, squeeze=False))
    for l in range(L):
        for h in range(H):
            ax = axes[l, h]
            im = draw_attention(maps[l, h], chars, ax=ax, ticks=False,
                                title=f"layer {l + 1}, head {h + 1}")
            if l == L - 1:
                ax.set_xlabel("key position j")
            if h == 0:
                ax.set_ylabel("query position i")
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def attention_explorer(maps, chars):
    """Live panel: choose a layer, a head and a query position; the left plot
    is that head's map with the query's row outlined, the right one the
    query's weights over the characters it may see, as bars. The static
    twin is ``attention_grid``. ``maps: (L, H, T, T)``, ``chars``: T
    characters."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    maps, chars = _check_maps(maps, chars, "attention_explorer")
    L, H, T, _ = maps.shape
    layer = w.Dropdown(options=[(f"layer {l + 1}", l) for l in range(L)], value=0,
                       description="layer")
    head = w.Dropdown(options=[(f"head {h + 1}", h) for h in range(H)], value=0,
                      description="head")
    query = w.IntSlider(value=T - 1, min=0, max=T - 1, description="query i",
                        continuous_update=False)

    def show(layer, head, query):
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained",
                                   gridspec_kw={"width_ratios": [1, 1.4]})
        draw_attention(maps[layer, head], chars, query=query, ax=a, ticks=False,
                       title=f"layer {layer + 1}, head {head + 1}")
        a.set_xlabel("key position j")
        a.set_ylabel("query position i")
        seen = maps[layer, head, query, :query + 1]
        b.bar(range(query + 1), seen, color="#0072B2")
        b.set_xticks(range(query + 1), [_shown(c) for c in chars[:query + 1]],
                     fontsize=7, family="monospace")
        b.set_ylim(0, 1)
        b.set_xlabel("key character (the text up to the query)")
        b.set_ylabel("attention weight")
        b.set_title(f"query {query + 1}: {_shown(chars[query])!r} looks at")
        plt.show()

    out = w.interactive_output(show, {"layer": layer, "head": head, "query": query})
    return w.VBox([w.HBox([layer, head, query]), out])
