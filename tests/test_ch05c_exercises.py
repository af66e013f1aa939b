"""Section 5c's exercise 3 (added 2026-12): its solution's code runs and
shows what the solution says -- changing head 2's columns of ``out_proj``
moves the ``in_proj_weight`` gradient of head 2's rows only."""
import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.book

BOOK = Path(__file__).resolve().parents[1] / "book"


def exercise(number: int) -> str:
    nb = json.loads((BOOK / "05c-attention.ipynb").read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"]
                     if c["cell_type"] == "markdown")
    part = text.split("## Exercises", 1)[1]
    return re.split(r"^\d+\. ", part, flags=re.M)[number]


def test_ch05c_exercise_3_only_head_2_moves():
    from nnlib.layers import MultiheadAttention
    text = exercise(3)
    assert "{admonition} Solution" in text and ":class: dropdown" in text
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope = {"np": np, "MultiheadAttention": MultiheadAttention}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(code, scope)
    moved = scope["moved"].max(axis=(0, 2, 3))      # per head
    assert moved.shape == (4,)
    assert moved[2] > 0.1 and np.all(np.delete(moved, 2) == 0), moved
    assert "Only head 2's rows change" in text
    assert out.getvalue().strip().startswith("[")
