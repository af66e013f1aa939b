"""Write the book's character-level text corpora from Python's standard library,
collected in a fixed order, so that chapter 5 trains on the same text on every
machine (the files are committed; this script only documents how they were
made). Run:

    python scripts/make_corpus.py            # stdlib_docstrings.txt (chapter 5)
    python scripts/make_corpus.py code       # stdlib_code.txt (section 5f)

``docstrings``: about 120 kB of docstrings. ``code``: about 50 kB of the source
code of a few modules, with every docstring removed and the code written back
by ``ast.unparse`` (which drops comments and normalises the layout), modules
whose code is not printable ASCII skipped -- a second text, in the first one's
96 characters, for section 5f to adapt the pretrained language model to.

Both are part of Python, (c) Python Software Foundation, under the PSF License
Agreement, which allows redistribution with this notice.
"""
import ast
import importlib
import inspect
import pathlib
import platform
import re
import sys

MODULES = ["textwrap", "string", "collections", "functools", "itertools", "heapq",
           "bisect", "random", "statistics", "fractions", "json", "csv", "pathlib",
           "shutil", "difflib", "argparse", "logging", "dataclasses", "enum",
           "calendar", "datetime", "zipfile", "unittest", "inspect", "typing"]
TARGET = pathlib.Path(__file__).parents[1] / "src/nnlib/corpora/stdlib_docstrings.txt"
LIMIT = 120_000
# the code corpus: modules that are not in MODULES, whole modules until CODE_LIMIT
CODE_MODULES = ["colorsys", "fnmatch", "reprlib", "sched", "netrc", "glob", "copy",
                "graphlib", "shlex", "queue", "contextlib", "abc", "bdb"]
CODE_TARGET = TARGET.with_name("stdlib_code.txt")
CODE_LIMIT = 50_000
PRINTABLE = set(map(chr, range(0x20, 0x7f))) | {"\n"}


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


class _StripDocstrings(ast.NodeTransformer):
    """Remove the docstring of every module, class and function."""

    def _strip(self, node):
        self.generic_visit(node)
        first = node.body[0] if node.body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            node.body = node.body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def code_main():
    parts, size = [], 0
    for mod in CODE_MODULES:
        tree = ast.parse(inspect.getsource(importlib.import_module(mod)))
        code = ast.unparse(_StripDocstrings().visit(tree))
        if not set(code) <= PRINTABLE:        # e.g. shlex's accented letters
            continue
        parts.append(f"# {mod}\n{code}")
        size += len(parts[-1]) + 2
        if size >= CODE_LIMIT:
            break
    header = (f"# Source code of the Python {platform.python_version()} standard library "
              "(c) Python Software Foundation, PSF License.\n\n")
    CODE_TARGET.write_text(header + "\n\n".join(parts) + "\n")
    print(f"wrote {CODE_TARGET} ({CODE_TARGET.stat().st_size} bytes)")


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
    which = sys.argv[1] if len(sys.argv) > 1 else "docstrings"
    if which not in ("docstrings", "code"):
        sys.exit(f"make_corpus.py: expected 'docstrings' or 'code', got {which!r}")
    main() if which == "docstrings" else code_main()
