"""Data sets that need no download: scikit-learn's bundled handwritten
digits, and a reader for MNIST's IDX files for readers who have them on disk
(nothing is fetched)."""
from __future__ import annotations

import numpy as np

__all__ = ["load_digits", "read_idx", "load_mnist", "MNIST_FILES"]


def load_digits(images: bool = False):
    """The 1,797 handwritten digits (8x8, 16 grey levels) that ship with scikit-learn.

    Returns ``(X, y)``: ``X`` float64 scaled to [0, 1], shape ``(1797, 64)``, or
    ``(1797, 1, 8, 8)`` (NCHW) when ``images=True``; ``y`` int64 labels 0-9.
    Nothing is downloaded: the file is part of the scikit-learn package.
    """
    from sklearn.datasets import load_digits as _load

    d = _load()
    X = d.data.astype(np.float64) / 16.0
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return X, d.target.astype(np.int64)


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


#: The four files of MNIST (LeCun et al.), each also accepted with ``.gz``.
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path) -> np.ndarray:
    """One IDX file (MNIST's format; gzip-compressed if the name ends in
    ``.gz``): two zero bytes, a type code, the number of dimensions, each size
    as a big-endian int32, then the data. Returns the array in native byte
    order, with the shape the header gives (MNIST: images ``(N, 28, 28)``
    uint8, labels ``(N,)``); raises naming the file and what is wrong with it."""
    import gzip
    from pathlib import Path

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"read_idx: cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (expected the magic "
                         f"bytes 00 00, a type code in {sorted(_IDX_TYPES)} and a rank; "
                         f"got {raw[:4].hex(' ') or 'an empty file'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} ends inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"read_idx: {path} has {len(raw) - header} bytes of data, "
                         f"expected {expected} for shape {shape} of {dtype.str[1:]} "
                         f"(truncated or corrupt)")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(directory, split: str = "train", images: bool = False):
    """MNIST from the IDX files in ``directory`` (as distributed, with or
    without ``.gz``). Nothing is downloaded: if the files are not there, the
    error lists the names it looked for.

    Returns ``(X, y)`` like ``load_digits``: ``X`` float64 in [0, 1] of shape
    ``(N, 784)``, or ``(N, 1, 28, 28)`` with ``images=True``; ``y`` int64.
    """
    from pathlib import Path

    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: expected split 'train' or 'test', got {split!r}")
    directory = Path(directory)
    found = []
    for name in MNIST_FILES[split]:
        candidates = [directory / name, directory / (name + ".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise FileNotFoundError(f"load_mnist: expected {name} or {name}.gz in "
                                    f"{directory}, found neither (nothing is downloaded)")
        found.append(hit)
    X, y = read_idx(found[0]), read_idx(found[1])
    if X.ndim != 3 or X.dtype != np.uint8 or y.ndim != 1 or y.dtype != np.uint8:
        raise ValueError(f"load_mnist: expected uint8 images (N, rows, cols) and uint8 "
                         f"labels (N,), got {X.dtype} {X.shape} and {y.dtype} {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"load_mnist: {found[0].name} holds {len(X)} images but "
                         f"{found[1].name} {len(y)} labels")
    if y.size and y.max() > 9:
        raise ValueError(f"load_mnist: expected labels 0-9, got up to {y.max()}")
    X = X.astype(np.float64) / 255.0
    X = X[:, None] if images else X.reshape(len(X), -1)
    return X, y.astype(np.int64)
