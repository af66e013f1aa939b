"""The API reference (book/api.md) is generated from nnlib's docstrings, so
they are part of the book: every public function and class has one, and in
the modules that take or return arrays each states the shapes."""
import importlib
import inspect
import re
from pathlib import Path

import pytest

import nnlib

pytestmark = pytest.mark.book
PACKAGE = Path(nnlib.__file__).resolve().parent


def _modules():
    """Every public module of nnlib, found on disk rather than by importing, so
    that subpackages (``layers``, ``data``, ``rl``, ``viz``, ``torch``, ...)
    are searched too and a module that needs PyTorch is listed even where
    PyTorch is missing. Private modules (``_checks``, ``layers/_twins``) and
    the text corpora are left out."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        folders = parts[:-1]
        if not all((PACKAGE.joinpath(*folders[:i + 1]) / "__init__.py").is_file()
                   for i in range(len(folders))):
            continue                     # not inside a package (a stray folder)
        if parts[-1] == "__init__":
            parts = folders
        if any(p.startswith("_") for p in parts) or parts[:1] == ["corpora"]:
            continue
        names.append(".".join(["nnlib", *parts]))
    return names


MODULES = _modules()
# modules whose functions and classes take or return arrays
ARRAYS = {m for m in MODULES if m in {
    "nnlib.module", "nnlib.losses", "nnlib.init", "nnlib.testing", "nnlib.testing.gradcheck",
    "nnlib.train", "nnlib.models", "nnlib.gan"} or m.startswith(
    ("nnlib.layers.", "nnlib.data.", "nnlib.rl."))}
# no array goes in or out: the reason is in the name
NO_ARRAYS = {"nnlib.train.DivergenceError", "nnlib.train.progress_bar", "nnlib.train.History",
             "nnlib.init.calculate_gain", "nnlib.data.text.load_text",
             "nnlib.rl.envs.GridWorld", "nnlib.rl.tabular.QLearningRun",
             "nnlib.rl.reinforce.ReinforceRun", "nnlib.rl.reinforce.Episode",
             "nnlib.rl.reinforce.reinforce", "nnlib.rl.tabular.value_iteration",
             "nnlib.gan.GANHistory", "nnlib.module.Parameter", "nnlib.module.Module",
             "nnlib.module.Sequential", "nnlib.module.no_grad", "nnlib.module.is_grad_enabled",
             "nnlib.optim.Optimizer",
             "nnlib.rl.reinforce.reinforce_step", "nnlib.layers.conv.output_size"}
SHAPE = re.compile(r"\((?:N|T|B|n|\.\.\.|rows|\w+, )[\w ,+*.]*\)|shape")


def needs_torch(modname):
    if modname == "nnlib.torch" or modname.startswith("nnlib.torch."):
        pytest.importorskip("torch")


def public_objects(modname):
    mod = importlib.import_module(modname)
    for name, obj in vars(mod).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) == modname:
            yield f"{modname}.{name}", obj


def test_modules_found():
    assert {"nnlib.layers", "nnlib.layers.conv", "nnlib.layers.linear", "nnlib.data.prep",
            "nnlib.data.text", "nnlib.rl.tabular", "nnlib.viz.widgets", "nnlib.torch.vgg",
            "nnlib.torch.finetune", "nnlib.torch.case_study"} <= set(MODULES)
    assert not any(m.split(".")[-1].startswith("_") for m in MODULES), MODULES
    layers = {f"nnlib.layers.{p.stem}" for p in (PACKAGE / "layers").glob("[!_]*.py")}
    assert layers <= set(MODULES) and layers <= ARRAYS      # every layer file is checked


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_object_has_a_docstring(modname):
    needs_torch(modname)
    missing = [name for name, obj in public_objects(modname) if not inspect.getdoc(obj)]
    assert not missing, f"no docstring: {missing}"


@pytest.mark.parametrize("modname", sorted(ARRAYS))
def test_array_docstrings_state_shapes(modname):
    needs_torch(modname)
    missing = [name for name, obj in public_objects(modname)
               if name not in NO_ARRAYS and not SHAPE.search(inspect.getdoc(obj) or "")]
    assert not missing, f"docstrings without a shape: {missing}"


def literal_blocks(doc):
    """The lines of each ``::`` literal block of an RST docstring."""
    lines, out, inside = doc.splitlines(), [], False
    for line in lines:
        if inside and line.strip() and not line.startswith(" "):
            inside = False
        if inside:
            out.append(line)
        if line.rstrip().endswith("::"):
            inside = True
    return out


@pytest.mark.parametrize("modname", MODULES)
def test_literal_blocks_fit_the_api_page(modname):
    """Code in docstrings keeps its line breaks on the API page; past 76
    characters (at 4 spaces of indentation) it overflows the text column."""
    needs_torch(modname)
    mod = importlib.import_module(modname)
    docs = [inspect.getdoc(mod) or ""] + [inspect.getdoc(o) or "" for _, o in
                                          public_objects(modname)]
    long = [line for doc in docs for line in literal_blocks(doc) if len(line) > 80]
    assert not long, f"{modname}: literal lines over 76 characters: {long}"
