"""Every number in the prose comes from an output (the "Truth" rule): a decimal
number or a percentage in a chapter's markdown is glued from the cell that
computed it (``{glue:text}`name```), so that text and code cannot drift apart,
unless it is one of

* a literal that a code cell of the same notebook also types: a
  hyper-parameter, a threshold an assert uses, a constant the code reads (for
  a percentage: the fraction, 95% as 0.95, or the percentage itself);
* a section number of the source (§2.3, §3.1–3.3);
* a number in an exercise solution that ``tests/test_exercises.py``
  recomputes and finds in the solution (its ``MEASURED_HERE``);
* an entry of ``ALLOWED`` below, each with the reason it is not a
  measurement.

Code (inline spans and fenced blocks) is not prose and is skipped. The test
reads the notebooks' sources: a markdown cell's text is the same before and
after execution, and the build (``--warningiserror``) fails on a glue name
that no cell glued.
"""
import json
import re
from pathlib import Path

import pytest
from test_exercises import MEASURED_HERE, exercises

pytestmark = pytest.mark.book
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# chapter stem -> {literal: why it is not a measurement}; keep this short
ALLOWED = {
    "00-preface": {
        "1%": "the error tests/test_registry.py builds into its wrong Linear, a setting",
    },
    "08-rl": {
        "90%": "the stopping rule of nnlib.rl.reinforce (0.9 of the target), a setting",
    },
    "09-finetuning-vgg16": {
        "10%": "chance for ten classes, a definition",
    },
    "10-practice": {
        "1.2": "ImageNet's 1.2 million training images, a fact about a data set",
    },
}

DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")
PERCENT = re.compile(r"(?<![\w.])(\d+)\s?%")          # 95%; 1.15% is a DECIMAL
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")
STRIPPED = [
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),        # glued values
    # code and diagrams; directives such as {admonition} and {glue:figure} stay
    re.compile(r"^(`{3,}|~{3,})(?![`~])(?!\{(?!mermaid\})).*?^\1(?![`~])",
               re.S | re.M),
    re.compile(r"`[^`\n]+`"),                        # inline code
    re.compile(r"§\s?\d+(?:\.\d+)*(?:\s?[–-]\s?\d+(?:\.\d+)*)?"),  # §2.1–2.3
    re.compile(r"arXiv:\d{4}\.\d{4,5}"),             # a reference's identifier
]


def prose(markdown: str) -> str:
    for pattern in STRIPPED:
        markdown = pattern.sub(" ", markdown)
    return markdown


def typed_in_code(cells) -> set[str]:
    """Decimals the code types, and the percentages it types or whose
    fraction it types (0.95 allows 95%)."""
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    fractions = {round(float(n) * 100, 6) for n in NUMBER.findall(code)}
    percents = {f"{n}%" for n in range(101) if n in fractions}
    percents |= {f"{n}%" for n in PERCENT.findall(code)}
    return set(DECIMAL.findall(code)) | percents


def unglued(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    allowed = typed_in_code(cells) | set(ALLOWED.get(path.stem, {}))
    chapter = path.stem[:2]
    tested = [exercises(chapter)[n - 1] for c, n in sorted(MEASURED_HERE) if c == chapter]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for exercise in tested:
            text = text.replace(exercise, " ")
        text = prose(text)
        numbers = [(m, m.group()) for m in DECIMAL.finditer(text)]
        numbers += [(m, m.group(1) + "%") for m in PERCENT.finditer(text)]
        for m, number in numbers:
            if number not in allowed:
                where = " ".join(text[max(0, m.start() - 50):m.end() + 15].split())
                found.append(f"cell {i}: {number} in '…{where}…'")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_in_the_prose_are_glued(path):
    found = unglued(path)
    assert not found, (
        f"{path.name}: numbers typed into the prose; glue them from the "
        "cell that computes them ({glue:text}`name`), or, if one is not a "
        "measurement, add it to ALLOWED with the reason:\n  " + "\n  ".join(found))


def test_tested_solutions_lie_in_one_cell():
    """A solution in MEASURED_HERE is skipped by removing its text from its
    cell, which needs the whole exercise in one markdown cell."""
    for chapter, n in MEASURED_HERE:
        path = next((ROOT / "book").glob(f"{chapter}-*.ipynb"))
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = exercises(chapter)[n - 1]
        assert any(text in "".join(c["source"]) for c in cells
                   if c["cell_type"] == "markdown"), (chapter, n)


def test_the_prose_test_sees_a_typed_measurement(tmp_path):
    """Positive control: a typed number is found; the same number glued, in
    code, in a section reference or typed by a code cell is not."""
    nb = {"cells": [
        {"cell_type": "code", "source": ["lr = 0.01\n", "assert acc > 0.95\n"]},
        {"cell_type": "markdown", "source": [
            "Accuracy 0.947 at learning rate 0.01 (§2.3, §3.1–3.3); "
            "{glue:text}`acc` and `x = 0.25`; 97% of the digits, above 95%.\n"]},
    ]}
    path = tmp_path / "99-test.ipynb"
    path.write_text(json.dumps(nb))
    found = unglued(path)
    assert len(found) == 2 and "0.947" in found[0] and "97%" in found[1], found
    fenced = "```python\ny = 3.5\n```\n"
    assert DECIMAL.findall(prose(fenced)) == []
    assert DECIMAL.findall(prose("```{glue:figure} f\nerror 0.31\n```\n")) == ["0.31"]
    solution = "````{admonition} Solution\n```python\nf(0.5)\n```\nwe got 0.7\n````\n"
    assert DECIMAL.findall(prose(solution)) == ["0.7"]


# numbers the errata page may type, with the reason; every other decimal or
# percentage on it is pasted from a chapter ({glue:text}`NN-name.ipynb::key:s`)
ERRATA_ALLOWED = {
    "0.5": "the bound chapter 6's subspace check asserts (0.5 degrees)",
    "0.53": "the stand-in's parameter count in millions, a property of its design",
}


def test_numbers_on_the_errata_page_are_pasted_from_the_chapters():
    text = prose((ROOT / "book" / "errata.md").read_text(encoding="utf-8"))
    numbers = DECIMAL.findall(text) + [n + "%" for n in PERCENT.findall(text)]
    typed = [n for n in numbers if n not in ERRATA_ALLOWED]
    assert not typed, (f"errata.md types {typed}: paste them from the chapter "
                       "that measures them, or add them to ERRATA_ALLOWED")
