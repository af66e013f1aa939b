"""Data that needs no download: scikit-learn's bundled digits, toy 2-D sets,
stratified splits and mini-batches, a shipped text, and printed characters
rendered from the fonts that matplotlib ships; and a reader for MNIST's IDX
files for readers who have them on disk (nothing is fetched).

Every function takes ``seed`` or ``rng`` so that chapters print the same numbers
on every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_finite
from .random import get_rng

__all__ = ["load_digits", "make_moons", "make_circles", "make_spirals", "make_xor",
           "make_toy", "TOY_SETS", "Split", "train_val_test_split", "batches", "one_hot",
           "Standardizer", "shift_images", "load_text",
           "CharVocab", "text_batches", "render_glyphs", "GLYPH_FONTS", "read_idx",
           "load_mnist", "MNIST_FILES"]


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


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles (scikit-learn's ``make_moons``), labels 0/1.
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64."""
    from sklearn.datasets import make_moons as _moons

    X, y = _moons(n_samples=n, noise=noise, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_circles(n: int = 200, noise: float = 0.08, factor: float = 0.5, seed: int = 0):
    """A small circle inside a large one (scikit-learn's ``make_circles``).
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64 (1: the inner circle)."""
    from sklearn.datasets import make_circles as _circles

    X, y = _circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64)


def make_spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0):
    """``classes`` interleaved spiral arms (the CS231n toy set; not in scikit-learn).

    Arm k at parameter t in [0, 1]: radius t, angle 4 t + 2 pi k / classes, plus
    Gaussian noise of std ``noise`` on the angle. ``n`` points in all.
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64 in [0, classes).
    """
    if classes < 2 or n < classes:
        raise ValueError(f"make_spirals: expected classes >= 2 and n >= classes, "
                         f"got n={n}, classes={classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = rng.uniform(0.05, 1.0, n)
    angle = 4.0 * t + 2 * np.pi * y / classes + noise * rng.standard_normal(n)
    X = np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1)
    return X, y.astype(np.int64)


def make_xor(n: int = 200, noise: float = 0.15, seed: int = 0):
    """Four Gaussian blobs at (+-1, +-1); the label is 1 where the signs differ (XOR).
    Returns ``X: (n, 2)`` float64 and ``y: (n,)`` int64."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    X = signs + noise * 2 * rng.standard_normal((n, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(np.int64)
    return X * 0.5, y


TOY_SETS = {"moons": make_moons, "circles": make_circles, "spiral": make_spirals,
            "xor": make_xor}


def make_toy(name: str, n: int = 300, seed: int = 0):
    """One of the toy 2-D sets by name: 'moons', 'circles', 'spiral' or 'xor'.
    Returns ``X: (n, 2)`` and ``y: (n,)``."""
    if name not in TOY_SETS:
        raise ValueError(f"make_toy: expected one of {sorted(TOY_SETS)}, got {name!r}")
    return TOY_SETS[name](n=n, seed=seed)


@dataclass
class Split:
    """What ``train_val_test_split`` returns: ``X_train: (n_train, ...)`` with
    ``y_train: (n_train,)``, and likewise for the validation and test sets."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)


def train_val_test_split(X, y, val: float = 0.15, test: float = 0.15, seed: int = 0,
                         stratify: bool = True) -> Split:
    """Split into train / validation / test, each keeping the class proportions.

    Uses scikit-learn's ``train_test_split`` twice (test first, then validation
    out of the rest). ``val`` and ``test`` are fractions of the whole data set.
    ``X: (N, ...)``, ``y: (N,)``; returns a ``Split`` whose six arrays keep
    ``X``'s trailing shape (images stay ``(n, C, H, W)``).
    """
    from sklearn.model_selection import train_test_split

    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"train_val_test_split: expected as many labels as rows, "
                         f"got {len(X)} rows and {len(y)} labels")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"train_val_test_split: expected 0 < val, test and val + test "
                         f"< 1, got val={val}, test={test}")
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test, random_state=seed, stratify=y if stratify else None)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val / (1 - test), random_state=seed + 1,
        stratify=y_rest if stratify else None)
    return Split(X_train, y_train, X_val, y_val, X_test, y_test)


