"""Train the character-level Transformer of section 5d for longer than a
notebook can, in PyTorch, and save the weights for nnlib (the names are the
same).

    python scripts/train_char_transformer.py --steps 900 --out book/weights/char_transformer.npz

The model is ``nnlib.transformer_lm.CharTransformer(96)``: d_model 96, 4
heads, 3 pre-norm blocks with an MLP of 288, learned positions for 256
tokens; 323,232 parameters, against 324,704 for chapter 5's LSTM. Its torch
twin (``nnlib.testing.torch_twin``) is trained with AdamW on random windows
of 256 characters of ``nnlib.data.load_text()`` (the first 90%, chapter 5's
split; the rest is validation), in float32, seeded, with gradient clipping
at norm 1 and a linear warm-up then cosine learning-rate schedule. The
validation loss (``nnlib.transformer_lm.windowed_loss``: windows of 256,
every character scored once with at least 128 characters of context after
the first window) is measured every ``--eval-every`` steps and the weights
with the lowest one are saved, rounded to float16 to halve the file (the
rounding changes the validation loss by the amount printed at the end).

The shipped weights are those of the command above (seed 0, no dropout):
the validation loss fell at every evaluation and was lowest at the last
step, 1.931 nats per character (1.9312 after the float16 rounding), while
the training loss reached 1.13 -- the model overfits this small text. The
run took 373 s (6 min 13 s) on the book's 2-core machine, holding the CPU
lock alone; about 0.4 s per step. ``--dropout 0.1`` (in the MLP and on
the residual branches) doubled the time per step there (0.72 s) and was
not finished within the time budget; what it would buy is not measured.
The embeddings start at N(0, 0.02^2) (``CharTransformer``'s default): with
torch's N(0, 1) the same run had a validation loss of 2.52 at step 450
against 2.12.
"""
import argparse
import json
import math
import time

import numpy as np
import torch

import nnlib
from nnlib.testing import torch_twin
from nnlib.transformer_lm import CharTransformer, windowed_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="book/weights/char_transformer.npz")
    ap.add_argument("--json", default=None,
                    help="also write the log (train and validation loss at "
                         "every evaluation) and the result to this file")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = nnlib.data.load_text()
    vocab = nnlib.data.CharVocab(text)
    ids = vocab.encode(text)
    cut = int(0.9 * len(ids))
    train, val = ids[:cut], ids[cut:]

    model = CharTransformer(len(vocab), max_len=args.seq_len, dropout=args.dropout,
                            rng=rng)
    twin = torch_twin(model, dtype=torch.float32)
    decay = [p for n, p in twin.named_parameters() if p.ndim == 2 and "emb" not in n]
    rest = [p for n, p in twin.named_parameters() if not (p.ndim == 2 and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=args.lr)

    def factor(step):                   # linear warm-up, then cosine to 0
        if step < args.warmup:
            return (step + 1) / args.warmup
        done = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * (1 + math.cos(math.pi * done))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    loss_fn = torch.nn.CrossEntropyLoss()

    def val_loss():
        twin.eval()
        with torch.no_grad():
            v = windowed_loss(lambda x: twin(torch.from_numpy(x)).numpy(), val,
                              args.seq_len, args.seq_len // 2, batch=16)
        twin.train()
        return v

    best, best_state, best_step, start = float("inf"), None, 0, time.time()
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
        if step % args.eval_every == 0 or step == args.steps:
            v = val_loss()
            print(f"step {step}: train loss {loss.item():.3f}, val loss {v:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)
            log.append({"step": step, "train_loss": loss.item(), "val_loss": v})
            if v < best:
                best, best_step = v, step
                best_state = {k: t.detach().numpy().copy()
                              for k, t in twin.state_dict().items()}
    half = {k: v.astype(np.float16) for k, v in best_state.items()}
    np.savez(args.out, **half)
    with torch.no_grad():
        twin.load_state_dict({k: torch.from_numpy(v.astype(np.float32))
                              for k, v in half.items()})
    rounded = val_loss()
    print(f"saved the weights of step {best_step} (val loss {best:.4f}; "
          f"{rounded:.4f} after rounding to float16) to {args.out} "
          f"({time.time() - start:.0f} s in all)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "log": log, "best_step": best_step,
                       "best_val_loss": best, "val_loss_float16": rounded,
                       "seconds": time.time() - start}, f, indent=1)


if __name__ == "__main__":
    main()
