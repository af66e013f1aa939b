"""Data that needs no download: scikit-learn's bundled digits, toy 2-D sets,
stratified splits and mini-batches, a shipped text, and printed characters
rendered from the fonts that matplotlib ships; and a reader for MNIST's IDX
files for readers who have them on disk (nothing is fetched).

Every function takes ``seed`` or ``rng`` so that chapters print the same numbers
on every run. The modules, by job (every name is also here, ``nnlib.data.X``):

=============  ==============================================================
``datasets``   ``load_digits``; ``read_idx`` and ``load_mnist`` (MNIST on disk)
``toy``        ``make_moons``, ``make_circles``, ``make_spirals``, ``make_xor``,
               ``make_toy``
``prep``       ``Split``, ``train_val_test_split``, ``batches``, ``one_hot``,
               ``Standardizer``, ``shift_images`` (augmentation)
``text``       ``load_text``, ``CharVocab``, ``text_batches``
``glyphs``     ``render_glyphs``
``images``     ``KERNELS``, ``parse_kernel``, ``apply_kernel``
=============  ==============================================================
"""
from .datasets import MNIST_FILES, load_digits, load_mnist, read_idx
from .glyphs import GLYPH_FONTS, render_glyphs
from .images import KERNELS, apply_kernel, parse_kernel
from .prep import Split, Standardizer, batches, one_hot, shift_images, train_val_test_split
from .text import CharVocab, load_text, text_batches
from .toy import (TOY_SETS, first_before_last, make_circles, make_moons, make_spirals,
                  make_toy, make_xor)

__all__ = ["load_digits", "make_moons", "make_circles", "make_spirals", "make_xor",
           "make_toy", "TOY_SETS", "Split", "train_val_test_split", "batches", "one_hot",
           "Standardizer", "shift_images", "load_text",
           "CharVocab", "text_batches", "render_glyphs", "GLYPH_FONTS", "read_idx",
           "load_mnist", "MNIST_FILES", "KERNELS", "parse_kernel", "apply_kernel",
           "first_before_last"]
