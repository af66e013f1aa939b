"""Chapter 9's fair study: a small VGG16 pretrained on printed letters and
symbols (no digits), then trained on few handwritten digits by each method
of ``nnlib.torch.case_study.STUDY_METHODS``, every method with the same step
budget and its own learning rate chosen on validation.

    python scripts/vgg_fair_study.py weights   # book/weights/vgg16_symbols.pth
    python scripts/vgg_fair_study.py table     # book/data/vgg_study.json
    python scripts/vgg_fair_study.py long      # adds long runs from scratch to it
    python scripts/vgg_fair_study.py own       # adds runs tuned on their own labels
    python scripts/vgg_fair_study.py source    # adds probes on printed symbols
    python scripts/vgg_fair_study.py all --tiny --out DIR   # the test's run, seconds

``weights`` pretrains ``case_study.symbols_vgg16`` on ``symbols_split`` (43
classes, 200 images each, early-stopped on validation) into
book/weights/vgg16_symbols.pth, and the features of ``small_vgg16`` without
labels on the handwritten training images (``ssl_pretrain``, a denoising
autoencoder) into book/weights/vgg16_ssl.pth. ``table``: for each
label budget (10 and 50 digits per class) and each trained method, the
learning rate is chosen on three tuning seeds (``TUNE_SEEDS``, none of them
a reported seed) by mean validation accuracy, from a grid widened until no
edge ties the best; then every method runs on seeds 0-4 with its rate, with the
validation digits taken from inside the label budget (the main result) and,
the other way, with the 270 validation digits outside it. The probe's C and
depth are chosen on validation in every run; it also records each depth's
accuracy (``by_depth``), and ``layers`` holds that of the same probe on a
randomly initialised network (the control of the layer-by-layer figure), on
both networks also with their BatchNorm statistics re-estimated on the
training digits (AdaBN). ``other_sources`` pretrains the source model twice
more (``SOURCE_SEEDS``: other initial weights and batch order, the same
images) and reruns the layer probes and ``SOURCE_METHODS`` on each, at the
rates tuned on the first. ``long`` then adds to the file training from scratch
with three times the steps, the control of the step budget. ``own`` adds
the runs whose learning rate each chose on its own validation digits, the
tuning charged to the label budget. The file records the machine, the thread count and
the seconds it took. Everything is seeded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# the instruction set and the thread counts are part of the rounding path, and
# chapter 9 reruns this study's seed-0 rows: NumPy's BLAS (scikit-learn's probe)
# on one thread and the AVX2 kernels, as in the book's runs (the Makefile's
# THREADS, the repository's conftest.py), set before NumPy and PyTorch load;
# PyTorch trains on two threads (main), which the saved file records
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
if platform.machine() in ("x86_64", "AMD64"):
    for _name, _value in {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2",
                          "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                          "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR"}.items():
        os.environ.setdefault(_name, _value)

import torch  # noqa: E402

from nnlib.torch import case_study as cs  # noqa: E402
from nnlib.torch import finetune  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGETS, SEEDS, TUNE_SEEDS = (10, 50), (0, 1, 2, 3, 4), (100, 101, 102)
# other pretraining runs (the initial weights and batch order of the source
# model; the same source images): the methods that use it, rerun on each
SOURCE_SEEDS, SOURCE_METHODS = (1, 2), ("probe", "full", "lp-ft")
# the control of the step budget: training from scratch given this many times
# the steps (and the patience), at its tuned rate, on the reported seeds
LONG_FACTOR = 3
SOURCE_PER_CLASS, SOURCE_EPOCHS, SOURCE_PATIENCE, SSL_EPOCHS = 200, 40, 5, 30
# the probes on printed symbols and digits: images rendered per class, split
# 70/15/15 (the test sets: 194 symbols of 43 classes, 150 digits)
SOURCE_PROBE_IMAGES = {"symbols": 30, "printed digits": 100}


def pretrain_source(seed: int = 0, tiny: bool = False):
    """``symbols_vgg16(seed)`` trained on ``symbols_split``: the model and its log."""
    src = cs.symbols_split(12 if tiny else SOURCE_PER_CLASS)
    model = cs.symbols_vgg16(seed=seed)
    config = finetune.TrainConfig(epochs=1 if tiny else SOURCE_EPOCHS,
                                  patience=SOURCE_PATIENCE, shift=2, seed=seed, batch_size=64)
    r = finetune.fit(model, (src.X_train, src.y_train), (src.X_val, src.y_val), config,
                     progress=not tiny)
    info = {"classes": len(cs.SYMBOLS), "train": len(src.y_train), "seed": seed,
            "best_epoch": r.best_epoch, "epochs_run": len(r.history), "cap": config.epochs,
            "val": r.best_val, "test": finetune.evaluate(model, src.X_test, src.y_test)}
    print("source task:", json.dumps(info), flush=True)
    return model, info


def make_weights(out: Path, ssl_out: Path, tiny: bool = False) -> dict:
    model, info = pretrain_source(0, tiny)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    split = cs.digits_split()
    model = cs.small_vgg16(seed=0)
    X = split.X_train[:64] if tiny else split.X_train
    losses = cs.ssl_pretrain(model, X, epochs=1 if tiny else SSL_EPOCHS, seed=0,
                             progress=not tiny)
    info["ssl_loss"] = [losses[0], losses[-1]]
    print(f"self-supervised: reconstruction error {losses[0]:.4f} -> {losses[-1]:.4f}")
    torch.save(model.state_dict(), ssl_out)
    return info


def layer_probes(model, start: str, split, budgets, seeds) -> list:
    """The probe at every depth of the frozen ``model``, as saved and with its
    BatchNorm statistics re-estimated on the training digits (AdaBN)."""
    rows = []
    for per_class in budgets:
        for seed in seeds:
            train, val = cs.budget_split(split, per_class, seed, "inside")
            test = (split.X_test, split.y_test)
            for adapt in (False, True):
                for depth in cs.DEPTHS:
                    p = cs.probe_run(model, train, val, test, depth, seed, adapt_bn=adapt)
                    p.update(start=start + ("+adabn" if adapt else ""),
                             per_class=per_class, seed=seed)
                    rows.append(p)
    return rows


def make_table(source_path: Path, ssl_path: Path, out: Path, tiny: bool = False,
               source_info=None) -> None:
    split = cs.digits_split()
    source = torch.load(source_path, weights_only=True)
    ssl = torch.load(ssl_path, weights_only=True)
    budgets, seeds = ((5,), (0,)) if tiny else (BUDGETS, SEEDS)
    tune_seeds = TUNE_SEEDS[:1] if tiny else TUNE_SEEDS
    source_seeds = SOURCE_SEEDS[:1] if tiny else SOURCE_SEEDS
    steps = 8 if tiny else cs.STEPS
    trained = [m for m in cs.STUDY_METHODS if m != "probe"]
    start, tuning, runs, layers = time.perf_counter(), [], [], []
    rates = {}
    for per_class in budgets:
        for method in trained:
            grid = cs.LR_GRIDS[method][:2] if tiny else None
            t = cs.tune(method, split, per_class, tune_seeds, source, grid=grid,
                        ssl_state=ssl, steps=steps)
            tuning.append(t)
            rates[method, per_class] = t["lr"]
            print(json.dumps(t), flush=True)
            for seed in seeds:
                for val_mode in ("inside", "outside"):
                    r = cs.study_run(method, split, per_class, seed, t["lr"], source, val_mode,
                                     ssl_state=ssl, steps=steps)
                    runs.append(r)
                    print(json.dumps(r), flush=True)
        for seed in seeds:
            for val_mode in ("inside", "outside"):
                r = cs.study_run("probe", split, per_class, seed, None, source, val_mode)
                runs.append(r)
                print(json.dumps(r), flush=True)
    for seed in seeds:            # the random controls: one network per seed
        random = cs.study_model("scratch", seed, None)
        layers += layer_probes(random, "random", split, budgets, (seed,))
    layers += layer_probes(cs.study_model("probe", 0, source), "symbols", split, budgets,
                           seeds)
    print("layer probes done", flush=True)
    others = []                   # the same pretraining, other seeds
    for source_seed in source_seeds:
        model, info = pretrain_source(source_seed, tiny)
        other = model.state_dict()
        info["layers"] = layer_probes(cs.study_model("probe", 0, other), "symbols", split,
                                      budgets, seeds)
        info["runs"] = [cs.study_run(m, split, per_class, seed, rates.get((m, per_class)),
                                     other, "inside", steps=steps)
                        for m in SOURCE_METHODS for per_class in budgets for seed in seeds]
        others.append(info)
        print(f"source seed {source_seed} done", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "made_by": "python scripts/vgg_fair_study.py table",
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "processor": platform.processor(), "seconds": round(time.perf_counter() - start),
        "kernels": f"ATen {os.environ.get('ATEN_CPU_CAPABILITY', 'default')}, NumPy BLAS "
                   f"threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}",
        "steps": steps, "patience_steps": cs.PATIENCE_STEPS * steps // cs.STEPS,
        "tune_seeds": list(tune_seeds),
        "source": source_info, "tuning": tuning, "runs": runs, "layers": layers,
        "other_sources": others}, indent=1) + "\n")
    print(f"wrote {out} ({len(runs)} runs)")


def add_long_scratch(table: Path, tiny: bool = False) -> None:
    """Rerun training from scratch with ``LONG_FACTOR`` times the steps and
    patience, both budgets, both validation modes, seeds 0-4, at the rates
    the study tuned, and add the rows to ``table`` as ``long_scratch``."""
    study = json.loads(table.read_text())
    split = cs.digits_split()
    rates = {t["per_class"]: t["lr"] for t in study["tuning"] if t["method"] == "scratch"}
    seeds = sorted({r["seed"] for r in study["runs"]})
    start, rows = time.perf_counter(), []
    for per_class, lr in sorted(rates.items()):
        for seed in seeds:
            for val_mode in ("inside", "outside"):
                r = cs.study_run("scratch", split, per_class, seed, lr, None, val_mode,
                                 steps=LONG_FACTOR * study["steps"])
                rows.append(r)
                print(json.dumps(r), flush=True)
    study["long_scratch"] = {"factor": LONG_FACTOR, "steps": LONG_FACTOR * study["steps"],
                             "seconds": round(time.perf_counter() - start), "runs": rows}
    table.write_text(json.dumps(study, indent=1) + "\n")
    print(f"added {len(rows)} long runs from scratch to {table}")


def add_own_tuning(table: Path, source_path: Path, ssl_path: Path, tiny: bool = False) -> None:
    """The tuning charged to the label budget: every trained method, both
    budgets, seeds 0-4, with the learning rate chosen on each run's own
    validation digits (inside its budget) from the grid the study's tuning
    ended with (no further widening; ties: the middle value), instead of on
    the tuning seeds' other draws of labels. The run at the rate the study
    chose is the table's own row (every run is seeded); the others are run
    here (``tiny``: the grid's first two rates). Adds the rows to
    ``table`` as ``own_tuning``."""
    study = json.loads(table.read_text())
    split = cs.digits_split()
    source = torch.load(source_path, weights_only=True)
    ssl = torch.load(ssl_path, weights_only=True)
    saved = {(r["method"], r["per_class"], r["seed"]): r for r in study["runs"]
             if r["val_mode"] == "inside"}
    seeds = sorted({r["seed"] for r in study["runs"]})
    start, rows = time.perf_counter(), []
    for t in study["tuning"]:
        method, per_class = t["method"], t["per_class"]
        for seed in seeds:
            by_lr = {}

            def score(lr):
                same = saved[method, per_class, seed]
                by_lr[lr] = same if lr == same["lr"] else cs.study_run(
                    method, split, per_class, seed, lr, source, "inside",
                    ssl_state=ssl, steps=study["steps"])
                return by_lr[lr]["val"]

            grid = tuple(t["grid"])[:2] if tiny else tuple(t["grid"])   # tiny: a test
            lr, grid, scores = cs._choose(grid, score, max_widen=0)
            rows.append({"method": method, "per_class": per_class, "seed": seed,
                         "lr": lr, "study_lr": t["lr"], "val": by_lr[lr]["val"],
                         "test": by_lr[lr]["test"],
                         "val_by_lr": {str(k): v for k, v in sorted(scores.items())},
                         "test_by_lr": {str(k): by_lr[k]["test"] for k in sorted(by_lr)},
                         "at_edge": cs.edge_tied(grid, scores)})
            print(json.dumps(rows[-1]), flush=True)
    study["own_tuning"] = {"made_by": "python scripts/vgg_fair_study.py own",
                           "seconds": round(time.perf_counter() - start), "runs": rows}
    table.write_text(json.dumps(study, indent=1) + "\n")
    print(f"added {len(rows)} runs tuned on their own labels to {table}")


def add_source_probes(table: Path, source_path: Path, tiny: bool = False) -> None:
    """The test of "the dense layers specialised to the source task": the
    same probes as ``layers``, at every depth, of the pretrained and of the
    random network, seeds 0-4, on two printed tasks: new renderings of the
    source task's own classes (``symbols_split`` with its own seed) and
    printed *digits* (``printed_split``, the same renderer, classes the
    source never had), with 10 labels per class inside the budget as for
    the handwritten digits. Layers specialised to the source's classes read
    its classes well and the printed digits badly; layers that only met
    another domain than handwriting read both well. Adds the rows to
    ``table`` as ``source_probes``."""
    study = json.loads(table.read_text())
    source = torch.load(source_path, weights_only=True)
    seeds = (0,) if tiny else sorted({r["seed"] for r in study["runs"]})
    n_img = {k: 12 if tiny else v for k, v in SOURCE_PROBE_IMAGES.items()}
    tasks = {"symbols": lambda seed: cs.symbols_split(n_img["symbols"], seed=1_000 + seed),
             "printed digits": lambda seed: cs.printed_split(n_img["printed digits"],
                                                             seed=1_000 + seed)}
    start, rows = time.perf_counter(), []
    for seed in seeds:
        nets = {"symbols": cs.study_model("probe", 0, source),
                "random": cs.study_model("scratch", seed, None)}
        for task, make in tasks.items():
            split = make(seed)
            train, val = cs.budget_split(split, 5 if tiny else 10, seed, "inside")
            for start_name, net in nets.items():
                for depth in cs.DEPTHS:
                    p = cs.probe_run(net, train, val, (split.X_test, split.y_test), depth,
                                     seed)
                    p.update(task=task, start=start_name, seed=seed,
                             n_test=len(split.y_test), n_train=len(train[1]))
                    rows.append(p)
                    print(json.dumps(p), flush=True)
    study["source_probes"] = {"made_by": "python scripts/vgg_fair_study.py source",
                              "images_per_class": n_img, "per_class": 10,
                              "seconds": round(time.perf_counter() - start), "rows": rows}
    table.write_text(json.dumps(study, indent=1) + "\n")
    print(f"added {len(rows)} probes on printed symbols and digits to {table}")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["weights", "table", "all", "long", "own", "source"])
    p.add_argument("--tiny", action="store_true",
                   help="a few images, one epoch, one budget of 5 and one seed: a test of "
                        "the whole pipeline in seconds")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the two files (default: the book's weights/ and data/)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    weights = (args.out or ROOT / "book" / "weights") / "vgg16_symbols.pth"
    ssl = weights.with_name("vgg16_ssl.pth")
    table = (args.out or ROOT / "book" / "data") / "vgg_study.json"
    info = None
    if args.what in ("weights", "all"):
        info = make_weights(weights, ssl, args.tiny)
        info_path = weights.with_suffix(".json")
        info_path.write_text(json.dumps(info, indent=1) + "\n")
    if args.what in ("table", "all"):
        info_path = weights.with_suffix(".json")
        if info is None and info_path.exists():
            info = json.loads(info_path.read_text())
        make_table(weights, ssl, table, args.tiny, info)
    if args.what in ("long", "all"):
        add_long_scratch(table, args.tiny)
    if args.what in ("own", "all"):
        add_own_tuning(table, weights, ssl, args.tiny)
    if args.what in ("source", "all"):
        add_source_probes(table, weights, args.tiny)


if __name__ == "__main__":
    main()
