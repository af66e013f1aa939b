"""The vectorised shift_images and the in-place Adam step give exactly the
numbers of the straightforward versions they replaced (bit for bit), so the
chapters' printed results do not move."""
import numpy as np
import pytest
from scipy.ndimage import shift

import nnlib
from nnlib import data

pytestmark = pytest.mark.optim


@pytest.mark.parametrize("shape,max_shift", [((7, 8, 8), 1), ((5, 6, 6), 2),
                                             ((4, 5, 5), 6), ((3, 64), 1)])
def test_shift_images_equals_scipy_shift_per_image(shape, max_shift):
    images = np.random.default_rng(1).standard_normal(shape)
    out = data.shift_images(images, max_shift, rng=np.random.default_rng(3))
    moves = np.random.default_rng(3).integers(-max_shift, max_shift + 1,
                                              size=(shape[0], 2))
    side = int(round(np.sqrt(np.prod(shape[1:]))))
    square = images.reshape(-1, side, side)
    ref = np.stack([shift(img, m, order=0, mode="constant", cval=0.0)
                    for img, m in zip(square, moves)]).reshape(shape)
    assert out.shape == shape and np.array_equal(out, ref)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_in_place_matches_the_formulas_bit_for_bit(weight_decay):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((6, 5))
    p = nnlib.Parameter(w0.copy())
    opt = nnlib.Adam([p], lr=0.01, weight_decay=weight_decay)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    for t in range(1, 30):
        g = rng.standard_normal(w0.shape)
        p.grad[...] = g
        opt.step()
        g = g + weight_decay * w if weight_decay else g
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        assert np.array_equal(p.data, w), f"step {t}"
