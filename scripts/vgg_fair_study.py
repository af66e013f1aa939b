"""Chapter 9's fair study: a small VGG16 pretrained on printed letters and
symbols (no digits), then trained on few handwritten digits by each method
of ``nnlib.torch.case_study.STUDY_METHODS``, every method with the same step
budget and its own learning rate chosen on validation.

    python scripts/vgg_fair_study.py weights   # book/weights/vgg16_symbols.pth
    python scripts/vgg_fair_study.py table     # book/data/vgg_study.json
    python scripts/vgg_fair_study.py all --tiny --out DIR   # the test's run, seconds

``weights`` pretrains ``case_study.symbols_vgg16`` on ``symbols_split`` (43
classes, 200 images each, early-stopped on validation) into
book/weights/vgg16_symbols.pth, and the features of ``small_vgg16`` without
labels on the handwritten training images (``ssl_pretrain``, a denoising
autoencoder) into book/weights/vgg16_ssl.pth. ``table``: for each
label budget (10 and 50 digits per class) and each trained method, the
learning rate is chosen on a tuning seed (``TUNE_SEED``, not one of the
reported seeds) by validation accuracy, from a grid widened until its best
value is inside; then every method runs on seeds 0-4 with its rate, with the
validation digits taken from inside the label budget (the main result) and,
the other way, with the 270 validation digits outside it. The probe's C and
depth are chosen on validation in every run; it also records each depth's
accuracy (``by_depth``), and ``layers`` holds that of the same probe on a
randomly initialised network (the control of the layer-by-layer figure). The file records the machine, the
thread count and the seconds it took. Everything is seeded.
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
BUDGETS, SEEDS, TUNE_SEED = (10, 50), (0, 1, 2, 3, 4), 100
SOURCE_PER_CLASS, SOURCE_EPOCHS, SOURCE_PATIENCE, SSL_EPOCHS = 200, 40, 5, 30


def make_weights(out: Path, ssl_out: Path, tiny: bool = False) -> dict:
    src = cs.symbols_split(12 if tiny else SOURCE_PER_CLASS)
    model = cs.symbols_vgg16(seed=0)
    config = finetune.TrainConfig(epochs=1 if tiny else SOURCE_EPOCHS,
                                  patience=SOURCE_PATIENCE, shift=2, seed=0, batch_size=64)
    r = finetune.fit(model, (src.X_train, src.y_train), (src.X_val, src.y_val), config,
                     progress=not tiny)
    info = {"classes": len(cs.SYMBOLS), "train": len(src.y_train), "best_epoch": r.best_epoch,
            "epochs_run": len(r.history), "cap": config.epochs, "val": r.best_val,
            "test": finetune.evaluate(model, src.X_test, src.y_test)}
    print("source task:", json.dumps(info), flush=True)
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


def make_table(source_path: Path, ssl_path: Path, out: Path, tiny: bool = False,
               source_info=None) -> None:
    split = cs.digits_split()
    source = torch.load(source_path, weights_only=True)
    ssl = torch.load(ssl_path, weights_only=True)
    budgets, seeds = ((5,), (0,)) if tiny else (BUDGETS, SEEDS)
    steps = 8 if tiny else cs.STEPS
    trained = [m for m in cs.STUDY_METHODS if m != "probe"]
    start, tuning, runs, layers = time.perf_counter(), [], [], []
    for per_class in budgets:
        for method in trained:
            grid = cs.LR_GRIDS[method][:2] if tiny else None
            t = cs.tune(method, split, per_class, TUNE_SEED, source, grid=grid, ssl_state=ssl,
                        steps=steps)
            tuning.append(t)
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
            train, val = cs.budget_split(split, per_class, seed, "inside")
            test = (split.X_test, split.y_test)
            model = cs.study_model("scratch", seed, None)    # the random control
            for depth in cs.DEPTHS:
                p = cs.probe_run(model, train, val, test, depth, seed)
                p.update(start="random", per_class=per_class, seed=seed)
                layers.append(p)
            print(f"layers: budget {per_class}, seed {seed} done", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "made_by": "python scripts/vgg_fair_study.py table",
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "processor": platform.processor(), "seconds": round(time.perf_counter() - start),
        "kernels": f"ATen {os.environ.get('ATEN_CPU_CAPABILITY', 'default')}, NumPy BLAS "
                   f"threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}",
        "steps": steps, "patience_steps": cs.PATIENCE_STEPS * steps // cs.STEPS,
        "tune_seed": TUNE_SEED,
        "source": source_info, "tuning": tuning, "runs": runs, "layers": layers},
        indent=1) + "\n")
    print(f"wrote {out} ({len(runs)} runs)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["weights", "table", "all"])
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


if __name__ == "__main__":
    main()
