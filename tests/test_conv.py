"""Conv2d, MaxPool2d, AvgPool2d and Flatten against torch in float64."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import nnlib
from nnlib.testing import check_module_gradients
from nnlib.layers.conv import output_size

from conftest import assert_matches_torch

pytestmark = pytest.mark.cnn


@st.composite
def conv_case(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    assume(all(output_size(s, k[i], stride[i], padding[i], dilation[i]) >= 1
               for i, s in enumerate((h, w))))
    return dict(n=draw(st.integers(1, 3)), cin=draw(st.integers(1, 4)),
                cout=draw(st.integers(1, 4)), h=h, w=w, k=k, stride=stride,
                padding=padding, dilation=dilation, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@given(conv_case())
def test_conv2d_matches_torch(c):
    rng = np.random.default_rng(c["seed"])
    layer = nnlib.Conv2d(c["cin"], c["cout"], c["k"], stride=c["stride"],
                         padding=c["padding"], dilation=c["dilation"], bias=c["bias"], rng=rng)
    x = rng.standard_normal((c["n"], c["cin"], c["h"], c["w"]))
    assert_matches_torch(layer, x, rng)


@st.composite
def pool_case(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    assume(all(output_size(s, k[i], stride[i], padding[i]) >= 1 for i, s in enumerate((h, w))))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w), k=k,
                stride=stride, padding=padding, ties=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("cls", [nnlib.MaxPool2d, nnlib.AvgPool2d], ids=["max", "avg"])
@given(c=pool_case())
def test_pooling_matches_torch(cls, c):
    rng = np.random.default_rng(c["seed"])
    if c["ties"]:      # few distinct values: many windows hold several equal maxima
        x = rng.integers(0, 3, c["shape"]).astype(np.float64)
    else:
        x = rng.standard_normal(c["shape"])
    assert_matches_torch(cls(c["k"], c["stride"], c["padding"]), x, rng)


def test_max_pool_gives_a_tied_window_gradient_to_its_first_maximum(rng):
    pool = nnlib.MaxPool2d(2)
    x = np.ones((1, 1, 2, 2))
    pool.forward(x)
    np.testing.assert_array_equal(pool.backward(np.array([[[[5.0]]]]))[0, 0], [[5, 0], [0, 0]])


def test_flatten_and_a_small_cnn_match_torch(rng):
    model = nnlib.Sequential(nnlib.Conv2d(1, 4, 3, padding=1, rng=rng), nnlib.ReLU(),
                             nnlib.MaxPool2d(2), nnlib.Conv2d(4, 6, 3, rng=rng), nnlib.Tanh(),
                             nnlib.AvgPool2d(2), nnlib.Flatten(), nnlib.Linear(6, 10, rng=rng))
    assert_matches_torch(model, rng.standard_normal((5, 1, 8, 8)), rng)


def test_conv_numerical_gradient_check(rng):
    layer = nnlib.Conv2d(2, 3, 3, stride=2, padding=1, dilation=1, rng=rng)
    report = check_module_gradients(layer, rng.standard_normal((2, 2, 5, 6)), rng=rng)
    assert report.worst < 1e-7, str(report)


def test_default_init_bound_is_torchs():
    nnlib.manual_seed(0)
    w = nnlib.Conv2d(16, 32, 3).weight.data
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound


def test_conv_errors_name_expected_and_got():
    conv = nnlib.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"3 channels, shape \(N, 3, H, W\), got \(2, 1, 8, 8\)"):
        conv.forward(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(8, 8\)"):
        conv.forward(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="too small for kernel .* the output would be 0x0"):
        conv.forward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="stride to be an integer >= 1"):
        nnlib.Conv2d(3, 8, 3, stride=0)
    with pytest.raises(ValueError, match="padding at most half the kernel"):
        nnlib.MaxPool2d(2, padding=2)
    with pytest.raises(RuntimeError, match="before forward"):
        nnlib.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="NaN"):
        conv.forward(np.full((1, 3, 4, 4), np.nan))


def test_output_size_rounds_down_like_torch():
    for size, k, s, p, d in [(7, 3, 2, 0, 1), (8, 3, 2, 1, 1), (10, 3, 3, 1, 2), (5, 5, 1, 0, 1)]:
        out = torch.nn.functional.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k),
                                         stride=s, padding=p, dilation=d)
        assert output_size(size, k, s, p, d) == out.shape[-1]


# The ways nnlib.functional.conv computes a convolution: im2col from a
# channels-first or a channels-last copy of the input, and the input gradient
# by contiguous runs (stride 1, C_in kh kw >= C_out) or tap by tap.
CONV_PATHS = [  # (C_in, C_out, (H, W), kernel, stride, padding, dilation)
    (3, 32, (9, 9), 3, 1, 1, 1),                      # channels first, tap by tap
    (3, 8, (9, 9), 3, 1, 1, 1),                       # channels first, contiguous runs
    (16, 8, (7, 7), 3, 1, 1, 1),                      # channels last, contiguous runs
    (16, 8, (9, 9), 3, 2, 1, 1),                      # channels last, strided: tap by tap
    (8, 4, (9, 11), 3, 1, 2, 2),                      # dilated
    (12, 5, (6, 6), 1, 1, 0, 1),                      # 1 x 1
    (6, 7, (7, 10), (2, 3), (1, 2), (1, 0), (2, 1)),  # nothing square, channels last
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cin,cout,hw,k,stride,padding,dilation", CONV_PATHS)
def test_conv2d_functional_matches_torch_on_every_path_and_keeps_dtype(
        cin, cout, hw, k, stride, padding, dilation, dtype, rng):
    from nnlib.functional.conv import conv2d_backward, conv2d_forward
    kernel = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((3, cin, *hw)).astype(dtype)
    w = rng.standard_normal((cout, cin, *kernel)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    y, cache = conv2d_forward(x, w, b, stride, padding, dilation)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = conv2d_backward(dy, cache)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation)
    yt.backward(torch.from_numpy(dy))
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-3)
    for name, ours, theirs in zip(("y", "dx", "dw", "db"), (y, *grads),
                                  (yt, xt.grad, wt.grad, bt.grad)):
        assert ours.dtype == dtype, f"{name} is {ours.dtype}, not {np.dtype(dtype)}"
        assert ours.shape == tuple(theirs.shape), name
        np.testing.assert_allclose(ours, theirs.detach().numpy(), err_msg=name, **tol)
    assert cache[1].dtype == dtype                    # the kept im2col matrix too
    for first, second in zip(grads, conv2d_backward(dy, cache)):   # the cache is unchanged
        np.testing.assert_array_equal(first, second)
