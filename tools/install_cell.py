"""The first code cell of every notebook: outside the book's environment
(Colab, a Jupyter without the repository's .venv) it fetches the book and
installs nnlib; inside it, it does nothing. The page hides it (remove-cell);
a reader who opens the notebook alone runs it.

    python tools/install_cell.py     # write or refresh the cell in book/*.ipynb

The address comes from _config.yml (repository.url), where the launch buttons
take it from too; tests/test_book.py checks that every notebook carries this
exact cell.
"""
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "remove-cell"
MARK = "# Opened on its own"


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def cell_source() -> str:
    return f'''{MARK} (Colab, or a Jupyter without the book's .venv)?
# This cell fetches the book and installs nnlib with what the chapters
# import; in the book's own environment it does nothing.
import importlib.util
import os

if importlib.util.find_spec("nnlib") is None:
    REPO = "{repository_url()}"
    !git clone -q --depth 1 {{REPO}} nn-book
    extra = "book" if importlib.util.find_spec("torch") else "book,torch"
    %pip install -q "./nn-book[{{extra}}]"
    os.chdir("nn-book/book")    # no restart needed: nnlib is new here'''


def cell() -> dict:
    return {"cell_type": "code", "execution_count": None, "id": "install-nnlib",
            "metadata": {"tags": [TAG]}, "outputs": [],
            "source": cell_source().splitlines(keepends=True)}


def update(path: Path) -> bool:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    if "".join(cells[first]["source"]).startswith(MARK):
        if cells[first] == cell():
            return False
        cells[first] = cell()
    else:
        cells.insert(first, cell())
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


if __name__ == "__main__":
    changed = [p.name for p in sorted((ROOT / "book").glob("*.ipynb")) if update(p)]
    print(f"install cell written to {len(changed)} notebook(s): {changed}", file=sys.stderr)
