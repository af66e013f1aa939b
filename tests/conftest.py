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

from nnlib.testing import ATOL, RTOL, assert_matches_torch  # noqa: E402,F401


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def away_from_zero(x, margin=0.05):
    """Move values at least ``margin`` from 0, away from the kinks of ReLU-like layers."""
    return np.where(x >= 0, x + margin, x - margin)
