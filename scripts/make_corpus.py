"""Write the book's character-level text corpus: docstrings of Python's standard
library, collected in a fixed order, so that chapter 5 trains on the same text
on every machine (the file is committed; this script only documents how it was
made). Run:  python scripts/make_corpus.py

The docstrings are part of Python, (c) Python Software Foundation, under the
PSF License Agreement, which allows redistribution with this notice.
"""
import importlib
import inspect
import pathlib
import platform
import re

MODULES = ["textwrap", "string", "collections", "functools", "itertools", "heapq",
           "bisect", "random", "statistics", "fractions", "json", "csv", "pathlib",
           "shutil", "difflib", "argparse", "logging", "dataclasses", "enum",
           "calendar", "datetime", "zipfile", "unittest", "inspect", "typing"]
TARGET = pathlib.Path(__file__).parents[1] / "src/nnlib/corpora/stdlib_docstrings.txt"
LIMIT = 120_000


def docs(module):
    seen = set()
    yield inspect.getdoc(module)
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        for item in [obj] + ([m for _, m in sorted(vars(obj).items()) if callable(m)
                              and not _.startswith("_")] if inspect.isclass(obj) else []):
            d = inspect.getdoc(item)
            if d and id(item) not in seen:
                seen.add(id(item))
                yield d


def main():
    parts, size = [], 0
    for mod in MODULES:
        for d in docs(importlib.import_module(mod)):
            if not d:
                continue
            d = re.sub(r"[^\x20-\x7e\n]", "", d).strip()   # printable ASCII only
            if len(d) < 40:
                continue
            parts.append(d)
            size += len(d) + 2
            if size >= LIMIT:
                break
        if size >= LIMIT:
            break
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Docstrings of the Python {platform.python_version()} standard library "
              "(c) Python Software Foundation, PSF License.\n\n")
    TARGET.write_text(header + "\n\n".join(parts) + "\n")
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
