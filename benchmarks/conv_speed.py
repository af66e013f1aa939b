"""nnlib's NumPy Conv2d against PyTorch on the CPU, float32, same machine, one run.

    .venv/bin/python benchmarks/conv_speed.py

Prints the best of 15 times of forward and of backward (input and weight gradients)
for each case, and nnlib's time divided by PyTorch's. Not a test: numbers depend
on the machine (the book reports the ones measured on its 2-core CI machine).
"""
import time

import numpy as np
import torch

import nnlib

CASES = [  # (batch, C_in, C_out, H=W, kernel, padding)
    (64, 3, 64, 32, 3, 1),
    (64, 64, 128, 16, 3, 1),
]


def best_time(fn, repeat=15):
    fn()                                          # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)   # the least disturbed run: robust on a shared machine


def main():
    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"numpy {np.__version__}; float32")
    print(f"{'case':34s} {'pass':9s} {'nnlib ms':>9s} {'torch ms':>9s} {'ratio':>6s}")
    rows = []
    for n, cin, cout, hw, k, p in CASES:
        x = rng.standard_normal((n, cin, hw, hw)).astype(np.float32)
        conv = nnlib.Conv2d(cin, cout, k, padding=p, rng=rng, dtype=np.float32)
        y = conv.forward(x)
        g = rng.standard_normal(y.shape).astype(np.float32)
        tconv = torch.nn.Conv2d(cin, cout, k, padding=p)
        with torch.no_grad():
            tconv.weight.copy_(torch.from_numpy(conv.weight.data))
            tconv.bias.copy_(torch.from_numpy(conv.bias.data))
        xt = torch.from_numpy(x).requires_grad_(True)
        gt = torch.from_numpy(g)

        def np_backward():
            conv.zero_grad()
            conv.backward(g)

        def torch_forward():
            with torch.no_grad():
                tconv(xt)

        def torch_backward():
            xt.grad = None
            tconv.zero_grad()
            yt.backward(gt, retain_graph=True)

        yt = tconv(xt)
        name = f"{n}x{cin}->{cout}, {hw}x{hw}, k{k} p{p}"
        for label, ours, theirs in (("forward", lambda: conv.forward(x), torch_forward),
                                    ("backward", np_backward, torch_backward)):
            a, b = best_time(ours), best_time(theirs)
            rows.append((name, label, a / b))
            print(f"{name:34s} {label:9s} {a * 1e3:9.1f} {b * 1e3:9.1f} {a / b:6.2f}")
    return rows


if __name__ == "__main__":
    main()
