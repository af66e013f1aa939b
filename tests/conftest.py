import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI: the same examples on every run (derandomized); locally: fresh examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

RTOL, ATOL = 1e-8, 1e-10


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_matches_torch(module, x, rng, device="cpu"):
    """Output, input gradient and every parameter gradient equal torch's in float64."""
    from nnlib.twins import compare_with_torch

    report = compare_with_torch(module, x, rng=rng, rtol=RTOL, atol=ATOL, device=device)
    assert report.ok(), (f"{type(module).__name__} differs from torch beyond rtol={RTOL}, "
                         f"atol={ATOL}; worst |error| per quantity:\n{report}")
    return report


def away_from_zero(x, margin=0.05):
    """Move values at least ``margin`` from 0, away from the kinks of ReLU-like layers."""
    return np.where(x >= 0, x + margin, x - margin)
