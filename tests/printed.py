"""The text a notebook run printed, in a form two runs can be compared by:
per code cell, its streams merged as nbval merges them (stdout, then stderr,
carriage returns and backspaces applied), then the plain text of its displayed
results, with memory addresses masked, and rounding errors too: a number in
scientific notation below 1e-11 (an exponent of -12 or less, such as a
difference from PyTorch of 2.2e-16) is written "<1e-11", since its digits
depend on the processor's kernels and not on the notebook (the checks that
assert on such numbers use tolerances; a number like 1.8e-04 is kept). Used by tests/test_notebooks.py and by
the nbval hook in the repository's conftest.py, so that the nbval run and the
timed run check each other (the determinism check costs no extra run)."""
import copy
import re

from nbval.plugin import coalesce_streams


HIDDEN = "remove-output"
ROUNDOFF = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?e-(?:1[2-9]|[2-9]\d|\d{3,})(?![\w.])")


def shown_outputs(cell, outputs):
    """The outputs that count: none for a cell tagged ``remove-output``, the
    live-widget cells, whose widgets' own output nbclient routes into the
    widget and nbval into the cell (the book hides these cells anyway)."""
    return [] if HIDDEN in cell.get("metadata", {}).get("tags", []) else outputs


def printed(cells_outputs) -> str:
    """``cells_outputs``: one list of outputs (nbformat nodes) per code cell."""
    out = []
    for outputs in cells_outputs:
        for o in coalesce_streams(copy.deepcopy(list(outputs))):
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o["data"]:
                out.append("\n" + o["data"]["text/plain"] + "\n")
        out.append("\n")
    return mask("".join(out))


def mask(text: str) -> str:
    """Memory addresses and rounding-level numbers, masked (see above)."""
    return ROUNDOFF.sub("<1e-11", re.sub(r"0x[0-9a-f]+", "0x…", text))
