"""nnlib.functional.sinusoidal_positions: the formula of Vaswani et al. (2017)
written out element by element, the rotation property the attention section
relies on, and its error messages."""
import math

import numpy as np
import pytest

from nnlib.functional import sinusoidal_positions


def test_matches_the_formula_element_by_element():
    T, d = 7, 6
    P = sinusoidal_positions(T, d)
    for t in range(T):
        for j in range(d):
            w = 10000 ** (-(j - j % 2) / d)
            want = math.sin(w * t) if j % 2 == 0 else math.cos(w * t)
            assert P[t, j] == pytest.approx(want, abs=1e-15)


def test_a_shift_is_the_same_rotation_at_every_position():
    T, d, k = 50, 8, 3
    P = sinusoidal_positions(T + k, d)
    w = 10000.0 ** (-np.arange(0, d, 2) / d)
    for t in range(T):
        for i, wi in enumerate(w):
            c, s = math.cos(wi * k), math.sin(wi * k)
            sin_t, cos_t = P[t, 2 * i], P[t, 2 * i + 1]
            assert P[t + k, 2 * i] == pytest.approx(s * cos_t + c * sin_t, abs=1e-12)
            assert P[t + k, 2 * i + 1] == pytest.approx(c * cos_t - s * sin_t, abs=1e-12)


def test_position_zero_and_shape():
    P = sinusoidal_positions(4, 10, base=100.0)
    assert P.shape == (4, 10)
    assert np.all(P[0, 0::2] == 0) and np.all(P[0, 1::2] == 1)


@pytest.mark.parametrize("args, words", [((5, 7), "even d"), ((0, 4), "T to be a positive"),
                                         ((5, 4.0), "d to be a positive"),
                                         ((5, True), "d to be a positive")])
def test_bad_arguments_are_named(args, words):
    with pytest.raises(ValueError, match=words):
        sinusoidal_positions(*args)


def test_bad_base():
    with pytest.raises(ValueError, match="base > 1"):
        sinusoidal_positions(3, 4, base=1)
