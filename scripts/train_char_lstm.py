"""Train the character-level LSTM of chapter 5 for longer than a notebook can,
in PyTorch, and save the weights for nnlib (the names are the same).

    python scripts/train_char_lstm.py --steps 600 --out book/weights/char_lstm.npz

The model is ``nnlib.models.char_lstm(96, embed=32, hidden=256)``; its torch twin
(``nnlib.testing.torch_twin``) is trained with Adam on random 100-character
windows of ``nnlib.data.load_text()`` (the first 90%; the rest is validation),
in float32, seeded, with gradient clipping at norm 1 and a cosine learning-rate
schedule. The validation loss is measured every 250 steps and the weights
with the lowest one are saved (early stopping: the text is small, so a long
run overfits: in a 2,000-step run the validation loss was lowest at step 500
and rose from there while the training loss kept falling). 600 steps take
about 2 minutes on 2 CPU cores.
"""
import argparse
import json
import time

import numpy as np
import torch

import nnlib
from nnlib.testing import torch_twin
from nnlib.transformer_lm import windowed_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="book/weights/char_lstm.npz")
    ap.add_argument("--json", default=None,
                    help="also write the log (train and validation loss at "
                         "every evaluation) and the result, with the saved "
                         "weights' validation loss in windows of 256 "
                         "characters (section 5e's score), to this file")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = nnlib.data.load_text()
    vocab = nnlib.data.CharVocab(text)
    ids = vocab.encode(text)
    cut = int(0.9 * len(ids))
    train, val = ids[:cut], ids[cut:]

    model = nnlib.models.char_lstm(len(vocab), hidden=args.hidden, rng=rng)
    twin = torch_twin(model, dtype=torch.float32)
    opt = torch.optim.Adam(twin.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state, start = float("inf"), None, time.time()
    log = []
    for step in range(1, args.steps + 1):
        x, y = nnlib.data.text_batches(train, args.batch, args.seq_len, rng)
        out = twin(torch.from_numpy(x))
        loss = loss_fn(out.reshape(-1, len(vocab)), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps:
            with torch.no_grad():
                xv = torch.from_numpy(val[:-1][None])
                v = loss_fn(twin(xv)[0], torch.from_numpy(val[1:])).item()
            print(f"step {step}: train loss {loss.item():.3f}, val loss {v:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)
            log.append({"step": step, "train_loss": loss.item(), "val_loss": v})
            if v < best:
                best, best_step = v, step
                best_state = {k: t.detach().numpy().astype(np.float32).copy()
                              for k, t in twin.state_dict().items()}
    np.savez(args.out, **best_state)
    print(f"saved the weights of step {best_step} (val loss {best:.3f}) to {args.out}")
    if args.json:
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in best_state.items()})
        twin.eval()
        with torch.no_grad():
            windows = windowed_loss(lambda x: twin(torch.from_numpy(x)).numpy(),
                                    val, 256, 128, batch=16)
        print(f"the saved weights in windows of 256: val loss {windows:.4f}")
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "log": log, "best_step": best_step,
                       "best_val_loss": best, "val_loss_windows_256": windows,
                       "seconds": time.time() - start}, f, indent=1)


if __name__ == "__main__":
    main()
