"""Every figure of the book has alternative text, for readers who cannot see it.

* A ``{glue:figure}``, ``{figure}``, ``{image}`` or ``{mermaid}`` directive
  has an ``:alt:`` option: what the figure shows and its take-away, in words
  (myst-nb puts it on the glued image's ``alt``; tools/sphinx_a11y.py makes
  it a diagram's accessible name, which would otherwise be its source). A glued animation is HTML, not an image, so
  its text is the ``alt=`` of the ``nnlib.viz.animations`` call that makes
  it; such a figure's directive needs no ``:alt:``.
* Every call of ``animation_html``, ``playground_animation`` or
  ``lstm_animation`` in a chapter passes ``alt=``, glued or shown directly.
* A markdown image ``![alt](src)`` has a non-empty alt, an HTML ``<img>`` an
  ``alt`` attribute.

The browser test (tests/browser/test_a11y.py, axe-core) checks the built
pages too, but only an executed build has the figures; this test reads the
sources. The parser is checked on made-up text first (a negative control).
"""
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.book
ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))

DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>glue:figure|figure|image|mermaid)\}[ \t]*"
                       r"(?P<arg>[^\n]*)\n(?P<options>(?::[\w-]+:[^\n]*\n)*)", re.M)
MD_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\([^)]*\)")
HTML_IMG = re.compile(r"<img\b[^>]*>", re.I)
ANIMATION_CALL = re.compile(r"animations\.(animation_html|playground_animation|lstm_animation)\(")
GLUE_CALL = re.compile(r"\bglue\(\s*[\"'](?P<key>[^\"']+)[\"']")
MIN_WORDS = 8        # "A plot." tells nothing: a sentence that says what is seen


def _call_args(src: str, open_paren: int) -> str:
    """The text between the parenthesis at ``open_paren`` and its match."""
    depth = 0
    for i in range(open_paren, len(src)):
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        if depth == 0:
            return src[open_paren + 1:i]
    raise ValueError(f"unbalanced parenthesis in {src[open_paren:open_paren + 60]!r}")


def animation_keys(code: str) -> set[str]:
    """Glue keys whose value a nnlib.viz.animations call makes (HTML, not an image)."""
    keys = set()
    for m in GLUE_CALL.finditer(code):
        if ANIMATION_CALL.search(_call_args(code, code.index("(", m.start()))):
            keys.add(m.group("key"))
    return keys


def animation_calls_without_alt(code: str) -> list[str]:
    return [m.group(0) for m in ANIMATION_CALL.finditer(code)
            if not re.search(r"\balt\s*=", _call_args(code, m.end() - 1))]


def missing_alt(markdown: str, animations: frozenset = frozenset()) -> list[str]:
    """The figures and images in ``markdown`` that have no (or too short) alt text."""
    problems = []
    for m in DIRECTIVE.finditer(markdown):
        what = f"{{{m.group('name')}}} {m.group('arg').strip()}"
        if m.group("name") == "glue:figure" and m.group("arg").strip() in animations:
            continue                        # the animation call carries it
        alt = re.search(r"^:alt:[ \t]*(.*)$", m.group("options"), re.M)
        if not alt or not alt.group(1).strip():
            problems.append(f"{what}: no :alt:")
        elif len(alt.group(1).split()) < MIN_WORDS:
            problems.append(f"{what}: :alt: of fewer than {MIN_WORDS} words")
    for m in MD_IMAGE.finditer(markdown):
        if not m.group("alt").strip():
            problems.append(f"{m.group(0)[:60]}: empty alt")
    for m in HTML_IMG.finditer(markdown):
        if not re.search(r"\balt\s*=\s*[\"'][^\"']+[\"']", m.group(0)):
            problems.append(f"{m.group(0)[:60]}: <img> without alt")
    return problems


def test_the_parser_finds_figures_without_alt_text():
    """Negative control: each kind of figure without alt text is reported;
    with alt text, or as a glued animation, it is not."""
    alt = ":alt: A line chart of the loss against the epoch, falling steadily.\n"
    bad = ("```{glue:figure} fig-a\n:name: fig-a\n\nCaption.\n```\n\n"
           ":::{figure} pic.png\n:width: 50%\n\nCaption.\n:::\n\n"
           "```{glue:figure} fig-b\n:alt: A plot.\n```\n\n"
           "```{mermaid}\ngraph LR\n    A --> B\n```\n\n"
           "![](pic.png) and <img src='x.png'>\n")
    found = missing_alt(bad)
    assert len(found) == 6, found
    assert any(f.startswith("{mermaid}") for f in found)
    assert any("fig-b" in f and "fewer than" in f for f in found)
    good = (f"```{{glue:figure}} fig-a\n:name: fig-a\n{alt}\nCaption.\n```\n\n"
            f":::{{figure}} pic.png\n{alt}:width: 50%\n\nCaption.\n:::\n\n"
            "```{glue:figure} anim-x\n:name: anim-x\n\nCaption.\n```\n"
            f"```{{mermaid}}\n{alt}graph LR\n    A --> B\n```\n"
            "![A chart of the loss](pic.png) and <img src='x.png' alt='A chart'>\n")
    assert missing_alt(good, frozenset({"anim-x"})) == []
    assert missing_alt(good) == ["{glue:figure} anim-x: no :alt:"]
    code = ('x = 1\nglue("anim-x", animations.animation_html(\n    anim, fps=3), display=False)\n'
            'glue("anim-y", animations.lstm_animation(a, b, alt=t), display=False)\n'
            'glue("n", f"{x}", display=False)\n'
            'animations.playground_animation(run)\n')
    assert animation_keys(code) == {"anim-x", "anim-y"}
    assert animation_calls_without_alt(code) == ["animations.animation_html(",
                                                 "animations.playground_animation("]


def _markdown_and_code(path: Path) -> tuple[str, str]:
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8"), ""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = {kind: "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == kind)
            for kind in ("markdown", "code")}
    return text["markdown"], text["code"]


def test_there_are_figures_to_check():
    figures = sum(len(DIRECTIVE.findall(_markdown_and_code(p)[0])) for p in SOURCES)
    assert figures >= 50, figures


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_every_figure_has_alt_text(source):
    markdown, code = _markdown_and_code(source)
    problems = missing_alt(markdown, frozenset(animation_keys(code)))
    problems += [f"code: {call}...) without alt=" for call in animation_calls_without_alt(code)]
    assert not problems, (f"{source.name}: figures without alternative text (say what the "
                          "figure shows and its take-away):\n  " + "\n  ".join(problems))
