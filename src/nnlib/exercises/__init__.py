"""nnlib.exercises: write a piece of a network yourself and check it.

In a notebook cell::

    import nnlib.exercises

    def log_softmax(z):
        ...                      # your code

    nnlib.exercises.check("log_softmax", log_softmax)

``check`` runs your function on several random cases (a batch of 1, odd
sizes, the edge cases that catch the usual mistakes), compares each output
with nnlib's own and prints either "passed on k cases" or the first case
that failed: which output, the first index that differs, expected against
got, and the likely cause when your output matches a known mistake (a
transposed weight gradient, a mean instead of a sum, a missing bias
gradient, a softmax that overflows...). It never shows the solution.
``names()`` lists the exercises; each one's contract (arguments, shapes,
what to return) is the docstring of the function of the same name in
``nnlib.exercises.foundations`` (chapters 1 to 3),
``nnlib.exercises.deep`` (chapters 4 and 5, and section 5c),
``nnlib.exercises.sequences`` (section 5b) or
``nnlib.exercises.later`` (sections 5d to 5f and chapter 8). ``register``
adds an exercise.

``import nnlib`` does not import this package; ``import nnlib.exercises``
does.
"""
from . import deep, foundations, later, sequences  # noqa: F401  (registers the exercises)
from ._core import (Case, CheckResult, Diagnoser, Exercise, UnknownExerciseError, check,
                    get, names, register)

__all__ = ["check", "names", "get", "register", "Exercise", "Case", "Diagnoser",
           "CheckResult", "UnknownExerciseError", "foundations", "deep", "later",
           "sequences"]
