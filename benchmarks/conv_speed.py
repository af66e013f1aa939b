"""nnlib's NumPy Conv2d against PyTorch on the CPU, float32, same machine, one run.

    .venv/bin/python benchmarks/conv_speed.py [--repeat 7] [--threads N] [--save PATH]

For each case it times the forward pass (no cache kept, as torch under
``no_grad``), the backward pass alone (input, weight and bias gradients, from a
stored forward: ``conv2d_backward`` on a kept cache, torch's ``backward`` with
``retain_graph``) and forward + backward, each the median of ``--repeat``
timings after a warm-up, nnlib's and PyTorch's calls alternating so that both
see the same load. It prints both medians and nnlib's divided by PyTorch's.

PyTorch gets as many threads as NumPy's BLAS uses (read with threadpoolctl,
printed on the first line), or ``--threads`` for both. Not a test: times
depend on the machine and, on a shared machine, on its load; the ratios are
steadier than the times. Takes well under a minute on 2 cores.

``--save PATH`` adds this run's table to a JSON file (one entry per thread
count, replacing an older entry with the same count), with the date and the
thread report; chapter 4 prints its table from ``book/data/conv_speed.json``,
made by ``--threads 2 --save book/data/conv_speed.json`` and ``--threads 1
--save book/data/conv_speed.json``, so the page shows what was measured
instead of typed numbers.
"""
import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import nnlib
from nnlib.functional.conv import conv2d_backward, conv2d_forward

CASES = [  # (batch, C_in, C_out, H=W, kernel, padding)
    (64, 3, 64, 32, 3, 1),
    (64, 64, 128, 16, 3, 1),
    (32, 128, 128, 8, 3, 1),
]


def numpy_blas():
    """threadpoolctl's record of the BLAS NumPy calls (the first BLAS if none
    is NumPy's own)."""
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    ours = [p for p in blas if "numpy" in p["filepath"]]
    return (ours or blas or [None])[0]


def thread_report():
    """One line: the threads NumPy's BLAS and PyTorch use."""
    blas = numpy_blas()
    numpy_part = ("no BLAS found" if blas is None else
                  f"{blas['internal_api']} {blas['version']}, {blas['num_threads']} threads")
    omp = [p for p in threadpool_info() if p["user_api"] == "openmp" and "torch" in p["filepath"]]
    omp_part = f", OpenMP {omp[0]['num_threads']}" if omp else ""
    return (f"numpy {np.__version__} ({numpy_part}); torch {torch.__version__} "
            f"({torch.get_num_threads()} intra-op threads{omp_part})")


def median_times(fns, repeat):
    """Median time of each function in ``fns``, calls alternating, after a warm-up."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def run_case(n, cin, cout, hw, k, p, rng, repeat):
    x = rng.standard_normal((n, cin, hw, hw)).astype(np.float32)
    conv = nnlib.Conv2d(cin, cout, k, padding=p, rng=rng, dtype=np.float32)
    weight, bias = conv.weight.data, conv.bias.data
    y, cache = conv2d_forward(x, weight, bias, 1, p)
    g = rng.standard_normal(y.shape).astype(np.float32)
    grads = conv2d_backward(g, cache)
    assert all(a.dtype == np.float32 for a in (y, cache[1], *grads)), "float64 crept in"
    tconv = torch.nn.Conv2d(cin, cout, k, padding=p)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(weight))
        tconv.bias.copy_(torch.from_numpy(bias))
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)
    yt = tconv(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-3, atol=1e-3)

    def np_forward():                # keeps no cache, as torch under no_grad
        with nnlib.no_grad():
            conv.forward(x)

    def np_backward():               # from a stored forward, as torch's retained graph
        conv2d_backward(g, cache)

    def np_both():
        conv.zero_grad()
        conv.forward(x)
        conv.backward(g)

    def torch_forward():
        with torch.no_grad():
            tconv(xt)

    def torch_backward():
        xt.grad = None
        tconv.zero_grad()
        yt.backward(gt, retain_graph=True)

    def torch_both():
        xt.grad = None
        tconv.zero_grad()
        tconv(xt).backward(gt)

    return [(label, *median_times(fns, repeat)) for label, fns in
            (("forward", [np_forward, torch_forward]),
             ("backward", [np_backward, torch_backward]),
             ("fwd+bwd", [np_both, torch_both]))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timings per median (>= 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS and for torch (default: NumPy's)")
    parser.add_argument("--save", type=Path, default=None,
                        help="add this run to a JSON file (one entry per thread count)")
    args = parser.parse_args(argv)
    if args.repeat < 5:
        parser.error("--repeat must be at least 5")
    if args.threads is not None:
        threadpool_limits(args.threads, user_api="blas")
        torch.set_num_threads(args.threads)
    else:
        blas = numpy_blas()
        torch.set_num_threads(blas["num_threads"] if blas else 1)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    report = thread_report()
    print(f"{report}; float32; median of {args.repeat}")
    print(f"{'case':30s} {'pass':9s} {'nnlib ms':>9s} {'torch ms':>9s} {'ratio':>6s}")
    rows, saved = [], []
    for n, cin, cout, hw, k, p in CASES:
        name = f"{n}x{cin}->{cout}, {hw}x{hw}, k{k} p{p}"
        for label, a, b in run_case(n, cin, cout, hw, k, p, rng, args.repeat):
            rows.append((name, label, a / b))
            print(f"{name:30s} {label:9s} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:6.2f}",
                  flush=True)
            saved.append({"case": name, "pass": label, "nnlib_ms": a * 1e3,
                          "torch_ms": b * 1e3, "ratio": a / b})
    if args.save is not None:
        runs = json.loads(args.save.read_text())["runs"] if args.save.exists() else []
        runs = [r for r in runs if r["threads"] != threads]
        runs.append({"threads": threads, "date": datetime.date.today().isoformat(),
                     "report": report, "repeat": args.repeat, "rows": saved})
        args.save.write_text(json.dumps(
            {"made_by": "python benchmarks/conv_speed.py --threads N --save PATH",
             "runs": sorted(runs, key=lambda r: -r["threads"])}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
