"""Text for character-level models: a corpus that ships with nnlib, a
character vocabulary, and random windows of next-character targets."""
from __future__ import annotations

import numpy as np

from ..random import get_rng

__all__ = ["load_text", "CharVocab", "text_batches"]


def load_text(name: str = "stdlib_docstrings") -> str:
    """A text that ships with nnlib (no download), for character-level models.

    ``"stdlib_docstrings"``: about 120 kB of docstrings from Python's standard
    library (printable ASCII, 96 distinct characters), collected by
    ``scripts/make_corpus.py``; (c) Python Software Foundation, PSF License.

    ``"stdlib_code"``: about 56 kB of the standard library's source code (ten
    small modules, colorsys to contextlib, docstrings and comments removed,
    written back by ``ast.unparse``), in the characters of the first text, so
    a model trained on the docstrings can read it (section 5f adapts one to
    it); ``python scripts/make_corpus.py code``; same licence.
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
