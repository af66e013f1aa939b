"""VGG16: torchvision's size and names, the layer shapes at 224x224, loading
weights with weights_only=True and its errors, and the NumPy reference against
the PyTorch network on the same weights (forward and backward, float64)."""
import numpy as np
import pytest
import torch

from nnlib.errors import WeightsMismatchError
from nnlib.torch import vgg

pytestmark = pytest.mark.vgg

# torchvision's vgg16() state-dict keys: convolutions at these feature indices
CONV_AT = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def test_full_size_vgg16_has_torchvisions_parameters_and_names():
    model = vgg.vgg16()
    assert sum(p.numel() for p in model.parameters()) == vgg.IMAGENET_PARAMETERS == 138_357_544
    expected = [f"features.{i}.{k}" for i in CONV_AT for k in ("weight", "bias")]
    expected += [f"classifier.{i}.{k}" for i in (0, 3, 6) for k in ("weight", "bias")]
    assert list(model.state_dict()) == expected
    assert model.state_dict()["classifier.0.weight"].shape == (4096, 25088)


def test_layer_shapes_at_224():
    rows = vgg.layer_table(vgg.vgg16(), (1, 3, 224, 224))
    shapes = {name: shape for name, _, shape, _ in rows}
    assert shapes["features.0"] == (1, 64, 224, 224)
    assert [shapes[f"features.{i}"] for i in (4, 9, 16, 23, 30)] == [
        (1, 64, 112, 112), (1, 128, 56, 56), (1, 256, 28, 28), (1, 512, 14, 14),
        (1, 512, 7, 7)]
    assert shapes["avgpool"] == (1, 512, 7, 7) and shapes["classifier.6"] == (1, 1000)
    assert sum(r[3] for r in rows) == 138_357_544
    assert sum(r[1] == "Conv2d" for r in rows) == 13 and sum(r[1] == "Linear" for r in rows) == 3


def test_batch_norm_variant_has_vgg16_bn_names():
    model = vgg.vgg16(batch_norm=True, width=8, num_classes=10)
    names = list(model.state_dict())
    assert names[:7] == ["features.0.weight", "features.0.bias", "features.1.weight",
                         "features.1.bias", "features.1.running_mean",
                         "features.1.running_var", "features.1.num_batches_tracked"]
    assert "features.41.bias" in names and "classifier.6.bias" in names   # as vgg16_bn


def test_weights_round_trip_with_weights_only(tmp_path):
    a = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)
    path = tmp_path / "small.pth"
    torch.save(a.state_dict(), path)
    b = vgg.load_vgg16_weights(vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1),
                               path)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_weights_errors_name_the_problem(tmp_path):
    small = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        vgg.load_vgg16_weights(small, tmp_path / "vgg16-397923af.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch state dict of tensors"):
        vgg.load_vgg16_weights(small, bad)
    other = tmp_path / "other.pth"
    torch.save(vgg.vgg16(num_classes=10, width=8, in_channels=1, pool=1).state_dict(), other)
    with pytest.raises(WeightsMismatchError, match=r"other.pth do not fit: expected "
                       r"features.0.weight of shape \(4, 1, 3, 3\), got \(8, 1, 3, 3\)"):
        vgg.load_vgg16_weights(small, other)
    torch.save({"fc.weight": torch.zeros(2)}, other)
    with pytest.raises(KeyError, match=r"missing keys \['features.0.weight', .*\(32 in all\), "
                                       r"unexpected keys \['fc.weight'\] \(1 in all\)"):
        vgg.load_vgg16_weights(small, other)
    with pytest.raises(ValueError, match="do not fit"):       # also a ValueError
        vgg.load_vgg16_weights(small, other)


@pytest.mark.parametrize("bad, message", [
    (dict(width=3), "width to divide 64"),
    (dict(num_classes=0), "positive integer num_classes"),
    (dict(dropout=1.0), r"dropout in \[0, 1\)"),
])
def test_config_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        vgg.vgg16(**bad)
    with pytest.raises(ValueError, match=message):
        vgg.vgg16_numpy(**bad)


def test_forward_rejects_wrong_images():
    model = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=1)
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\), got \(2, 3, 32, 32\)"):
        model(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"at least 32x32"):
        model(torch.zeros(2, 1, 16, 16))
    ref = vgg.to_numpy(model)
    with pytest.raises(ValueError, match="cannot be average-pooled"):
        vgg.vgg16_numpy(num_classes=10, width=16, in_channels=1, pool=2)(np.zeros((1, 1, 96, 96)))
    with pytest.raises(ValueError, match=r"H, W >= 32, got \(1, 1, 8, 8\)"):
        ref(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="without BatchNorm"):
        vgg.to_numpy(vgg.vgg16(width=16, batch_norm=True))


@pytest.mark.parametrize("side, pool", [(32, 1), (64, 2), (64, 1)])
def test_numpy_reference_matches_pytorch_forward_and_backward(side, pool):
    torch.manual_seed(0)
    model = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=pool).double().eval()
    with torch.no_grad():                      # weights of a useful scale everywhere
        for p in model.parameters():
            p.normal_(0, 1.0 / np.sqrt(max(p[0].numel(), 1)) if p.ndim > 1 else 0.1)
    ref = vgg.to_numpy(model).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, side, side))
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    ours = ref(x)
    assert np.abs(ours - out.detach().numpy()).max() <= 1e-12 * np.abs(ours).max()
    g = rng.standard_normal(ours.shape)
    out.backward(torch.tensor(g))
    dx = ref.backward(g)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12 * np.abs(dx).max())
    grads = {n: p.grad for n, p in ref.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9,
                                   atol=1e-12 * np.abs(grads[name]).max(), err_msg=name)
