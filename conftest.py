"""Repository-wide pytest hooks. Under ``pytest --nbval-lax book/`` (``make
test``), record what each notebook printed into ``_build/.printed/NAME.txt``;
``tests/test_notebooks.py`` then runs each notebook once more and requires the
same text (rule 3: the same printed numbers every run)."""
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))
from printed import printed, shown_outputs  # noqa: E402  (tests/printed.py)

PRINTED = ROOT / "_build" / ".printed"
_runs = defaultdict(list)
_failed = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or not hasattr(item, "test_outputs"):
        return
    path = Path(str(item.fspath))
    _runs[path].append(shown_outputs(item.cell, item.test_outputs or []))
    if outcome.get_result().failed:
        _failed.add(path)


def pytest_sessionfinish(session, exitstatus):
    if not _runs:
        return
    PRINTED.mkdir(parents=True, exist_ok=True)
    for path, cells in _runs.items():
        target = PRINTED / (path.stem + ".txt")
        if path in _failed:
            target.unlink(missing_ok=True)
        else:
            target.write_text(printed(cells))
