"""Input validation shared by every nnlib module.

Each helper raises an error whose message names the caller, what it expected and
what it received, so that a reader who passes the wrong thing learns what to fix.
"""
from __future__ import annotations

import numpy as np

__all__ = ["as_float_array", "check_shape", "check_finite", "check_labels", "positive_int",
           "NonFiniteError"]


from .errors import NonFiniteError  # noqa: E402  (re-exported: one family, in errors.py)


def as_float_array(x, where: str, name: str = "x", ndim: int | None = None,
                   min_ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a floating NumPy array, or raise naming ``where``.

    Accepts float16/32/64 arrays (kept as they are) and Python lists of numbers
    (converted to float64). Integer and boolean arrays are rejected: a network's
    input should be made floating on purpose, not silently.
    """
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype=np.float64)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected {name} to be a NumPy array, "
                        f"got {type(x).__name__}")
    if x.dtype.kind != "f":       # np.issubdtype(.., np.floating), 10x faster
        raise TypeError(f"{where}: expected {name} with a floating dtype "
                        f"(float32 or float64), got dtype {x.dtype}; "
                        f"convert with {name}.astype(np.float64)")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{where}: expected {name} with {ndim} dimensions, "
                         f"got shape {x.shape} ({x.ndim} dimensions)")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{where}: expected {name} with at least {min_ndim} "
                         f"dimensions, got shape {x.shape}")
    check_finite(x, where, name)
    return x


def check_finite(x: np.ndarray, where: str, name: str = "x") -> None:
    """Raise if ``x`` holds NaN or infinity, saying how many and where the first is."""
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        kind = "NaN" if np.isnan(x[first]) else "infinity"
        raise NonFiniteError(f"{where}: expected finite values in {name}, got "
                         f"{len(bad)} non-finite value(s), the first ({kind}) "
                         f"at index {first}")


def check_shape(x: np.ndarray, expected: tuple, where: str, name: str = "x") -> None:
    """Check ``x.shape`` against ``expected``, where ``None`` matches any size."""
    ok = x.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        shown = "(" + ", ".join("N" if e is None else str(e) for e in expected)
        shown += ",)" if len(expected) == 1 else ")"
        raise ValueError(f"{where}: expected {name} of shape {shown}, "
                         f"got {x.shape}")


def check_labels(y, n_classes: int, n: int, where: str) -> np.ndarray:
    """Class labels: integers in ``[0, n_classes)``, one per row of the input."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{where}: expected integer class labels, got dtype "
                        f"{y.dtype}; convert with y.astype(np.int64)")
    if y.shape != (n,):
        raise ValueError(f"{where}: expected labels of shape ({n},) to match "
                         f"{n} rows of scores, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{where}: expected labels in [0, {n_classes}), got "
                         f"values from {y.min()} to {y.max()}")
    return y


def positive_int(where: str, name: str, v) -> int:
    """``v`` as an ``int`` if it is a positive integer (not a bool), else a
    ValueError naming ``where``, ``name`` and what was given."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: expected {name} to be a positive integer, got {v!r}")
    return int(v)
