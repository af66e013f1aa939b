"""axe-core on every built page, in the theme's light and dark mode.

Fails on every violation that axe rates serious or critical (missing alt
text, too little contrast, unlabelled controls, ...), naming the page, the
mode, the rule and the first offending nodes. The light mode runs every rule,
the dark mode those that look at colours (the structure is the same). axe-core is vendored from the
npm registry (package.json pins it; `npm ci` installs it) and injected from
node_modules/: nothing is loaded from a CDN. The dark mode is the one the
theme's toggle sets (pydata-sphinx-theme keeps the reader's choice in
localStorage "mode" and "theme" and puts it on <html data-theme>). A few
pages are also saved in both modes under _build/screenshots/ (``SHOWN``)
for a person to look at.
Run with `make browser-test` after `make book`.
"""
import json
from urllib.parse import urlparse

import pytest

from .test_pages import (IDLE_MS, IMAGES_LOADED, PAGES, ROOT, SHOTS,  # noqa: F401
                         browser, server)

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
MODES = ("light", "dark")
FAILING = ("serious", "critical")
# the page's structure is the same in both modes, its colours are not: the dark
# mode runs only the rules that look at colours (a third less time per page)
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
# pages whose screenshots in both modes a person looks at: prose, figures, a table
SHOWN = {"book/01-concepts.html", "book/03-training.html", "book/glossary.html",
         "book/05c-attention.html"}
NODES_SHOWN = 3


def _context(browser, mode):  # noqa: F811 (the fixture)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(
        f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")

    def route(r):       # the network stays closed, as in test_pages
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    return context


def axe_violations(page, rules=None) -> list[dict]:
    """axe's violations on the open page, serious and critical ones only
    (of every rule, or of ``rules``)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async (rules) => {
        const options = {resultTypes: ['violations']};
        if (rules) options.runOnly = rules;
        const r = await axe.run(document, options);
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '),
                                      html: n.html.slice(0, 160),
                                      summary: (n.failureSummary || '').slice(0, 200)}))}));
    }""", rules)
    return [v for v in result if v["impact"] in FAILING]


def describe(page_path, mode, violations) -> str:
    lines = [f"{page_path} ({mode} mode): {len(violations)} serious/critical axe violation(s)"]
    for v in violations:
        lines.append(f"  {v['id']} [{v['impact']}] {v['help']}: {len(v['nodes'])} node(s)")
        for n in v["nodes"][:NODES_SHOWN]:
            lines.append(f"    {n['target']}: {n['html']}")
            if n["summary"]:
                lines.append(f"      {n['summary'].splitlines()[-1].strip()}")
    return "\n".join(lines)


def test_axe_is_vendored():
    assert AXE.exists(), f"{AXE} missing: run `npm ci` (package.json pins axe-core)"
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["axe-core"]
    installed = json.loads((AXE.parent / "package.json").read_text())["version"]
    assert pinned == installed, f"package.json pins axe-core {pinned}, node_modules has {installed}"


def test_describe_names_page_rule_and_nodes():
    """The negative control of the report: a made-up violation is listed with
    its page, mode, rule and first nodes, and no more nodes than NODES_SHOWN."""
    fake = [{"id": "image-alt", "impact": "critical", "help": "Images must have alternative text",
             "nodes": [{"target": f"img:nth-child({i})", "html": f"<img src='{i}.png'>",
                        "summary": "Fix any of the following:\n  Element has no alt attribute"}
                       for i in range(5)]}]
    text = describe("x.html", "dark", fake)
    assert "x.html (dark mode)" in text and "image-alt [critical]" in text
    assert "img:nth-child(0)" in text and f"img:nth-child({NODES_SHOWN})" not in text
    assert "Element has no alt attribute" in text


def _show(page, mode):
    """Switch the open page to ``mode`` the way the theme's toggle does (the
    reader's choice in localStorage, the theme on <html data-theme>)."""
    # the theme animates its colours: without this, axe can read a colour
    # half-way between the two modes (it once found the search button on a
    # background neither mode has)
    page.add_style_tag(content="*, *::before, *::after { transition: none !important; "
                               "animation: none !important; }")
    page.evaluate("""(mode) => {
        localStorage.setItem('mode', mode); localStorage.setItem('theme', mode);
        document.documentElement.dataset.mode = mode;
        document.documentElement.dataset.theme = mode;
    }""", mode)
    page.wait_for_timeout(200)           # let the styles apply


@pytest.mark.parametrize("page_path", PAGES)
def test_page_has_no_serious_axe_violations(page_path, server, browser):  # noqa: F811
    """Each page is loaded once, in light mode as the reader first sees it,
    checked with every rule, then switched to dark mode and checked with the
    colour rules: a page load and its MathJax typesetting are most of the
    cost, so both modes share them."""
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: run `npm ci`")
    context = _context(browser, MODES[0])
    page = context.new_page()
    page.goto(f"{server}/{page_path}", wait_until="load")
    if page_path == "index.html":           # it redirects to the first chapter
        page.wait_for_load_state("networkidle", timeout=IDLE_MS)
    page.wait_for_function(IMAGES_LOADED, timeout=IDLE_MS)
    if page.evaluate("() => document.querySelectorAll('.math').length"):
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=15000)
        page.evaluate("() => MathJax.startup.promise")
    found = {}
    for mode in MODES:
        if mode != MODES[0]:
            _show(page, mode)
        theme = page.evaluate("() => document.documentElement.dataset.theme")
        assert theme == mode, f"{page_path}: the page shows data-theme={theme!r}, not {mode!r}"
        found[mode] = axe_violations(page, COLOUR_RULES if mode == "dark" else None)
        if page_path in SHOWN:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{mode}__{page_path.replace('/', '__')}.png"),
                            full_page=True)
    context.close()
    bad = [describe(page_path, m, v) for m, v in found.items() if v]
    assert not bad, "\n".join(bad)


def test_a_page_switched_to_dark_is_dark(server, browser):  # noqa: F811
    """The switch above changes what the reader sees: the page's background
    is dark after it (the control: light before)."""
    context = _context(browser, "light")
    page = context.new_page()
    page.goto(f"{server}/{PAGES[1]}", wait_until="load")
    bg = "() => getComputedStyle(document.body).backgroundColor"
    luminance = lambda c: sum(int(x) for x in c[c.index("(") + 1:c.index(")")].split(",")[:3])
    light = luminance(page.evaluate(bg))
    _show(page, "dark")
    dark = luminance(page.evaluate(bg))
    context.close()
    assert light > 600 and dark < 200, (light, dark)


def _animation_page(alt):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    from nnlib.viz import animations

    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    line, = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    html = animations.animation_html(anim, alt=alt).data
    plt.close(fig)
    return (f'<!DOCTYPE html><html lang="en"><head><title>animation</title></head>'
            f"<body><main><h1>An animation</h1>{html}</main></body></html>")


@pytest.mark.parametrize("mode", MODES)
def test_animation_html_passes_axe(mode, browser):  # noqa: F811
    """The chapters' animations (nnlib.viz.animations) are HTML that only an
    executed build shows: axe checks one here, with its alt text, and
    without it as the negative control (axe must then report image-alt)."""
    context = _context(browser, mode)
    page = context.new_page()
    page.set_content(_animation_page("A line that tilts up, frame by frame."))
    assert not axe_violations(page), describe("animation_html", mode, axe_violations(page))
    page.set_content(_animation_page(None))
    assert "image-alt" in [v["id"] for v in axe_violations(page)]
    context.close()
