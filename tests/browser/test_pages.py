"""Open every built page in headless Debian chromium, with the network closed.

Fails on console errors, page errors, failed requests, any request that leaves
the machine, maths that MathJax did not typeset, mermaid diagrams left as text,
code blocks or formulas wider than the text column (a sideways scroll bar hides
their end), images that did not load, chapters without Binder and Colab
launch buttons to their notebook, and pages heavier than 5 MB. Measures each
page's weight (the HTML and everything it loads) and load time, writes them to
_build/page-weights.txt (`make browser-test` prints the table), and saves a
full-page screenshot of each page in _build/screenshots/ for a person to look at.
Run with `make browser-test` after `make book`.
"""
import functools
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
REPORT = ROOT / "_build" / "page-weights.txt"
WEIGHTS = ROOT / "_build" / "page-weights"
MAX_PAGE_BYTES = 5 * 1024 * 1024
# how long to wait for what a check needs (the redirect of index.html, the
# images): a wait, not a check. The tests wait for those, not for the network
# to go quiet: in two full runs on 2026-12-04, section 5c's page never went a
# whole 500 ms without a request beside another chromium worker (alone it does
# in about 5 s), though everything the checks look at had loaded
IDLE_MS = 90_000
IMAGES_LOADED = "() => [...document.images].every(i => i.complete)"
CHROMIUM = "/usr/bin/chromium"
# every page a reader can open (not the theme's template fragments under _static/)
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if "_static" not in p.parts) if HTML.exists() else []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("no built book: run `make book` first")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run `make system-deps` (Debian's chromium package)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def weights():
    """Collects (page, bytes, requests, load ms), one file per page under
    _build/page-weights/: `make browser-test` runs the pages on several
    workers, and tests/browser/conftest.py writes the report from all the
    files when the session ends."""
    class Rows(dict):
        def __setitem__(self, name, row):
            WEIGHTS.mkdir(parents=True, exist_ok=True)
            (WEIGHTS / (name.replace("/", "__") + ".json")).write_text(
                json.dumps([name, *row]))
            super().__setitem__(name, row)
    return Rows()


def page_weight(page) -> tuple[int, int, float]:
    """Bytes of the document and every resource it loaded, their number, and
    the time from navigation to the end of the load event (ms). Served
    uncompressed from disk, so the weight is what a reader downloads from a
    static host without compression, and the time is mostly parsing and
    rendering."""
    return tuple(page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation').at(-1);
        const res = performance.getEntriesByType('resource');
        const bytes = nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0);
        return [bytes, res.length + 1, nav.loadEventEnd - nav.startTime]; }"""))


def test_pages_were_found():
    assert "index.html" in PAGES and len(PAGES) >= 5, PAGES


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_offline(page_path, server, browser, weights):
    problems = []
    context = browser.new_context(viewport={"width": 1200, "height": 900})

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            problems.append(f"request leaves the machine: {r.request.url}")
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))

    page.goto(f"{server}/{page_path}", wait_until="load")
    if page_path == "index.html":           # it redirects to the first chapter
        page.wait_for_load_state("networkidle", timeout=IDLE_MS)
    has_math = page.evaluate("() => document.querySelectorAll('.math').length")
    if has_math:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=15000)
        page.evaluate("() => MathJax.startup.promise")
        raw = page.evaluate("""() => [...document.querySelectorAll('.math')]
            .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))""")
        if raw:
            problems.append(f"{len(raw)} formula(s) not typeset, e.g. {raw[:3]}")
        errors = page.evaluate("() => document.querySelectorAll('mjx-merror, [data-mjx-error]').length")
        if errors:
            problems.append(f"{errors} MathJax error(s) in formulas")
    raw_tex = page.evaluate(r"""() => {
        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        const bad = [];
        while (walk.nextNode()) {
            const n = walk.currentNode;
            if (n.parentElement.closest('pre, code, script, style, .math, mjx-container, mjx-assistive-mml')) continue;
            if (/\\(mathbf|frac|hat|sum|partial|delta)\b|\$\$/.test(n.textContent)) bad.push(n.textContent.trim().slice(0, 60));
        }
        return bad; }""")
    if raw_tex:
        problems.append(f"TeX outside maths (a markdown slip?): {raw_tex[:3]}")
    text_figures = page.evaluate(r"""() => [...document.querySelectorAll('.output, .cell_output, figure')]
        .filter(e => /<Figure size \d+x\d+/.test(e.textContent)).length""")
    if text_figures:
        problems.append(f"{text_figures} figure(s) shown as '<Figure size ...>' text, not an image")
    raw_mermaid = page.evaluate("""() => [...document.querySelectorAll('.mermaid, pre.mermaid')]
        .filter(e => /^\\s*(graph|flowchart)/.test(e.textContent)).length""")
    if raw_mermaid:
        problems.append(f"{raw_mermaid} mermaid diagram(s) left as source text")
    overflow = page.evaluate("""() => [...document.querySelectorAll(
            'article div.highlight pre, article div.math, article mjx-container[display="true"]')]
        .filter(e => e.scrollWidth > e.clientWidth + 2)
        .map(e => e.textContent.trim().slice(0, 50))""")
    if overflow:
        problems.append(f"{len(overflow)} code block(s) or formula(s) wider than the "
                        f"text column at 1200 px: {overflow[:3]}")
    page.wait_for_function(IMAGES_LOADED, timeout=IDLE_MS)
    broken = page.evaluate("""() => [...document.images]
        .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))""")
    if broken:
        problems.append(f"images that did not load: {broken}")
    notebook = ROOT / page_path.replace(".html", ".ipynb")
    if notebook.exists():               # a chapter: its launch buttons open it
        hrefs = page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)")
        stem = f"book/{notebook.name}"
        for service in ("mybinder.org/v2/gh/", "colab.research.google.com/github/"):
            if not any(service in h and h.endswith(stem) for h in hrefs):
                problems.append(f"no launch button to {service} for {stem}")
    size, count, load_ms = page_weight(page)
    weights[page_path] = (size, count, load_ms)
    if size > MAX_PAGE_BYTES:
        problems.append(f"page weighs {size / 2**20:.1f} MB with {count} requests "
                        f"(limit {MAX_PAGE_BYTES / 2**20:.0f} MB)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__") + ".png")), full_page=True)
    context.close()
    assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)
