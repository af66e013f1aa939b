"""Seeing what a network does: figures (``plots``), animations that are the
static twins of live panels (``animations``), and the live ipywidgets panels
(``widgets``). matplotlib and ipywidgets are imported only when a function
draws, so ``import nnlib`` needs neither."""
from . import animations, plots, widgets

__all__ = ["plots", "animations", "widgets"]
