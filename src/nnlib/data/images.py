"""Kernel maths for one grey image: preset 3x3 kernels, a kernel typed as
text, and the image convolved with it (the convolution chapter's explorer
draws these; ``nnlib.viz.widgets.kernel_explorer``)."""
from __future__ import annotations

import numpy as np

__all__ = ["KERNELS", "parse_kernel", "apply_kernel"]


#: 3x3 kernels the convolution chapter starts from
KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "vertical edges (Sobel x)": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "horizontal edges (Sobel y)": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "blur (box)": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}


def parse_kernel(text: str) -> np.ndarray:
    """'1 0 -1; 2 0 -2; 1 0 -1' (rows separated by ';' or new lines) -> an
    array of shape (3, 3)."""
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
    from ..functional.conv import conv2d_forward

    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    y, _ = conv2d_forward(image[None, None], kernel[None, None], padding=1)
    return y[0, 0]
