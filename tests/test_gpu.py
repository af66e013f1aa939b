"""nnlib (NumPy, CPU) against torch on CUDA. Skipped where there is no GPU."""
import numpy as np
import pytest
import torch

import nnlib

from conftest import assert_matches_torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_mlp_matches_torch_on_cuda(rng):
    model = nnlib.Sequential(nnlib.Linear(64, 128, rng=rng), nnlib.Tanh(),
                             nnlib.Linear(128, 10, rng=rng), nnlib.Sigmoid())
    assert_matches_torch(model, rng.standard_normal((256, 64)), rng, device="cuda")


def test_losses_match_on_cuda(rng):
    z = rng.standard_normal((64, 10))
    y = rng.integers(0, 10, 64)
    ours = nnlib.CrossEntropyLoss()
    value = ours(z, y)
    zt = torch.tensor(z, device="cuda", requires_grad=True)
    out = torch.nn.functional.cross_entropy(zt, torch.tensor(y, device="cuda"))
    out.backward()
    np.testing.assert_allclose(value, out.item(), rtol=1e-8)
    np.testing.assert_allclose(ours.backward(), zt.grad.cpu().numpy(), rtol=1e-8, atol=1e-10)


def test_vgg_sized_conv_block_matches_torch_on_cuda_in_float32(rng):
    """batch 8, 64 -> 64 channels, 112x112, k3 p1, then 2x2 max-pool, in float32.
    Tolerance: float32 sums over 64*9 = 576 products; rtol 1e-4, atol 1e-4."""
    x = rng.standard_normal((8, 64, 112, 112)).astype(np.float32)
    block = nnlib.Sequential(nnlib.Conv2d(64, 64, 3, padding=1, rng=rng, dtype=np.float32),
                             nnlib.ReLU(), nnlib.MaxPool2d(2))
    y = block.forward(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = block.backward(g)
    from nnlib.testing import torch_twin

    twin = torch_twin(block, dtype=torch.float32, device="cuda")
    xt = torch.tensor(x, device="cuda", requires_grad=True)
    yt = twin(xt)
    yt.backward(torch.tensor(g, device="cuda"))
    np.testing.assert_allclose(y, yt.detach().cpu().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.cpu().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(block[0].weight.grad, twin[0].weight.grad.cpu().numpy(),
                               rtol=1e-3, atol=1e-2)


def test_vgg16_numpy_reference_matches_torch_on_cuda():
    """The NumPy VGG16 (width/16, 64x64 input) against the same network on CUDA
    in float64: the case study's reference check, on the GPU."""
    from nnlib.torch import vgg
    torch.manual_seed(0)
    model = vgg.vgg16(num_classes=10, width=16, in_channels=1, pool=2).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0 / np.sqrt(p[0].numel()) if p.ndim > 1 else 0.1)
    ref = vgg.to_numpy(model).eval()
    x = np.random.default_rng(0).standard_normal((4, 1, 64, 64))
    ours = ref(x)
    theirs = model.cuda()(torch.tensor(x, device="cuda")).detach().cpu().numpy()
    assert np.abs(ours - theirs).max() <= 1e-10 * np.abs(ours).max()


def test_full_size_vgg16_trains_on_cuda_with_amp_and_channels_last():
    """The case study's GPU path, the real one: torchvision's VGG16 (3 channels,
    ImageNet normalisation, a 10-way head) at 224x224, bfloat16
    autocast, channels-last; prints images/s and peak memory."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "scripts" / "vgg_finetune.py"),
                          "--imagenet", "--benchmark", "20", "--side", "224",
                          "--batch-size", "64", "--device", "cuda", "--amp",
                          "--channels-last"], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    print("\nVGG16 224x224 on", summary["device"], ":",
          f"{summary['images_per_second']:.0f} images/s,",
          f"peak {summary['peak_memory_mb']:.0f} MiB")
    assert summary["images_per_second"] > 0


def test_fit_on_cuda_matches_its_own_accuracy_bookkeeping():
    from nnlib.torch import finetune, vgg
    rng = np.random.default_rng(0)
    y = np.arange(128) % 10
    X = rng.random((128, 1, 32, 32)).astype(np.float32) * 0.2
    X[np.arange(128), 0, 3 * y, 3 * y] = 1.0
    model = vgg.vgg16(num_classes=10, width=8, in_channels=1, pool=1, batch_norm=True)
    config = finetune.TrainConfig(epochs=15, batch_size=32, device="cuda", amp=True,
                                  channels_last=True, patience=None)
    result = finetune.fit(model, (X, y), (X, y), config, progress=False)
    assert result.best_val == finetune.evaluate(model, X, y, device="cuda",
                                                channels_last=True, amp=True)
    assert result.best_val > 0.5
