"""The page-weight report of the browser test. The pages run on several
pytest-xdist workers (`make browser-test`), each test writes its page's row to
_build/page-weights/, and the process that started the session (the
controller, or the only process without xdist) writes the table when every
worker is done."""
import json
import shutil

from .test_pages import MAX_PAGE_BYTES, REPORT, WEIGHTS


def _is_controller(session):
    return not hasattr(session.config, "workerinput")


def pytest_sessionstart(session):
    if _is_controller(session):
        shutil.rmtree(WEIGHTS, ignore_errors=True)
        REPORT.unlink(missing_ok=True)


def pytest_sessionfinish(session, exitstatus):
    if not _is_controller(session) or not WEIGHTS.is_dir():
        return
    rows = {}
    for f in WEIGHTS.glob("*.json"):
        name, size, count, ms = json.loads(f.read_text())
        rows[name] = (size, count, ms)
    if not rows:
        return
    lines = [f"{'page':<34} {'weight':>9} {'requests':>8} {'load':>8}"]
    for name, (size, count, ms) in sorted(rows.items()):
        lines.append(f"{name:<34} {size / 2**20:>6.2f} MB {count:>8} {ms:>5.0f} ms")
    total = sum(r[0] for r in rows.values())
    lines.append(f"{len(rows)} pages; heaviest {max(r[0] for r in rows.values()) / 2**20:.2f} MB"
                 f" (limit {MAX_PAGE_BYTES / 2**20:.0f} MB); mean "
                 f"{total / len(rows) / 2**20:.2f} MB; slowest load "
                 f"{max(r[2] for r in rows.values()):.0f} ms")
    REPORT.write_text("\n".join(lines) + "\n")
