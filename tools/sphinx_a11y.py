"""Sphinx extension: give the theme's controls and the diagrams accessible names.

axe-core (tests/browser/test_a11y.py) finds serious problems on every page
that come from the templates of sphinx-book-theme and pydata-sphinx-theme,
from myst-nb and from sphinxcontrib-mermaid, not from the chapters:

* The sidebar's expand/collapse toggles are ``<summary>`` elements holding
  only an icon (axe rule summary-name): a screen reader announces them as an
  unnamed "disclosure triangle". Each gets ``aria-label="Sections of
  <chapter title>"``.
* The search button says "Search Ctrl+K" but is named "Search" by its
  aria-label (label-content-name-mismatch: speech users say what they see).
  The aria-label is dropped, so its name is its visible text; its title
  still says "Search".
* myst-nb's "Show code cell source" toggles (hide-input cells) are named
  "Toggle hidden content" by their aria-label, which hides the visible
  text (label-content-name-mismatch again): the aria-label is dropped.
* sphinxcontrib-mermaid embeds an SVG diagram as ``<object>`` with its
  ``:alt:`` text (or the diagram's source) as fallback content, which
  assistive technology does not read as the object's name (object-alt). The
  object gets ``role="img"`` and that text as its ``aria-label``.

The written pages are rewritten when the build ends, as sphinx_offline does
with fontawesome.js: the templates themselves belong to the themes.
"""
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

TOGGLE = re.compile(r'(<a class="(?:current )?reference internal" href="[^"]*">(?P<title>[^<]*)</a>'
                    r"<details[^>]*>)<summary>(?=<span class=\"toctree-toggle\")")
CELL_TOGGLE = re.compile(r'<summary aria-label="Toggle hidden content">(?=\s*<p class="collapsed)')
SEARCH = re.compile(r'(<button class="btn search-button-field[^"]*"[^>]*?) aria-label="Search"')
MERMAID = re.compile(r'<object (data="[^"]*" type="image/svg\+xml")>\s*'
                     r'<p class="warning">(?P<alt>.*?)</p></object>', re.S)


def _mermaid(m) -> str:
    alt = " ".join(m.group("alt").split())
    return (f'<object {m.group(1)} role="img" aria-label="{alt}">'
            f'<p class="warning">{m.group("alt")}</p></object>')


def accessible(html: str) -> str:
    """The page with names on the toggles, the search button and the diagrams."""
    html = TOGGLE.sub(lambda m: f'{m.group(1)}<summary aria-label="Sections of '
                                f'{m.group("title")}">', html)
    html = SEARCH.sub(r"\1", html)
    html = CELL_TOGGLE.sub("<summary>", html)
    return MERMAID.sub(_mermaid, html)


def name_controls(app: Sphinx, exception):
    if exception or app.builder.format != "html":
        return
    changed = 0
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = accessible(text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    logging.getLogger(__name__).info(f"sphinx_a11y: controls and diagrams named on {changed} pages")


def setup(app: Sphinx):
    app.connect("build-finished", name_controls)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
