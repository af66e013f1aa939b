"""Sphinx extension: keep every page of the book self-contained and its console clean.

* Drops sphinx-thebe's scripts. Thebe ("live code" in the page) needs a Jupyter
  server on the network, which an offline book cannot offer; Jupyter Book 1.0
  also registers thebe's inline config twice, a console error on every page.
  Readers run the notebooks live in JupyterLab instead (`make lab`).
* Drops the widget manager (require.js and @jupyter-widgets/html-manager,
  3.6 MB) and the saved widget state from pages that show no widget. The
  chapters' live widgets sit in cells whose output the book removes (each
  has a static twin), but the executed notebook still carries their state,
  and myst-nb would load the manager for it on every such page: it made
  chapter 1 weigh 9 MB.
* Drops the theme's fontawesome.js (1.4 MB on every page): the theme's CSS
  already draws its icons with Font Awesome's web font; the script only turns
  them into inline SVGs and allows custom icon sets, which the book has none of.
* Points require.js at the vendored widget manager, so that the fonts and
  chunks @jupyter-widgets/html-manager loads come from _static/html-manager/
  rather than a path relative to the page.
"""
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

FONTAWESOME_JS = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')

MANAGER = "html-manager/embed-amd.js"


def _filename(js) -> str:
    return getattr(js, "filename", None) or ""


def _is_thebe(js) -> bool:
    body = getattr(js, "attributes", {}).get("body", "") or ""
    return _filename(js).endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_JS = ("requirejs/require.js", MANAGER)


def _is_unused_widget_js(js, body: str) -> bool:
    if WIDGET_VIEW in body:
        return False
    kind = getattr(js, "attributes", {}).get("type", "")
    return kind == WIDGET_STATE or _filename(js).endswith(WIDGET_JS)


def tidy_scripts(app: Sphinx, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    body = context.get("body") or ""
    kept = [js for js in scripts
            if not _is_thebe(js) and not _is_unused_widget_js(js, body)]
    for i, js in enumerate(kept):
        if _filename(js).endswith(MANAGER):
            from sphinx.builders.html._assets import _JavaScript

            target = context["pathto"]("_static/html-manager", 1)
            config = _JavaScript(None, body='require.config({paths: {"@jupyter-widgets/'
                                           f'html-manager/dist": "{target}"}}}});')
            kept.insert(i, config)
            break
    scripts[:] = kept


def drop_fontawesome_js(app: Sphinx, exception):
    """The theme's template writes this script tag itself, so it is removed
    from the written pages."""
    if exception or app.builder.format != "html":
        return
    changed = 0
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = FONTAWESOME_JS.sub("", text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    logging.getLogger(__name__).info(f"sphinx_offline: fontawesome.js dropped from {changed} pages")


def setup(app: Sphinx):
    app.connect("html-page-context", tidy_scripts, priority=900)
    app.connect("build-finished", drop_fontawesome_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