def batches(X, y, batch_size: int, shuffle: bool = True, rng=None):
    """Yield ``(X_batch, y_batch)`` covering every row once; the last may be smaller."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: expected a positive integer batch_size, got {batch_size!r}")
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"batches: expected as many labels as rows, got {n} rows and "
                         f"{len(y)} labels")
    order = get_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], (None if y is None else y[idx])


def one_hot(y, n_classes: int) -> np.ndarray:
    """Integer labels ``(N,)`` to a float64 matrix ``(N, n_classes)``."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise TypeError(f"one_hot: expected a 1-D integer array, got dtype {y.dtype} "
                        f"and shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"one_hot: expected labels in [0, {n_classes}), got "
                         f"{y.min()}..{y.max()}")
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out


class Standardizer:
    """Subtract the mean and divide by the standard deviation of each feature,
    with statistics **fitted on the training set only** (``fit``), then applied
    to any set (``transform``). Features that are constant in the training set
    (std 0, like the digits' corner pixels) are only centred.

    A thin wrapper around scikit-learn's ``StandardScaler`` that adds the
    book's input checks (2-D, non-empty, finite, right number of features)
    and exposes ``mean`` and ``std`` as arrays. ``X: (N, D) -> (N, D)``;
    ``mean``, ``std``: ``(D,)``.
    """

    def __init__(self):
        from sklearn.preprocessing import StandardScaler

        self._scaler = StandardScaler()
        self._fitted = False

    @property
    def mean(self):
        return self._scaler.mean_ if self._fitted else None

    @property
    def std(self):
        return self._scaler.scale_ if self._fitted else None

    def fit(self, X) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"Standardizer.fit: expected a non-empty (N, features) array, "
                             f"got shape {X.shape}")
        check_finite(X, "Standardizer.fit", "X")
        self._scaler.fit(X)
        self._fitted = True
        return self

    def transform(self, X) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError("Standardizer.transform: call fit(X_train) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise ValueError(f"Standardizer.transform: expected (N, {len(self.mean)}), "
                             f"got {X.shape}")
        check_finite(X, "Standardizer.transform", "X")
        return self._scaler.transform(X)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)


def load_text(name: str = "stdlib_docstrings") -> str:
    """A text that ships with nnlib (no download), for character-level models.

    ``"stdlib_docstrings"``: about 120 kB of docstrings from Python's standard
    library (printable ASCII, 96 distinct characters), collected by
    ``tools/make_corpus.py``; (c) Python Software Foundation, PSF License.
    """
    from importlib.resources import files

    available = sorted(p.name.removesuffix(".txt") for p in files("nnlib.corpora").iterdir()
                       if p.name.endswith(".txt"))
    if name not in available:
        raise ValueError(f"load_text: expected one of {available}, got {name!r}")
    text = (files("nnlib.corpora") / f"{name}.txt").read_text(encoding="ascii")
    return text.split("\n\n", 1)[1]                     # drop the header line


class CharVocab:
    """Characters <-> integer ids, for character-level models.

    ``CharVocab(text)`` numbers the distinct characters of ``text`` in sorted
    order; ``encode(s)`` gives an int64 array of shape ``(len(s),)``,
    ``decode(ids)`` a string.
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharVocab: expected a non-empty string, got {text!r:.40}")
        self.chars = sorted(set(text))
        self._index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"CharVocab.encode: expected characters from the vocabulary, "
                             f"got {unknown[:5]!r}")
        return np.array([self._index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"CharVocab.decode: expected ids in [0, {len(self)}), "
                             f"got {ids.min()}..{ids.max()}")
        return "".join(self.chars[i] for i in ids.ravel())


def text_batches(ids, batch_size: int, seq_len: int, rng=None):
    """One batch of ``batch_size`` random windows of a token sequence ``ids``:
    inputs ``x = ids[s : s + seq_len]`` and targets ``y = ids[s + 1 : s + seq_len + 1]``
    (the next token at every position), each ``(batch_size, seq_len)``."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < seq_len + 2:
        raise ValueError(f"text_batches: expected a 1-D sequence longer than seq_len + 1 = "
                         f"{seq_len + 1}, got shape {ids.shape}")
    starts = get_rng(rng).integers(0, len(ids) - seq_len - 1, batch_size)
    windows = ids[starts[:, None] + np.arange(seq_len + 1)]
    return windows[:, :-1], windows[:, 1:]


