"""The glossary's rules (BOOK.md): terms in alphabetical order, each with
its Chinese term first, and every term the chapters point to defined."""
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.book
BOOK = Path(__file__).resolve().parent.parent / "book"
CJK = re.compile(r"[\u4e00-\u9fff]")


def entries(text: str) -> list[tuple[str, str]]:
    """(term, first line of its definition) for each entry of the
    ``{glossary}`` block."""
    body = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    return re.findall(r"^(\S[^\n]*)\n  ([^\n]*)", body, flags=re.M)


def out_of_order(terms: list[str]) -> list[tuple[str, str]]:
    keys = [t.lower() for t in terms]
    return [(a, b) for a, b, ka, kb in zip(terms, terms[1:], keys, keys[1:]) if ka > kb]


GLOSSARY = entries((BOOK / "glossary.md").read_text(encoding="utf-8"))


def test_the_glossary_is_read():
    assert len(GLOSSARY) > 50


def test_terms_are_in_alphabetical_order():
    assert not out_of_order([t for t, _ in GLOSSARY])


def test_the_order_check_sees_a_misplaced_term():
    assert out_of_order(["action", "agent", "additive attention"]) == [
        ("agent", "additive attention")]


def test_every_term_gives_its_chinese_term_first():
    missing = [t for t, d in GLOSSARY if not CJK.search(d.split(".")[0])]
    assert not missing, f"no Chinese term at the start of: {missing}"


def test_every_term_a_chapter_points_to_is_defined():
    defined = {t.lower() for t, _ in GLOSSARY}
    used = set()
    for page in list(BOOK.glob("*.ipynb")) + list(BOOK.glob("*.md")):
        if page.suffix == ".ipynb":
            cells = json.loads(page.read_text(encoding="utf-8"))["cells"]
            text = "\n".join("".join(c["source"]) for c in cells)
        else:
            text = page.read_text(encoding="utf-8")
        for ref in re.findall(r"\{term\}`([^`]+)`", text):
            target = re.search(r"<([^>]+)>\s*$", ref)
            used.add((page.name, (target.group(1) if target else ref).strip().lower()))
    unknown = sorted((p, t) for p, t in used if t not in defined)
    assert not unknown, f"{{term}} targets the glossary lacks: {unknown}"
