"""Printed characters rendered from the fonts that matplotlib ships, the way
scikit-learn's digits were made (nothing from the system, nothing downloaded)."""
from __future__ import annotations

import numpy as np

from ..random import get_rng

__all__ = ["render_glyphs", "GLYPH_FONTS"]


# Fonts that ship with matplotlib, so rendering needs nothing from the system.
GLYPH_FONTS = (("DejaVu Sans", "bold"), ("DejaVu Serif", "bold"),
               ("DejaVu Sans Mono", "bold"), ("DejaVu Sans", "normal"),
               ("DejaVu Serif", "normal"), ("DejaVu Sans Mono", "normal"))


def render_glyphs(chars, n_per_char: int = 1, size: int = 8, jitter: float = 0.0,
                  fonts=GLYPH_FONTS, supersample: int = 4, rng=None):
    """Printed characters rendered the way scikit-learn's digits were made.

    The digits are 32x32 bitmaps whose 4x4 blocks were counted into 8x8 images
    of 0-16 ink; here each character is drawn as a filled outline (matplotlib's
    ``TextPath``) scaled to fill a ``size * supersample`` square bitmap, which
    is averaged over ``supersample x supersample`` blocks. ``jitter`` in [0, 1]
    scales random changes per image: rotation up to 15 degrees, size -15% to
    +5%, shift up to 8% of the side, and a random font of ``fonts`` (with
    ``jitter=0`` the fonts are used in turn).

    Returns ``(X, y)``: ``X`` float64 in [0, 1] of shape ``(N, size * size)``,
    ``N = len(chars) * n_per_char``, and ``y`` int64, the index of each image's
    character in ``chars``.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    chars = list(chars)
    if not chars or any(not isinstance(c, str) or len(c) != 1 or c.isspace()
                        for c in chars):
        raise ValueError(f"render_glyphs: expected printable single characters, got {chars!r}")
    if not (isinstance(n_per_char, int) and n_per_char >= 1):
        raise ValueError(f"render_glyphs: expected n_per_char >= 1, got {n_per_char!r}")
    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"render_glyphs: expected an integer size >= 4, got {size!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"render_glyphs: expected jitter in [0, 1], got {jitter!r}")
    if not fonts:
        raise ValueError("render_glyphs: expected at least one (family, weight) font")
    rng = get_rng(rng)
    props = [FontProperties(family=f, weight=w) for f, w in fonts]
    side = size * supersample
    centres = (np.arange(side) + 0.5) / side
    # pixel centres as (x, y) with y pointing up, row 0 at the top of the image
    grid = np.stack(np.meshgrid(centres, 1.0 - centres), axis=-1).reshape(-1, 2)
    X, y = [], []
    for label, ch in enumerate(chars):
        for k in range(n_per_char):
            font = props[rng.integers(len(props))] if jitter else props[k % len(props)]
            path = TextPath((0, 0), ch, size=1, prop=font)
            box = path.get_extents()
            angle, grow, shift = 0.0, 1.0, np.zeros(2)
            if jitter:
                angle = jitter * rng.uniform(-15, 15)
                grow = 1 + jitter * rng.uniform(-0.15, 0.05)
                shift = jitter * rng.uniform(-0.08, 0.08, 2)
            scale = 0.9 * grow / max(box.width, box.height)
            t = (Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2)
                 .scale(scale).rotate_deg(angle).translate(0.5 + shift[0], 0.5 + shift[1]))
            inside = np.zeros(len(grid), bool)
            for ring in path.transformed(t).to_polygons():   # even-odd rule: holes stay open
                inside ^= Path(ring).contains_points(grid)
            inside = inside.reshape(side, side)
            X.append(inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3)))
            y.append(label)
    return np.stack(X).reshape(len(X), -1), np.array(y, dtype=np.int64)
