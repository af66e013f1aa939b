"""nnlib.testing.mean_sd and paired_t against numpy and scipy."""
import numpy as np
import pytest
from scipy import stats

from nnlib.testing import mean_sd, paired_t


def test_mean_sd_uses_the_sample_standard_deviation():
    assert mean_sd([1, 2, 3]) == "2.000 ± 1.000"
    assert mean_sd(np.array([0.5, 0.7]), ".1f") == "0.6 ± 0.1"


def test_paired_t_is_scipys_related_samples_t():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5), rng.normal(size=5)
    assert paired_t(a, b) == pytest.approx(stats.ttest_rel(a, b).statistic, rel=1e-12)
    assert paired_t(b, a) == pytest.approx(-paired_t(a, b))


@pytest.mark.parametrize("call, match", [
    (lambda: mean_sd([1.0]), "at least 2 values"),
    (lambda: mean_sd([[1.0, 2.0]]), "1-D sequence"),
    (lambda: mean_sd([1.0, np.nan]), "finite values"),
    (lambda: paired_t([1, 2, 3], [1, 2]), "got 3 and 2"),
    (lambda: paired_t([1, 2, 3], [0, 1, 2]), "all equal"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
