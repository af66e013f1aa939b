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


# --- nnlib 1.0: caches that survive reuse ------------------------------------------
def test_weight_shared_network_matches_autograd(rng):
    """The same Linear applied twice before backward: the stack of caches gives each
    backward the input it saw, so the gradients equal torch autograd's (float64)."""
    import torch

    shared, act = nnlib.Linear(5, 5, rng=rng), nnlib.Tanh()
    model = nnlib.Sequential(shared, act, shared)
    x, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    y = model(x)
    model.zero_grad()
    dx = model.backward(g)
    W = torch.tensor(shared.weight.data, requires_grad=True)
    b = torch.tensor(shared.bias.data, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tanh(xt @ W.T + b) @ W.T + b
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(shared.weight.grad, W.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(shared.bias.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert shared.pending_backward == 0


def test_two_forwards_then_two_backwards_in_reverse_order(rng):
    """D(real), D(fake), then the backward of fake, then of real: each at its own input."""
    layer = nnlib.Linear(3, 2, rng=rng)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ga, gb = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    layer(a)
    layer(b)
    layer.backward(gb)
    layer.backward(ga)
    np.testing.assert_allclose(layer.weight.grad, gb.T @ b + ga.T @ a, rtol=1e-12)
    # a one-slot cache (nnlib before 1.0) differentiates b twice: the test sees that
    assert not np.allclose(layer.weight.grad, (ga + gb).T @ b)


def test_out_of_order_backward_is_an_error(rng):
    layer = nnlib.Linear(3, 2, rng=rng)
    layer(rng.standard_normal((4, 3)))
    layer(rng.standard_normal((6, 3)))
    with pytest.raises(ValueError, match="reverse order of the forward calls"):
        layer.backward(np.zeros((4, 2)))        # belongs to the first forward, not the latest
    with pytest.raises(RuntimeError, match="once more than forward"):
        nnlib.ReLU().backward(np.zeros(3))


def test_no_grad_saves_no_cache_and_depth_is_bounded(rng):
    layer = nnlib.Linear(3, 2, rng=rng)
    with nnlib.no_grad():
        assert not nnlib.is_grad_enabled()
        layer(rng.standard_normal((2, 3)))
    assert nnlib.is_grad_enabled() and layer.pending_backward == 0
    for _ in range(layer.max_cache_depth + 3):
        layer(rng.standard_normal((2, 3)))
    assert layer.pending_backward == layer.max_cache_depth
    for _ in range(layer.max_cache_depth):
        layer.backward(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="3 cache\\(s\\) were dropped.*no_grad"):
        layer.backward(np.zeros((2, 2)))


# --- parameters, freezing, slicing, resets -----------------------------------------
def test_freeze_keeps_gradients_out_and_optimizers_off(rng):
    model = mlp(rng)
    model[0].freeze()
    x = rng.standard_normal((5, 4))
    model(x)
    model.backward(np.ones((5, 3)))
    assert not model[0].weight.grad.any() and model[2].weight.grad.any()
    before = model[0].weight.data.copy()
    nnlib.SGD(model.parameters(), lr=0.1).step()
    np.testing.assert_array_equal(model[0].weight.data, before)
    assert model.num_parameters(trainable_only=True) == 8 * 3 + 3
    assert "requires_grad=False" in repr(model[0].weight)
    model.unfreeze()
    assert model.num_parameters(trainable_only=True) == model.num_parameters()


def test_sequential_slices_are_sequentials_with_torch_names(rng):
    model = mlp(rng)
    head = model[1:]
    assert isinstance(head, nnlib.Sequential) and len(head) == 2
    assert [n for n, _ in head.named_parameters()] == ["2.weight", "2.bias"]
    assert head[1] is model[2]                      # the same layer objects
    assert list(torch_twin(head).state_dict()) == ["2.weight", "2.bias"]
    x = rng.standard_normal((2, 4))
    np.testing.assert_array_equal(head(model[0:1](x)), model(x))


def test_reset_parameters_redraws_from_the_default_init():
    a = mlp(np.random.default_rng(0))
    before = a.state_dict()
    a.reset_parameters(np.random.default_rng(1))
    assert not np.allclose(a[0].weight.data, before["0.weight"])
    a.reset_parameters(np.random.default_rng(0))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# --- one exception family -----------------------------------------------------------
def test_one_exception_family():
    from nnlib.errors import CheckpointError, DivergenceError, NonFiniteError, \
        WeightsMismatchError

    assert issubclass(NonFiniteError, FloatingPointError) and issubclass(NonFiniteError,
                                                                         ValueError)
    assert issubclass(DivergenceError, NonFiniteError)
    assert issubclass(WeightsMismatchError, KeyError) and issubclass(WeightsMismatchError,
                                                                     ValueError)
    assert nnlib.train.DivergenceError is DivergenceError
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(NonFiniteError):
        nnlib.Linear(2, 2).forward(np.array([[np.nan, 0.0]]))
    p = nnlib.Parameter(np.zeros(2))
    p.grad[0] = np.inf
    with pytest.raises(NonFiniteError, match="finite gradients"):
        nnlib.SGD([p], lr=0.1).step()
    with pytest.raises(WeightsMismatchError, match=r"expected 0.weight of shape \(8, 4\), "
                                                   r"got \(2, 2\)") as e:
        mlp().load_state_dict({**mlp().state_dict(), "0.weight": np.zeros((2, 2))})
    assert not str(e.value).startswith("'")         # a readable message, not a quoted key


def test_registering_a_twin_first_keeps_the_defaults():
    """nnlib < 1.0: register_twin before the first torch_twin stopped every default twin
    from registering. Now each layer registers its own twin when it is defined."""
    from nnlib.testing import register_twin

    class Scale(nnlib.Module):
        """x: (...) -> (...), times 2."""

    register_twin(Scale, lambda m, nn: nn.Identity())
    assert type(torch_twin(nnlib.Linear(2, 3))).__name__ == "Linear"
    assert type(torch_twin(nnlib.Tanh())).__name__ == "Tanh"


# --- what an independent review of nnlib 1.0 found, now tested ----------------------
def test_shared_weights_are_one_parameter_stepped_once(rng):
    """Torch lists a shared weight once; so does nnlib, and one SGD step on the shared
    network equals torch's step."""
    import torch

    s = nnlib.Linear(3, 3, rng=rng)
    model = nnlib.Sequential(s, nnlib.Tanh(), s)
    twin = torch_twin(model)
    assert len(model.parameters()) == len(list(twin.parameters())) == 2
    assert model.num_parameters() == 12
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    model(x)
    model.backward(g)
    twin(torch.tensor(x)).backward(torch.tensor(g))
    norm = nnlib.clip_grad_norm(model.parameters(), 1e9)
    tnorm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 1e9)
    assert abs(norm - float(tnorm)) < 1e-10
    nnlib.SGD(model.parameters(), lr=0.1).step()
    torch.optim.SGD(twin.parameters(), lr=0.1).step()
    np.testing.assert_allclose(s.weight.data, twin[0].weight.detach().numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="the same one at positions 0 and 1"):
        nnlib.SGD([s.weight, s.weight], lr=0.1)


def test_twin_keeps_each_submodules_mode(rng):
    """A BatchNorm in eval mode inside a model in training mode (a frozen backbone)."""
    import torch

    bn = nnlib.BatchNorm1d(3)
    bn.running_mean[...] = 1.0
    model = nnlib.Sequential(bn, nnlib.Linear(3, 2, rng=rng))
    bn.eval()
    twin = torch_twin(model)
    assert twin.training and not twin[0].training
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(model(x), twin(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_container_and_child_out_of_step_is_an_error(rng):
    model = mlp(rng)
    x, z = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    model(x)
    model[:2](z)                    # layer 0 runs again, alone, before model's backward
    with pytest.raises(RuntimeError, match="reverse order of the forward calls"):
        model.backward(np.ones((5, 3)))


def test_a_failed_backward_keeps_its_cache(rng):
    lin = nnlib.Linear(3, 2, rng=rng)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    gb = rng.standard_normal((4, 2))
    lin(a)
    lin(b)
    with pytest.raises(ValueError, match="grad_out"):
        lin.backward(gb.T)                             # wrong shape: nothing is used up
    lin.backward(gb)
    np.testing.assert_allclose(lin.weight.grad, gb.T @ b, rtol=1e-12)
    assert lin.pending_backward == 1


def test_backward_after_an_optimizer_step_is_an_error(rng):
    lin = nnlib.Linear(3, 2, rng=rng)
    opt = nnlib.SGD(lin.parameters(), lr=0.1)
    lin(rng.standard_normal((4, 3)))
    opt.step()
    with pytest.raises(RuntimeError, match="changed in place"):
        lin.backward(np.ones((4, 2)))


def test_reserved_child_names_and_custom_resets():
    from collections import OrderedDict

    for bad in ("cache", "forward", "0.1"):
        with pytest.raises(ValueError, match="cannot be named"):
            nnlib.Sequential(OrderedDict([(bad, nnlib.Linear(2, 2))]))

    class Owns(nnlib.Module):
        """x: (N, 3) -> (N, 3)."""

        def __init__(self):
            super().__init__()
            self.w = nnlib.Parameter(np.full(3, 5.0))

    with pytest.raises(NotImplementedError, match=r"owns parameters \['w'\]"):
        Owns().reset_parameters()


def test_reset_draws_from_torchs_distribution():
    """Linear(200, 300): U(-b, b) with b = 1/sqrt(200), as torch: max near b, std b/sqrt 3."""
    import torch

    lin = nnlib.Linear(200, 300).reset_parameters(np.random.default_rng(3))
    b = 1 / np.sqrt(200)
    t = torch.nn.Linear(200, 300).weight.detach().numpy()
    for w in (lin.weight.data, t):
        assert b * 0.99 < np.abs(w).max() <= b * (1 + 1e-6)
        assert abs(w.std() - b / np.sqrt(3)) < 0.02 * b
