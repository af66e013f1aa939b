"""Repository-wide pytest hooks. Under ``pytest --nbval-lax book/`` (``make
test``), nbval's run of each notebook is also the timed run of rule 3: these
hooks record, per notebook, the seconds from the kernel's start to the end of
its last cell, the text it printed, and the executed notebook itself (nbval's
outputs put back into its cells), under ``_build/.printed/``.
``tests/test_notebooks.py`` then checks the budget and the determinism from
that record and hands the executed notebook to the build's cache, so that CI
executes every notebook once when nothing is amiss."""
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from printed import printed, shown_outputs  # noqa: E402  (tests/printed.py)

KERNELS = {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2",
           "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
           "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR"}

# the kernels inherit this process's environment: the inline backend, as for a
# reader, and no progress bars (they are for people at a live kernel)
os.environ.pop("MPLBACKEND", None)
os.environ["TQDM_DISABLE"] = "1"
# one thread each for NumPy's BLAS and for PyTorch, in the kernels and in the
# tests: `make test` runs two notebooks (or two test workers) at once on the
# two cores, and a thread count is part of the rounding path (1 and 2 threads
# print different digits in some chapters), so the records are made with 1
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_threads] = "1"
# and so is the instruction set: on x86-64 the records are made with AVX2
# kernels (OpenBLAS, PyTorch's ATen, oneDNN and MKL, NumPy's own loops); on a
# machine with AVX-512 each library would otherwise pick its AVX-512 kernels
# and print other last digits. The Makefile sets the same (KERNELS).
if platform.machine() in ("x86_64", "AMD64"):
    for _name, _value in KERNELS.items():
        os.environ.setdefault(_name, _value)

PRINTED = ROOT / "_build" / ".printed"
_runs = defaultdict(list)
_failed = set()
_start, _end, _notebooks = {}, {}, {}


def _is_cell(item):
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """The first cell's setup starts the notebook's kernel (nbval starts it
    in the file's setup): the clock starts before it."""
    if _is_cell(item):
        _start.setdefault(Path(str(item.fspath)), time.perf_counter())
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or not _is_cell(item) or item.test_outputs is None:
        return
    path = Path(str(item.fspath))
    _end[path] = time.perf_counter()
    _runs[path].append(shown_outputs(item.cell, item.test_outputs))
    item.cell.outputs = list(item.test_outputs)
    item.cell.execution_count = len(_runs[path])
    _notebooks[path] = item.parent.nb
    if outcome.get_result().failed:
        _failed.add(path)


def pytest_sessionfinish(session, exitstatus):
    if not _runs:
        return
    PRINTED.mkdir(parents=True, exist_ok=True)
    for path, cells in _runs.items():
        stem = PRINTED / path.stem
        for old in (".txt", ".json", ".ipynb"):
            stem.with_suffix(old).unlink(missing_ok=True)
        nb = _notebooks[path]
        code_cells = sum(c.cell_type == "code" for c in nb.cells)
        if path in _failed or len(cells) != code_cells:
            continue
        nbformat.write(nb, stem.with_suffix(".ipynb"))
        stem.with_suffix(".json").write_text(json.dumps(
            {"seconds": round(_end[path] - _start[path], 2)}))
        stem.with_suffix(".txt").write_text(printed(cells))   # written last: the marker
