"""Each notebook runs from a fresh kernel in under 120 s (or the budget its
metadata ``nnbook.budget_s`` names, where an issue allows more) and prints the
same numbers on every run. ``make test`` runs the notebooks under nbval first;
the repository's conftest.py records what they printed, and this test runs each
notebook once more, timed, and compares (run alone, it runs each notebook twice).

The timed run, once it agrees, goes into the build's execution cache
(``_build/.jupyter_cache``, the ``execute.cache`` of ``_config.yml``), so that a
``make book`` after ``make test`` shows these outputs instead of executing every
notebook a third time. A notebook whose code changed afterwards no longer
matches its cache entry (the key hashes the code cells) and is executed again.
"""
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from printed import printed, shown_outputs

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
BUDGET_S = 120
os.environ["TQDM_DISABLE"] = "1"   # progress bars are for live readers; the kernel inherits this
os.environ.pop("MPLBACKEND", None)    # kernels use the inline backend, as for a reader


CACHE = ROOT / "_build" / ".jupyter_cache"
PRINTED = ROOT / "_build" / ".printed"      # written by the nbval run (conftest.py)


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


def printed_of(nb):
    return printed([shown_outputs(c, c.get("outputs", []))
                    for c in nb.cells if c.cell_type == "code"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_fast_and_deterministic(path):
    """One timed run, compared with the text the nbval run printed (make test
    runs nbval first); without that record, two timed runs."""
    first, seconds = run(path)
    record = PRINTED / (path.stem + ".txt")
    if record.exists() and record.stat().st_mtime > path.stat().st_mtime:
        other, how = record.read_text(), "the nbval run"
        print(f"{path.name}: {seconds:.1f} s")
    else:
        second, seconds2 = run(path)
        other, how = printed_of(second), "a second run"
        print(f"{path.name}: {seconds:.1f} s, {seconds2:.1f} s")
        seconds = max(seconds, seconds2)
    limit = budget(first)
    assert seconds < limit, f"{path.name} took {seconds:.0f} s, over its {limit} s"
    assert printed_of(first) == other, f"{path.name} printed different numbers than {how}"
    share_with_the_build(first, path, seconds)


def test_printed_ignores_how_the_stream_was_chunked():
    def nb_with(*chunks):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=t) for t in chunks])]
        return nb

    assert printed_of(nb_with("a\nb\n")) == printed_of(nb_with("a\n", "b\n"))
    assert printed_of(nb_with("a\nb\n")) != printed_of(nb_with("a\n\nb\n"))


def test_printed_is_the_same_for_nbval_and_nbclient_outputs():
    """nbval merges a cell's streams before its displays; nbclient keeps the
    order they came in. Both give the same text; a changed number does not."""
    new = nbformat.v4.new_output
    shown = new("display_data", data={"text/plain": "<Figure>"})
    as_run = [new("stream", name="stdout", text="x = 1\n"), shown,
              new("stream", name="stdout", text="y = 2\n")]
    as_nbval = [new("stream", name="stdout", text="x = 1\ny = 2\n"), shown]
    assert printed([as_run]) == printed([as_nbval])
    changed = [new("stream", name="stdout", text="x = 1\ny = 3\n"), shown]
    assert printed([as_run]) != printed([changed])


def test_widget_cells_do_not_count():
    """A live widget's output lands in the widget under nbclient and in the
    cell under nbval; cells tagged remove-output (the widget cells) are skipped."""
    cell = nbformat.v4.new_code_cell(metadata={"tags": ["remove-output"]})
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    assert shown_outputs(cell, [figure]) == []
    assert shown_outputs(nbformat.v4.new_code_cell(), [figure]) == [figure]
