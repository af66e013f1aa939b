"""nnlib.data.first_before_last, the order task of sections 5c and 5d."""
import numpy as np
import pytest

from nnlib import data


def test_labels_say_whether_the_first_token_is_smaller_than_the_last():
    x, y = data.first_before_last(500, np.random.default_rng(0))
    assert x.shape[1] == 6 and x.shape[0] == y.shape[0] < 500
    assert x.min() >= 0 and x.max() < 8 and np.all(x[:, 0] != x[:, -1])
    assert np.array_equal(y, (x[:, 0] < x[:, -1]).astype(int))
    assert 0.4 < y.mean() < 0.6                      # balanced by symmetry


def test_the_same_draws_as_the_code_it_replaced():
    # the chapters' own code, before it moved here: the same numbers
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    x, y = data.first_before_last(100, rng, length=5, vocab=4)
    xr = ref.integers(4, size=(100, 5))
    xr = xr[xr[:, 0] != xr[:, -1]]
    assert np.array_equal(x, xr) and np.array_equal(y, xr[:, 0] < xr[:, -1])


def test_order_matters_for_the_label():
    x, y = data.first_before_last(200, np.random.default_rng(1))
    flipped = x[:, ::-1]                             # same tokens, reversed
    assert np.array_equal((flipped[:, 0] < flipped[:, -1]).astype(int), 1 - y)


@pytest.mark.parametrize("kw, match", [({"n": 0}, "n to be an integer >= 1"),
                                       ({"length": 1}, "length to be an integer >= 2"),
                                       ({"vocab": 1.5}, "vocab to be an integer >= 2")])
def test_bad_sizes_are_named(kw, match):
    args = {"n": 10, **kw}
    with pytest.raises(ValueError, match=match):
        data.first_before_last(args.pop("n"), np.random.default_rng(0), **args)


def test_a_seed_is_not_a_generator():
    with pytest.raises(TypeError, match="expected rng to be a numpy.random.Generator"):
        data.first_before_last(10, 0)
