"""Sphinx extension: keep every page of the book self-contained and its console clean.

* Drops sphinx-thebe's scripts. Thebe ("live code" in the page) needs a Jupyter
  server on the network, which an offline book cannot offer; Jupyter Book 1.0
  also registers thebe's inline config twice, a console error on every page.
  Readers run the notebooks live in JupyterLab instead (`make lab`).
* Points require.js at the vendored widget manager, so that the fonts and
  chunks @jupyter-widgets/html-manager loads come from _static/html-manager/
  rather than a path relative to the page.
"""
from sphinx.application import Sphinx

MANAGER = "html-manager/embed-amd.js"


def _filename(js) -> str:
    return getattr(js, "filename", None) or ""


def _is_thebe(js) -> bool:
    body = getattr(js, "attributes", {}).get("body", "") or ""
    return _filename(js).endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def tidy_scripts(app: Sphinx, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = [js for js in scripts if not _is_thebe(js)]
    for i, js in enumerate(kept):
        if _filename(js).endswith(MANAGER):
            from sphinx.builders.html._assets import _JavaScript

            target = context["pathto"]("_static/html-manager", 1)
            config = _JavaScript(None, body='require.config({paths: {"@jupyter-widgets/'
                                           f'html-manager/dist": "{target}"}}}});')
            kept.insert(i, config)
            break
    scripts[:] = kept


def setup(app: Sphinx):
    app.connect("html-page-context", tidy_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
