"""Animations: a matplotlib animation as self-contained HTML (the static
twin of a live widget, with nothing loaded from the network), an animation
of image frames, and the static twins of the playground and the LSTM
stepper."""
from __future__ import annotations

import numpy as np

from ..playground import ToyRun
from .plots import _check_trace, draw_lstm_step, draw_toy_run

__all__ = ["animation_html", "frames_animation", "playground_animation", "lstm_animation"]


# matplotlib's to_jshtml draws its buttons with Font Awesome 4 icons from a CDN;
# plain text symbols (with U+FE0E: not as emoji) work offline and everywhere.
_ANIMATION_ICONS = {  # all in DejaVu Sans and every common system font
    "fa-minus": "\u2212", "fa-fast-backward": "\u21e4", "fa-step-backward": "\u25c1",
    "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "\u2016", "fa-play": "\u25b6",
    "fa-step-forward": "\u25b7", "fa-fast-forward": "\u21e5", "fa-plus": "+",
}


def animation_html(anim, fps: float | None = None, default_mode: str = "loop",
                   alt: str | None = None):
    """A matplotlib animation as self-contained HTML (the static twin of a widget).

    Same as ``anim.to_jshtml`` but with nothing loaded from the network: the
    Font Awesome stylesheet link is dropped and the button icons become text.
    ``alt`` is the frames' alternative text for readers who cannot see them
    (what the animation shows and its take-away; the book gives every
    animation one); the frame slider is labelled for screen readers too.
    Returns an ``IPython.display.HTML`` object.
    """
    import html as html_lib
    import re

    from IPython.display import HTML

    if alt is not None and (not isinstance(alt, str) or not alt.strip()):
        raise ValueError(f"animation_html: expected alt to be a non-empty string, got {alt!r}")
    html = anim.to_jshtml(fps=fps, default_mode=default_mode)
    text = "" if alt is None else f' alt="{html_lib.escape(alt.strip(), quote=True)}"'
    html, n_img = re.subn(r'<img id="(_anim_img\w+)">',
                          lambda m: f'<img id="{m.group(1)}"{text}>', html)
    html, n_slider = re.subn(r'<input id="(_anim_slider\w+)" type="range"',
                             r'<input id="\1" type="range" aria-label="Animation frame"',
                             html)
    if (n_img, n_slider) != (1, 1):
        raise RuntimeError("animation_html: matplotlib's animation template changed; "
                           "update the alt text and slider label in nnlib.viz.animations")
    html, n_links = re.subn(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">',
                            "", html)

    def icon(m):
        return _ANIMATION_ICONS.get(m.group(1).replace("fa ", "", 1).strip(), m.group(0))

    html = re.sub(r'<i class="(fa [^"]*)"></i>', icon, html)
    if re.search(r"https?://", html.split("<script", 1)[0]) or 'class="fa ' in html:
        raise RuntimeError("animation_html: matplotlib's animation template changed; "
                           "update nnlib.viz.animations._ANIMATION_ICONS")
    return HTML(html)


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


def playground_animation(run: ToyRun, fps: float = 4, alt: str | None = None):
    """The static twin of the playground: every snapshot of ``run`` as one frame
    (``alt``: the frames' alternative text, see ``animation_html``)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=72, layout="constrained")
    epochs = [e for e, _ in run.snapshots]
    anim = FuncAnimation(fig, lambda i: draw_toy_run(run, epochs[i], axes, resolution=80),
                         frames=len(epochs))
    html = animation_html(anim, fps=fps, alt=alt)
    plt.close(fig)
    return html


def lstm_animation(inputs, trace, marks=None, every: int = 2, fps: float = 4,
                   alt: str | None = None):
    """The static twin of ``lstm_stepper``: every ``every``-th step as a frame
    (``alt``: the frames' alternative text, see ``animation_html``)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    inputs, marks = _check_trace(inputs, trace, marks)
    frames = list(range(0, len(inputs), every))
    if frames[-1] != len(inputs) - 1:
        frames.append(len(inputs) - 1)
    fig, axes = plt.subplots(4, 1, figsize=(7, 6), dpi=60, sharex=True, layout="constrained")
    anim = FuncAnimation(fig, lambda k: draw_lstm_step(inputs, trace, frames[k], marks, axes),
                         frames=len(frames))
    html = animation_html(anim, fps=fps, alt=alt)
    plt.close(fig)
    return html
