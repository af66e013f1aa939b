import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from nnlib.viz import animations, plots  # noqa: E402

pytestmark = pytest.mark.book


def test_animation_html_loads_nothing_from_the_network():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    line, = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    html = animations.animation_html(anim).data
    plt.close(fig)
    assert "font-awesome" not in html and not re.search(r"(href|src)=\"https?://", html)
    assert 'class="fa' not in html and "\u25b6" in html      # the play button is a text symbol
    assert html.count("data:image/png;base64") >= 3          # every frame is embedded


def test_animation_html_carries_alt_text_and_labels_its_slider():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    line, = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=2)
    html = animations.animation_html(anim, alt='A line "tilts" up & down.').data
    bare = animations.animation_html(anim).data
    plt.close(fig)
    img = re.findall(r"<img [^>]*>", html)
    assert len(img) == 1 and 'alt="A line &quot;tilts&quot; up &amp; down."' in img[0]
    assert re.search(r'<input [^>]*type="range" aria-label="Animation frame"', html)
    assert " alt=" not in re.findall(r"<img [^>]*>", bare)[0]   # no alt asked, none made up
    for bad in ("", "  ", 3):
        with pytest.raises(ValueError, match="expected alt to be a non-empty string"):
            animations.animation_html(anim, alt=bad)


def test_decision_regions_draws_every_class():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = np.array([0, 1, 2])
    ax = plots.plot_decision_regions(lambda P: (P[:, 0] > 0.5).astype(int), X, y)
    assert len(ax.collections) >= 3
    plt.close(ax.figure)


def test_image_rows_labels_each_row():
    rows = [("clean", np.zeros((3, 64))), ("noisy", np.ones((2, 8, 8)))]
    fig = plots.image_rows(rows, "title")
    assert len(fig.axes) == 6 and fig.axes[0].get_ylabel() == "clean"
    assert fig.axes[3].get_ylabel() == "noisy" and not fig.axes[5].images
    plt.close(fig)
