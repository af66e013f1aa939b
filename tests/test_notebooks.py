"""Each notebook runs from a fresh kernel in under 120 s (or the budget its
metadata ``nnbook.budget_s`` names, where an issue allows more) and prints the
same numbers twice in a row. (make test also runs them once more under nbval.)

The second run, once both agree, goes into the build's execution cache
(``_build/.jupyter_cache``, the ``execute.cache`` of ``_config.yml``), so that a
``make book`` after ``make test`` shows these outputs instead of executing every
notebook a fourth time. A notebook whose code changed afterwards no longer
matches its cache entry (the key hashes the code cells) and is executed again.
"""
import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
BUDGET_S = 120
os.environ["TQDM_DISABLE"] = "1"   # progress bars are for live readers; the kernel inherits this
os.environ.pop("MPLBACKEND", None)    # kernels use the inline backend, as for a reader


CACHE = ROOT / "_build" / ".jupyter_cache"


def budget(nb) -> float:
    """120 s, or the notebook's own ``metadata.nnbook.budget_s`` (at most 180)."""
    own = nb.metadata.get("nnbook", {}).get("budget_s", BUDGET_S)
    assert BUDGET_S <= own <= 180, f"budget_s must be 120-180 s, got {own}"
    return own


def run(path):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # record_timing=False: timing metadata would change the cache key
    NotebookClient(nb, timeout=budget(nb), kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb, time.perf_counter() - start


def share_with_the_build(nb, path, seconds):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    get_cache(str(CACHE)).cache_notebook_bundle(
        CacheBundleIn(nb, str(path), data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)


def printed(nb):
    """Everything printed or shown as text, with memory addresses masked.

    A cell's printed text arrives in chunks whose boundaries depend on when the
    kernel flushed its stream, so stream chunks are joined as they are, and
    only whole outputs and cells are separated."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o.data:
                out.append("\n" + o.data["text/plain"] + "\n")
        out.append("\n")
    return re.sub(r"0x[0-9a-f]+", "0x…", "".join(out))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_fast_and_deterministic(path):
    first, seconds = run(path)
    second, seconds2 = run(path)
    print(f"{path.name}: {seconds:.1f} s, {seconds2:.1f} s")
    limit = budget(first)
    assert max(seconds, seconds2) < limit, (f"{path.name} took {max(seconds, seconds2):.0f} s, "
                                            f"over its {limit} s")
    assert printed(first) == printed(second), f"{path.name} printed different numbers on a rerun"
    share_with_the_build(second, path, seconds2)


def test_printed_ignores_how_the_stream_was_chunked():
    def nb_with(*chunks):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=t) for t in chunks])]
        return nb

    assert printed(nb_with("a\nb\n")) == printed(nb_with("a\n", "b\n"))
    assert printed(nb_with("a\nb\n")) != printed(nb_with("a\n\nb\n"))
