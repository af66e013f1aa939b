"""The API reference (book/api.md) is generated from nnlib's docstrings, so
they are part of the book: every public function and class has one, and in
the modules that take or return arrays each states the shapes."""
import importlib
import inspect
import pkgutil
import re

import pytest

import nnlib

pytestmark = pytest.mark.book

MODULES = ["nnlib." + m.name for m in pkgutil.walk_packages(nnlib.__path__)
           if not m.name.startswith("_") and m.name != "corpora"] + [
    f"nnlib.layers.{m}" for m in ("linear", "activations", "dropout", "embedding", "conv",
                                  "recurrent")]
# modules whose functions and classes take or return arrays
ARRAYS = {"nnlib.module", "nnlib.losses", "nnlib.init", "nnlib.gradcheck", "nnlib.data",
          "nnlib.train", "nnlib.rl", "nnlib.models", "nnlib.gan"} | {
    m for m in MODULES if m.startswith("nnlib.layers.")}
# no array goes in or out: the reason is in the name
NO_ARRAYS = {"nnlib.train.DivergenceError", "nnlib.train.progress_bar", "nnlib.train.History",
             "nnlib.init.calculate_gain", "nnlib.data.load_text", "nnlib.rl.GridWorld",
             "nnlib.rl.QLearningRun", "nnlib.rl.ReinforceRun", "nnlib.rl.Episode",
             "nnlib.rl.reinforce", "nnlib.rl.value_iteration", "nnlib.gan.GANHistory",
             "nnlib.module.Parameter", "nnlib.module.Module", "nnlib.module.Sequential",
             "nnlib.optim.Optimizer", "nnlib.rl.reinforce_step", "nnlib.layers.conv.output_size"}
SHAPE = re.compile(r"\((?:N|T|B|n|\.\.\.|rows|\w+, )[\w ,+*.]*\)|shape")


def needs_torch(modname):
    if modname in ("nnlib.vgg", "nnlib.finetune"):
        pytest.importorskip("torch")


def public_objects(modname):
    mod = importlib.import_module(modname)
    for name, obj in vars(mod).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) == modname:
            yield f"{modname}.{name}", obj


def test_modules_found():
    assert {"nnlib.layers.conv", "nnlib.rl", "nnlib.vgg"} <= set(MODULES)


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_object_has_a_docstring(modname):
    needs_torch(modname)
    missing = [name for name, obj in public_objects(modname) if not inspect.getdoc(obj)]
    assert not missing, f"no docstring: {missing}"


@pytest.mark.parametrize("modname", sorted(ARRAYS))
def test_array_docstrings_state_shapes(modname):
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
