"""Module, Sequential and the error messages readers will meet."""
import numpy as np
import pytest

import nnlib
from nnlib.testing import torch_twin

pytestmark = pytest.mark.core


def mlp(rng=None):
    return nnlib.Sequential(nnlib.Linear(4, 8, rng=rng), nnlib.ReLU(), nnlib.Linear(8, 3, rng=rng))


def test_parameter_names_follow_torch():
    model = mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert names == list(torch_twin(model).state_dict())
    assert model.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3


def test_state_dict_round_trip(rng):
    a, b = mlp(rng), mlp(rng)
    x = rng.standard_normal((5, 4))
    assert not np.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))
    state = a.state_dict()
    state["0.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"0.weight of shape \(8, 4\), got \(2, 2\)"):
        b.load_state_dict(state)
    with pytest.raises(KeyError, match="missing keys"):
        b.load_state_dict({})


def test_train_eval_reach_every_submodule():
    model = mlp().eval()
    assert not any(m.training for _, m in model.named_modules())
    model.train()
    assert all(m.training for _, m in model.named_modules())
    assert torch_twin(model.eval()).training is False


def test_backward_before_forward_is_an_error():
    for layer in [nnlib.Linear(3, 2), nnlib.ReLU(), nnlib.Sigmoid(), mlp()]:
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.zeros((1, 2)))


def test_wrong_input_shape_names_expected_and_got():
    with pytest.raises(ValueError, match=r"expected x of shape \(\.\.\., 3\).*got \(5, 4\)"):
        nnlib.Linear(3, 2).forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(3,\)"):
        nnlib.Linear(3, 2).forward(np.zeros(3))


def test_wrong_grad_out_shape(rng):
    layer = nnlib.Linear(3, 2)
    layer.forward(rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(5, 2\), got \(5, 3\)"):
        layer.backward(np.zeros((5, 3)))
    act = nnlib.Tanh()
    act.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 2\), got \(4,\)"):
        act.backward(np.zeros(4))


def test_wrong_dtype_is_rejected_with_the_fix():
    with pytest.raises(TypeError, match=r"floating dtype.*got dtype int64.*astype"):
        nnlib.Linear(3, 2).forward(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="NumPy array, got str"):
        nnlib.ReLU().forward("not an array")


def test_nan_input_is_reported_with_its_position():
    x = np.zeros((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\), the first \(NaN\) at index \(1, 2\)"):
        nnlib.Linear(3, 2).forward(x)
    x[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        nnlib.Tanh().forward(x)


def test_constructor_errors():
    with pytest.raises(ValueError, match="in_features to be a positive integer, got 0"):
        nnlib.Linear(0, 3)
    with pytest.raises(TypeError, match="Module instances, got int at position 1"):
        nnlib.Sequential(nnlib.ReLU(), 3)
    with pytest.raises(TypeError, match="integer seed"):
        nnlib.manual_seed(1.5)


def test_manual_seed_makes_initialisation_repeatable():
    nnlib.manual_seed(7)
    a = mlp().state_dict()
    nnlib.manual_seed(7)
    b = mlp().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_lists_are_accepted_as_float64():
    y = nnlib.Linear(2, 1).forward([[1.0, 2.0]])
    assert y.dtype == np.float64 and y.shape == (1, 1)


def test_twin_of_unknown_module_is_a_clear_error():
    class Mystery(nnlib.Module):
        pass

    with pytest.raises(TypeError, match="no twin registered for Mystery"):
        torch_twin(Mystery())
