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
