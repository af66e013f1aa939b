"""nnlib's exceptions: one family under ``NNLibError``, so a reader catches what
they mean.

* ``NonFiniteError`` -- an array that should be finite holds NaN or infinity
  (an input, a gradient, a loss). It is both a ``FloatingPointError`` and a
  ``ValueError``, so code written for either keeps catching it.
* ``DivergenceError`` -- a ``NonFiniteError`` met while training: the loss or
  the gradients blew up; the message names the epoch and step.
* ``WeightsMismatchError`` -- weights that do not fit a model: a missing or
  unexpected key, or a key whose shape differs. The message names the key and
  both shapes. It is a ``KeyError`` and a ``ValueError``.
* ``CheckpointError`` -- a checkpoint file that cannot be used (corrupt, not
  written by nnlib, or written by a run with other settings).
"""
from __future__ import annotations

__all__ = ["NNLibError", "NonFiniteError", "DivergenceError", "WeightsMismatchError", "CheckpointError",
           "weights_mismatch"]


class NNLibError(Exception):
    """The base of nnlib's own exceptions (``except nnlib.errors.NNLibError``).
    Wrong arguments are reported with Python's ``TypeError`` / ``ValueError``
    and a message naming what was expected and what was got."""


class NonFiniteError(NNLibError, FloatingPointError, ValueError):
    """An array that should be finite holds NaN or infinity."""


class DivergenceError(NonFiniteError):
    """Training produced NaN or infinity (loss or gradients); the message says where."""


class WeightsMismatchError(NNLibError, KeyError, ValueError):
    """Weights that do not fit: the message names the key(s) and the shapes."""

    def __str__(self) -> str:          # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class CheckpointError(NNLibError, ValueError):
    """A checkpoint that cannot be read, or that belongs to another run."""


def weights_mismatch(where: str, expected: dict, got: dict, source: str = "") -> None:
    """Raise ``WeightsMismatchError`` if ``got`` (name -> shape) does not fit
    ``expected`` (name -> shape): missing and unexpected keys first (the first
    five of each), then the first key whose shapes differ. ``source`` (a file
    name, say) is named in the message when given."""
    of = f" {source}" if source else ""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        raise WeightsMismatchError(
            f"{where}: the weights{of} do not fit: missing keys {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''} ({len(missing)} in all), unexpected keys "
            f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)} in all)")
    for k, shape in expected.items():
        if tuple(got[k]) != tuple(shape):
            raise WeightsMismatchError(f"{where}: the weights{of} do not fit: expected {k} "
                                       f"of shape {tuple(shape)}, got {tuple(got[k])}")
