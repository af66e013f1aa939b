"""The VGG16 case study's long runs: the pretrained weights that chapter 9
ships, and its table of methods x labels per class x seeds.

    python scripts/vgg_transfer_study.py weights   # about 2 minutes on 2 cores
    python scripts/vgg_transfer_study.py table     # about 15 minutes on 2 cores (the saved file records 899 s)

``weights`` writes book/weights/vgg16_printed.pth (pretrained on printed digits
rendered from matplotlib's fonts) and book/weights/vgg16_ssl.pth (features
pretrained without labels on the handwritten training images, as a denoising
autoencoder). ``table`` fine-tunes from them with every method of
``nnlib.torch.case_study.METHODS`` on 10, 50 and all labels per class for
seeds 0-2, and writes book/data/vgg_transfer.json. Everything is seeded: the
same machine prints the same numbers.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from nnlib.torch import case_study, finetune

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "book" / "weights" / "vgg16_printed.pth"
SSL = ROOT / "book" / "weights" / "vgg16_ssl.pth"
TABLE = ROOT / "book" / "data" / "vgg_transfer.json"
BUDGETS = (10, 50, None)
SEEDS = (0, 1, 2)


def make_weights():
    SOURCE.parent.mkdir(parents=True, exist_ok=True)
    src = case_study.printed_split()
    model = case_study.small_vgg16(seed=0)
    config = finetune.TrainConfig(epochs=12, patience=4, shift=2, seed=0)
    r = finetune.fit(model, (src.X_train, src.y_train), (src.X_val, src.y_val), config)
    print(f"source task: best epoch {r.best_epoch}, validation {r.best_val:.3f}, test "
          f"{finetune.evaluate(model, src.X_test, src.y_test):.3f}, {r.seconds:.0f} s")
    torch.save(model.state_dict(), SOURCE)
    split = case_study.digits_split()
    model = case_study.small_vgg16(seed=0)
    losses = case_study.ssl_pretrain(model, split.X_train, epochs=30, seed=0)
    print(f"self-supervised: reconstruction error {losses[0]:.4f} -> {losses[-1]:.4f}")
    torch.save(model.state_dict(), SSL)


def make_table():
    split = case_study.digits_split()
    source = torch.load(SOURCE, weights_only=True)
    ssl = torch.load(SSL, weights_only=True)
    rows, start = [], time.perf_counter()
    for seed in SEEDS:
        for per_class in BUDGETS:
            for method in case_study.METHODS:
                r = case_study.transfer_run(method, split, per_class, seed,
                                            source_state=source, ssl_state=ssl)
                rows.append(r)
                print(json.dumps(r), flush=True)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(json.dumps({
        "made_by": "python scripts/vgg_transfer_study.py table",
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "seconds": round(time.perf_counter() - start), "runs": rows}, indent=1) + "\n")
    print(f"wrote {TABLE} ({len(rows)} runs)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["weights", "table", "all"])
    what = p.parse_args().what
    torch.set_num_threads(2)
    if what in ("weights", "all"):
        make_weights()
    if what in ("table", "all"):
        make_table()
