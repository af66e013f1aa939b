"""Summaries of a measurement repeated over seeds, as the book reports them
(BOOK.md, "How a check earns its place"): mean ± sample standard deviation,
and the paired t statistic of two methods run on the same seeds."""
from __future__ import annotations

import numpy as np


def _values(values, where: str, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{where}: expected a 1-D sequence of at least 2 {name} "
                         f"(one per seed), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{where}: expected finite {name}, got {v.tolist()}")
    return v


def mean_sd(values, fmt: str = ".3f") -> str:
    """``"mean ± sd"`` of one number per seed, the sample standard deviation
    (ddof = 1), each formatted with ``fmt``: ``mean_sd([1, 2, 3]) == "2.000 ±
    1.000"``."""
    v = _values(values, "mean_sd")
    return f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}"


def paired_t(a, b) -> float:
    """The paired t statistic of ``a - b``, two methods measured on the same
    seeds (``a[i]`` and ``b[i]`` on seed ``i``): the mean difference over its
    standard error, ``mean(d) / (sd(d) / sqrt(n))`` with ddof = 1. Compare it
    with the t distribution's critical value for ``n - 1`` degrees of freedom
    (2.776 for 5 seeds, two-sided 5%)."""
    a, b = _values(a, "paired_t", "a"), _values(b, "paired_t", "b")
    if a.shape != b.shape:
        raise ValueError(f"paired_t: expected a and b with one value per seed each, "
                         f"got {len(a)} and {len(b)}")
    d = a - b
    sd = d.std(ddof=1)
    if sd == 0:
        raise ValueError("paired_t: the differences are all equal "
                         f"({d[0]!r}); the t statistic is undefined")
    return float(d.mean() / (sd / np.sqrt(len(d))))
