"""The package's layout shows its architecture: every module belongs to a tier,
and a module imports only from its own tier or lower ones, so the NumPy core
never depends on data sets, figures or PyTorch.

    tier 0  errors, random, _checks
    tier 1  functional, module, layers, losses, optim, init
    tier 2  testing, twins, gradcheck, models, train, gan, data, playground
    tier 3  rl, viz, exercises
    tier 4  torch (the only place PyTorch is imported at module level)

The imports are read with ``ast`` (nothing is imported to find them), at any
depth: an import inside a function counts for the tiers as well.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.core

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nnlib"
TIERS = {
    "errors": 0, "random": 0, "_checks": 0, "corpora": 0,      # corpora: text files only
    "functional": 1, "module": 1, "layers": 1, "losses": 1, "optim": 1, "init": 1,
    "testing": 2, "twins": 2, "gradcheck": 2, "models": 2, "train": 2, "gan": 2,
    "data": 2, "playground": 2, "seq2seq": 2, "transformer_lm": 2,
    "rl": 3, "viz": 3, "exercises": 3,
    "torch": 4,
}
# the package's own __init__ gathers the NumPy side for ``import nnlib``: it may
# import up to tier 3, never nnlib.torch
ROOT_TIER = 3
# (file, imported module) pairs allowed to break the rule, each with its reason;
# empty: fix a violation by moving code to the right tier
EXCEPTIONS: dict[tuple[str, str], str] = {}

FILES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["nnlib", *parts])


def is_module(name: str) -> bool:
    """Whether ``nnlib.a.b`` is a module or package on disk."""
    rel = PACKAGE.joinpath(*name.split(".")[1:])
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def tier_of(name: str) -> int:
    """The tier of a module ``nnlib...`` (its first component names it)."""
    parts = name.split(".")
    if len(parts) == 1:
        return ROOT_TIER
    if parts[1] not in TIERS:
        raise AssertionError(f"{name} is in no tier: add {parts[1]!r} to TIERS in "
                             f"tests/test_layout.py (and to the book's layout)")
    return TIERS[parts[1]]


def nnlib_imports(path: Path):
    """``(line, imported module)`` for every import of nnlib in the file,
    relative or absolute, at any depth. ``from X import name`` counts as an
    import of ``X.name`` where that is a module, else of ``X``."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nnlib" or alias.name.startswith("nnlib."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                if len(base) < 1:
                    raise AssertionError(f"{path}:{node.lineno}: import above the package")
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
                if not (target == "nnlib" or target.startswith("nnlib.")):
                    continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if is_module(sub) else target


def module_level_torch_imports(source: str):
    """Lines that import PyTorch when the module is imported: everything but
    the bodies of functions (and ``if TYPE_CHECKING:`` blocks)."""
    tree = ast.parse(source)

    def visit(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "torch" or alias.name.startswith("torch."):
                        yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                    node.module == "torch" or node.module.startswith("torch.")):
                yield node.lineno, node.module
            yield from visit(ast.iter_child_nodes(node))

    yield from visit(tree.body)


def test_every_module_is_in_a_tier():
    for path in FILES:
        tier_of(module_name(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_tier(path):
    here = module_name(path)
    own = ROOT_TIER if here == "nnlib" else tier_of(here)
    rel = str(path.relative_to(PACKAGE))
    bad = [f"{rel}:{line} (tier {own}) imports {name} (tier {tier_of(name)})"
           for line, name in nnlib_imports(path)
           if tier_of(name) > own and (rel, name) not in EXCEPTIONS]
    assert not bad, "a lower tier imports a higher one:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", [p for p in FILES if "torch" not in
                                  p.relative_to(PACKAGE).parts[:1]],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pytorch_is_imported_at_module_level_only_in_nnlib_torch(path):
    bad = [f"{path.relative_to(PACKAGE)}:{line}: import {name}"
           for line, name in module_level_torch_imports(path.read_text(encoding="utf-8"))]
    assert not bad, ("PyTorch is optional outside nnlib.torch: import it inside the "
                     "function that needs it\n" + "\n".join(bad))


def test_the_checker_sees_what_it_should():
    """The rules above on a few known imports, so that a bug in the parsing
    cannot make them pass vacuously."""
    found = set(nnlib_imports(PACKAGE / "torch" / "case_study.py"))
    assert {"nnlib.data", "nnlib.train", "nnlib.torch.finetune",
            "nnlib.torch.vgg"} <= {n for _, n in found}
    assert "nnlib.init" in {n for _, n in nnlib_imports(PACKAGE / "layers" / "linear.py")}
    assert set(module_level_torch_imports((PACKAGE / "torch" / "vgg.py").read_text()))
    assert tier_of("nnlib.viz.plots") == 3 and tier_of("nnlib") == ROOT_TIER
    probe = ("import torch\nclass A:\n    from torch import nn\ndef f():\n"
             "    import torch.nn\nif TYPE_CHECKING:\n    import torch.optim\n")
    assert [n for _, n in module_level_torch_imports(probe)] == ["torch", "torch"]


def test_subpackages_reexport_every_public_name():
    """``nnlib.data.X`` and ``nnlib.rl.X`` work for every public name of
    their modules, as they did when each was one file."""
    import importlib

    for pkg in ("nnlib.data", "nnlib.rl"):
        package = importlib.import_module(pkg)
        for path in sorted((PACKAGE / pkg.split(".")[1]).glob("[!_]*.py")):
            mod = importlib.import_module(f"{pkg}.{path.stem}")
            missing = [n for n in mod.__all__ if getattr(package, n, None) is not
                       getattr(mod, n) or n not in package.__all__]
            assert not missing, f"{pkg} does not re-export {missing} of {mod.__name__}"


def test_import_nnlib_needs_no_pytorch_and_nnlib_torch_gets_the_real_one():
    code = ("import sys, nnlib, nnlib.data, nnlib.rl, nnlib.viz, nnlib.playground\n"
            "assert 'torch' not in sys.modules, 'import nnlib imported PyTorch'\n"
            "assert not hasattr(nnlib, 'torch'), 'import nnlib imported nnlib.torch'\n")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        code += ("import torch, nnlib.torch.vgg as v, nnlib.torch.finetune as f\n"
                 "import nnlib.torch.case_study as c\n"
                 "assert v.torch is f.torch is c.torch is torch and v.nn is torch.nn\n"
                 "assert torch.__file__ != nnlib.torch.__file__\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
