"""The checker's machinery: the registry, the comparison and the messages.

An exercise is a reference function (nnlib's own code), a generator of
random cases and a list of diagnosers, each a known wrong answer. ``check``
runs the learner's function and the reference on every case, compares each
output and, at the first case that differs, says which output, where,
expected against got, and which known mistake the learner's output matches.
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from ..errors import NNLibError

__all__ = ["Case", "Diagnoser", "Exercise", "CheckResult", "UnknownExerciseError",
           "register", "check", "names", "get"]

RTOL = 1e-6
ATOL = 1e-9

_REGISTRY: dict = {}


class UnknownExerciseError(NNLibError, KeyError, ValueError):
    """``check`` was given a name no exercise is registered under; the message
    lists the names there are."""

    def __str__(self) -> str:          # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Case:
    """One set of arguments for the learner's function (a tuple, in the order
    of the exercise's ``args``) and a few words on what makes it special
    (``note``, e.g. "batch of 1", "large logits")."""
    args: tuple
    note: str = ""


@dataclass(frozen=True)
class Diagnoser:
    """A likely cause of a wrong output, recognised in one of two ways.

    ``variant(*args)`` computes the outputs of a known wrong answer (same
    structure as the reference's); the cause is named when the learner's
    output (the one that differs) equals the variant's. ``test(args, got,
    expected)`` is a predicate on the arguments and the two outputs' lists,
    for causes that no single variant captures (an overflow to NaN).
    ``outputs`` restricts it to the named outputs (all when empty)."""
    cause: str
    variant: object = None
    test: object = None
    outputs: tuple = ()


@dataclass(frozen=True)
class Exercise:
    """An exercise the checker knows: ``name``; ``reference`` (nnlib's own
    implementation, called with a case's ``args``); ``cases(rng)`` -> list of
    :class:`Case`; ``args`` and ``outputs``, the names of the arguments and of
    the outputs (one name: the function returns a single array or number;
    several: a tuple in that order); ``diagnosers``; ``chapter`` (the notebook
    it belongs to) and ``doc`` (the conventions: shapes, layouts)."""
    name: str
    reference: object
    cases: object
    args: tuple
    outputs: tuple
    diagnosers: tuple = ()
    chapter: str = ""
    doc: str = ""
    scalar_outputs: tuple = field(default=())


def register(name: str, *, cases, args, outputs, diagnosers=(), chapter: str = "",
             scalar_outputs=()):
    """Decorator: register the decorated reference function as the exercise
    ``name`` (its docstring is the exercise's statement of conventions) and
    return the function unchanged. ``scalar_outputs`` names the outputs that
    are numbers rather than arrays (shape ``()``)."""
    def wrap(reference):
        if name in _REGISTRY:
            raise ValueError(f"register: expected a new exercise name, got {name!r}, "
                             "which is registered already")
        _REGISTRY[name] = Exercise(name=name, reference=reference, cases=cases,
                                   args=tuple(args), outputs=tuple(outputs),
                                   diagnosers=tuple(diagnosers), chapter=chapter,
                                   doc=(reference.__doc__ or "").strip(),
                                   scalar_outputs=tuple(scalar_outputs))
        return reference
    return wrap


def names() -> list:
    """The registered exercise names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Exercise:
    """The :class:`Exercise` registered under ``name``, or an
    :class:`UnknownExerciseError` that lists the known names."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownExerciseError(
            f"check: expected the name of an exercise, got {name!r}; the "
            f"exercises are: {', '.join(names())}")
    return _REGISTRY[name]


class CheckResult:
    """What ``check`` found: ``passed`` (bool), ``cases`` (how many cases
    ran, up to and including the first that failed), ``message`` (the text
    ``check`` prints), ``name``. Truthy exactly when the function passed."""

    def __init__(self, name: str, passed: bool, cases: int, message: str):
        self.name, self.passed, self.cases, self.message = name, passed, cases, message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return (f"CheckResult(name={self.name!r}, passed={self.passed}, "
                f"cases={self.cases})")

    def __str__(self) -> str:
        return self.message


# --- describing things in words -------------------------------------------
def _fmt(v) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.6g}"


def _describe(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _fmt(value)
    return type(value).__name__


def _describe_case(ex: Exercise, case: Case, number: int, total: int) -> str:
    args = ", ".join(f"{n} of {_describe(a)}" if isinstance(a, np.ndarray) else
                     f"{n} {_describe(a)}" for n, a in zip(ex.args, case.args))
    note = f"; {case.note}" if case.note else ""
    return f"case {number} of {total} ({args}{note})"


def _expected_kind(ex: Exercise, name: str, ref) -> str:
    if name in ex.scalar_outputs:
        return f"a number ({name})"
    return f"an array {name} of shape {np.shape(ref)}"


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _as_outputs(ex: Exercise, value):
    """The function's result as a list of outputs, or the reason it is not."""
    k = len(ex.outputs)
    if k == 1:
        if isinstance(value, tuple):
            return None, (f"it returned a tuple of {len(value)} items; expected "
                          f"one output ({ex.outputs[0]}), not a tuple")
        return [value], None
    if not isinstance(value, (tuple, list)):
        return None, (f"it returned {_what(value)}; expected a tuple of {k} "
                      f"outputs ({', '.join(ex.outputs)})")
    if len(value) != k:
        return None, (f"it returned a tuple of {len(value)} items; expected "
                      f"{k} outputs ({', '.join(ex.outputs)})")
    return list(value), None


def _what(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _to_array(value):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _close(got, exp) -> bool:
    return got.shape == exp.shape and bool(np.allclose(got, exp, rtol=RTOL, atol=ATOL,
                                                       equal_nan=False))


def _first_difference(got, exp):
    bad = ~np.isclose(got, exp, rtol=RTOL, atol=ATOL)
    idx = np.argwhere(bad)[0] if got.ndim else ()
    return tuple(int(i) for i in idx), int(bad.sum())


def _run_variant(fn, args):
    try:
        with np.errstate(all="ignore"):
            out = fn(*_copy(args))
    except Exception:                    # a variant that does not apply here
        return None
    return out if isinstance(out, tuple) else (out,)


def _causes(ex: Exercise, case: Case, i: int, got_raw, got_list, exp_list) -> list:
    """The diagnosers whose wrong answer the learner's output ``i`` matches."""
    name = ex.outputs[i]
    found = []
    for d in ex.diagnosers:
        if d.outputs and name not in d.outputs:
            continue
        hit = False
        if d.variant is not None:
            out = _run_variant(d.variant, case.args)
            if out is not None and i < len(out):
                v = out[i]
                if v is None or got_raw is None:
                    hit = v is None and got_raw is None
                else:
                    va, ga = _to_array(v), _to_array(got_raw)
                    hit = (va is not None and ga is not None and _close(ga, va)
                           and not _close(va, exp_list[i]))
        if not hit and d.test is not None:
            try:
                hit = bool(d.test(case.args, got_list, exp_list))
            except Exception:
                hit = False
        if hit and d.cause not in found:
            found.append(d.cause)
    return found


def _compare(ex: Exercise, case: Case, outs: list, refs: list):
    """``None`` when every output agrees, else the lines saying what differs:
    for each output that differs, where and how, and the known mistakes its
    value matches."""
    got_arrays = [_to_array(o) if o is not None else None for o in outs]
    exps = [np.asarray(r, dtype=np.float64) for r in refs]
    lines, diagnosed = [], False
    for i, (name, got, ref) in enumerate(zip(ex.outputs, outs, refs)):
        exp, ga = exps[i], got_arrays[i]
        if got is None or ga is None:
            lines.append(f"output {name}: expected {_expected_kind(ex, name, ref)}, "
                         f"got {_what(got)}")
        elif ga.shape != exp.shape:
            if name in ex.scalar_outputs:
                lines.append(f"output {name}: expected a number, got an array of "
                             f"shape {ga.shape}")
            else:
                lines.append(f"output {name}: expected shape {exp.shape}, got "
                             f"{ga.shape}")
        elif _close(ga, exp):
            continue
        else:
            idx, count = _first_difference(ga, exp)
            where = f" at index {idx}" if idx else ""
            e_s, g_s = _fmt(exp[idx]), _fmt(ga[idx])
            if e_s == g_s:                  # they differ beyond 6 digits: show more
                e_s, g_s = f"{float(exp[idx]):.12g}", f"{float(ga[idx]):.12g}"
            lines.append(f"output {name}{where}: expected {e_s}, got "
                         f"{g_s}" + (f" ({count} of {exp.size} entries "
                                     "differ)" if exp.size > 1 else ""))
        causes = _causes(ex, case, i, got, got_arrays, exps)
        low = getattr(got, "dtype", None) in (np.float32, np.float16)
        if low and ga.shape == exp.shape and np.allclose(ga, exp, rtol=1e-3, atol=1e-6):
            causes.append(f"your output is {got.dtype}: nnlib (and this check) "
                          "works in float64; do not convert to a lower precision")
        lines.extend("likely cause: " + c for c in causes)
        diagnosed = diagnosed or bool(causes)
    if not lines:
        return None
    if not diagnosed:
        lines.append("no known mistake matches this output; compare your "
                     "formula with the chapter's, term by term")
    return lines


_SHAPE = re.compile(r"\((?:\d+, )+\d*\)")


def _wrap(lines: list) -> str:
    """Wrap at 76 characters, never inside a shape such as (4, 3)."""
    out = []
    for line in lines:
        line = _SHAPE.sub(lambda m: m.group().replace(" ", "\0"), line)
        out.extend(w.replace("\0", " ") for w in
                   textwrap.wrap(line, 76, subsequent_indent="    ",
                                 break_on_hyphens=False) or [""])
    return "\n".join(out)


def check(name: str, fn, *, seed: int = 0, verbose: bool = True) -> CheckResult:
    """Run ``fn`` on the exercise ``name``'s random cases and compare it with
    nnlib's own answer.

    Returns a :class:`CheckResult` (truthy when every case passed) and, with
    ``verbose``, prints its message: "passed on k cases", or the first case
    that failed, which output, the first index that differs, expected against
    got, and the likely cause when the output matches a known mistake. The
    message never shows the solution. The same ``seed`` gives the same cases
    and the same message. ``fn`` raising, returning None or an output of the
    wrong shape or type is reported in the message, not raised; an unknown
    ``name`` raises :class:`UnknownExerciseError`, a ``fn`` that is not
    callable raises ``TypeError``."""
    ex = get(name)
    if not callable(fn):
        raise TypeError(f"check: expected a function for {name!r} (define it with "
                        f"def {name}({', '.join(ex.args)}): ...), got {_what(fn)}")
    cases = ex.cases(np.random.default_rng(seed))
    total = len(cases)
    for k, case in enumerate(cases, start=1):
        ref = ex.reference(*_copy(case.args))
        refs = list(ref) if len(ex.outputs) > 1 else [ref]
        where = _describe_case(ex, case, k, total)
        try:
            with np.errstate(all="ignore"):
                got = fn(*_copy(case.args))
        except NotImplementedError:
            lines = [f"{name}: not yet. Your function raised NotImplementedError "
                     f"on {where}: write its body and run the cell again."]
            return _result(name, False, k, lines, verbose)
        except Exception as e:           # the learner's bug, reported in words
            lines = [f"{name}: not yet. Your function raised {type(e).__name__} on "
                     f"{where}: {e}"]
            if isinstance(e, ValueError) and any(
                    w in str(e) for w in ("matmul", "broadcast", "shapes", "aligned")):
                lines.append("  likely cause: the shapes of a product or a sum do "
                             "not fit; write each array's shape next to the formula")
            return _result(name, False, k, lines, verbose)
        if got is None:
            kinds = [_expected_kind(ex, n, r) for n, r in zip(ex.outputs, refs)]
            kinds = kinds[0] if len(kinds) == 1 else (
                f"a tuple ({', '.join(ex.outputs)}) of " + ", ".join(kinds[:-1])
                + " and " + kinds[-1])
            lines = [f"{name}: not yet. Your function returned None on {where}; "
                     f"expected {kinds}. Write its body (and return the result), "
                     "then run the cell again."]
            return _result(name, False, k, lines, verbose)
        outs, problem = _as_outputs(ex, got)
        if problem:
            return _result(name, False, k, [f"{name}: not yet. On {where} " + problem],
                           verbose)
        diff = _compare(ex, case, outs, refs)
        if diff:
            lines = [f"{name}: not yet. On {where}:"] + ["  " + d for d in diff]
            return _result(name, False, k, lines, verbose)
    notes = sorted({c.note for c in cases if c.note})
    extra = f" (including {', '.join(notes)})" if notes else ""
    return _result(name, True, total, [f"{name}: passed on {total} cases{extra}."], verbose)


def _result(name, passed, cases, lines, verbose) -> CheckResult:
    message = _wrap(lines)
    if verbose:
        print(message)
    return CheckResult(name, passed, cases, message)