def shift_images(images, max_shift: int = 1, rng=None) -> np.ndarray:
    """Data augmentation: move each image by a random whole number of pixels,
    from ``-max_shift`` to ``max_shift`` in each direction, filling with 0.

    ``images``: (N, H, W) or (N, H*W) for square images; returns the same shape.
    Uses ``scipy.ndimage.shift`` (order 0: pixels are moved, not interpolated).
    """
    from scipy.ndimage import shift

    images = np.asarray(images, dtype=np.float64)
    flat = images.ndim == 2
    if flat:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"shift_images: expected square images, got rows of "
                             f"{images.shape[1]} pixels")
        images = images.reshape(-1, side, side)
    if images.ndim != 3:
        raise ValueError(f"shift_images: expected (N, H, W) or (N, H*W), got {images.shape}")
    rng = get_rng(rng)
    moves = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
    out = np.stack([shift(img, m, order=0, mode="constant", cval=0.0)
                    for img, m in zip(images, moves)])
    return out.reshape(len(out), -1) if flat else out


# Fonts that ship with matplotlib, so rendering needs nothing from the system.
GLYPH_FONTS = (("DejaVu Sans", "bold"), ("DejaVu Serif", "bold"),
               ("DejaVu Sans Mono", "bold"), ("DejaVu Sans", "normal"),
               ("DejaVu Serif", "normal"), ("DejaVu Sans Mono", "normal"))


def render_glyphs(chars, n_per_char: int = 1, size: int = 8, jitter: float = 0.0,
                  fonts=GLYPH_FONTS, supersample: int = 4, rng=None):
    """Printed characters rendered the way scikit-learn's digits were made.

    The digits are 32x32 bitmaps whose 4x4 blocks were counted into 8x8 images
    of 0-16 ink; here each character is drawn as a filled outline (matplotlib's
    ``TextPath``) scaled to fill a ``size * supersample`` square bitmap, which
    is averaged over ``supersample x supersample`` blocks. ``jitter`` in [0, 1]
    scales random changes per image: rotation up to 15 degrees, size -15% to
    +5%, shift up to 8% of the side, and a random font of ``fonts`` (with
    ``jitter=0`` the fonts are used in turn).

    Returns ``(X, y)``: ``X`` float64 in [0, 1] of shape ``(N, size * size)``,
    ``N = len(chars) * n_per_char``, and ``y`` int64, the index of each image's
    character in ``chars``.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    chars = list(chars)
    if not chars or any(not isinstance(c, str) or len(c) != 1 or c.isspace()
                        for c in chars):
        raise ValueError(f"render_glyphs: expected printable single characters, got {chars!r}")
    if not (isinstance(n_per_char, int) and n_per_char >= 1):
        raise ValueError(f"render_glyphs: expected n_per_char >= 1, got {n_per_char!r}")
    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"render_glyphs: expected an integer size >= 4, got {size!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"render_glyphs: expected jitter in [0, 1], got {jitter!r}")
    if not fonts:
        raise ValueError("render_glyphs: expected at least one (family, weight) font")
    rng = get_rng(rng)
    props = [FontProperties(family=f, weight=w) for f, w in fonts]
    side = size * supersample
    centres = (np.arange(side) + 0.5) / side
    # pixel centres as (x, y) with y pointing up, row 0 at the top of the image
    grid = np.stack(np.meshgrid(centres, 1.0 - centres), axis=-1).reshape(-1, 2)
    X, y = [], []
    for label, ch in enumerate(chars):
        for k in range(n_per_char):
            font = props[rng.integers(len(props))] if jitter else props[k % len(props)]
            path = TextPath((0, 0), ch, size=1, prop=font)
            box = path.get_extents()
            angle, grow, shift = 0.0, 1.0, np.zeros(2)
            if jitter:
                angle = jitter * rng.uniform(-15, 15)
                grow = 1 + jitter * rng.uniform(-0.15, 0.05)
                shift = jitter * rng.uniform(-0.08, 0.08, 2)
            scale = 0.9 * grow / max(box.width, box.height)
            t = (Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2)
                 .scale(scale).rotate_deg(angle).translate(0.5 + shift[0], 0.5 + shift[1]))
            inside = np.zeros(len(grid), bool)
            for ring in path.transformed(t).to_polygons():   # even-odd rule: holes stay open
                inside ^= Path(ring).contains_points(grid)
            inside = inside.reshape(side, side)
            X.append(inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3)))
            y.append(label)
    return np.stack(X).reshape(len(X), -1), np.array(y, dtype=np.int64)


# --- MNIST's IDX files, read from disk --------------------------------------

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
