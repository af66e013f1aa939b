"""Run checked exercises the way a reader does, in JupyterLab's own UI.

    python tools/lab_exercise_check.py                 # one exercise per chapter
    python tools/lab_exercise_check.py relu_backward attention_forward

For each exercise: copy its chapter to a temporary folder, start JupyterLab
there (no token leaves the machine; port on 127.0.0.1), open the chapter in
headless chromium, run the exercise's cell as shipped (the checker must say
"not yet"), then type the chapter's own solution into the cell (its
``# solution: NAME`` block, with ``import numpy as np`` in front), run it again
(the checker must say "passed") and finally a wrong answer, the solution with
its result (the first of its results, when it returns several) scaled by -1
(the checker must say "not yet" again). Prints what the checker printed each time and saves a screenshot
of the cell after each run to ``_build/lab-check/NAME-N.png``; exits 1 if any
of it was not what a reader should see. Nothing tracked is written.

Needs what `make browser-test` needs (Debian's /usr/bin/chromium and the
playwright package, no `playwright install`); it is not part of `.ci/run`,
since JupyterLab's UI takes a minute per chapter to start and drive.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "_build" / "lab-check"


def solutions() -> dict:
    """name -> (chapter, solution source), from the chapters' dropdowns."""
    found = {}
    for path in sorted(BOOK.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                for src, name in re.findall(r"```python\n(# solution: (\w+)\n.*?)```", text,
                                            re.S):
                    found[name] = (path.stem, src)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int) -> subprocess.Popen:
    settings = folder / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell rendered, so that the page can find the exercise's cell
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(folder / ".lab-settings"))
    cmd = [str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser",
           "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.token=check", f"--ServerApp.root_dir={folder}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("JupyterLab did not start within 60 s")


def run_cell(page, cell, code: str | None, wait_s: float = 60.0) -> str:
    """Replace the cell's code (unless None), run it, return its output."""
    editor = cell.locator(".cm-content")
    editor.click()
    if code is not None:
        page.keyboard.press("Control+a")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(code)
    before = cell.locator(".jp-InputPrompt").inner_text()
    page.keyboard.press("Shift+Enter")
    deadline = time.time() + wait_s
    while time.time() < deadline:          # the prompt turns [n] when done
        prompt = cell.locator(".jp-InputPrompt").inner_text()
        if prompt != before and "*" not in prompt:
            break
        page.wait_for_timeout(250)
    return cell.locator(".jp-OutputArea").inner_text()


def check_exercise(page, name: str, source: str) -> list:
    # the first code cell that calls the checker on this exercise (the
    # notebook renders its cells one after another: wait for it)
    calls = re.compile(r'check\(\s*"' + name + '"')       # the call may span lines
    cell = page.locator(".jp-CodeCell", has_text=calls).first
    cell.wait_for(timeout=60_000)
    cell.scroll_into_view_if_needed()
    call = f'result = nnlib.exercises.check("{name}", {name})'
    header = "import numpy as np\nimport nnlib.exercises\n"
    wrong = (header + source + f"\n_right = {name}\n"
             f"def {name}(*args):\n    out = _right(*args)\n"
             "    if isinstance(out, tuple):\n"
             "        return (-np.asarray(out[0]),) + tuple(out[1:])\n"
             "    return -np.asarray(out)\n" + call)
    seen = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    for n, (what, code, expect) in enumerate([("as shipped", None, "not yet"),
                               ("the solution", header + source + "\n" + call, "passed"),
                               ("a wrong answer", wrong, "not yet")], 1):
        out = run_cell(page, cell, code)
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(SHOTS / f"{name}-{n}.png"))
        ok = f"{name}: {expect}" in out
        print(f"  {what:15s} {'ok' if ok else 'UNEXPECTED'}: {out.strip()[:300]}", flush=True)
        seen.append(ok)
    return seen


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    found = solutions()
    names = (argv if argv is not None else sys.argv[1:]) or sorted(
        {chapter: name for name, (chapter, _) in sorted(found.items())}.values())
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"lab_exercise_check: no solution block for {unknown}; "
                         f"expected one of {sorted(found)}")
    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        for chapter in sorted({found[n][0] for n in names}):
            shutil.copy(BOOK / f"{chapter}.ipynb", folder)
        port = free_port()
        lab = start_lab(folder, port)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name in names:
                chapter, source = found[name]
                print(f"{name} ({chapter})", flush=True)
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                page.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url
                           else r.abort())
                # a workspace of its own, so that the earlier chapters' tabs are
                # not restored beside this one
                page.goto(f"http://127.0.0.1:{port}/lab/workspaces/{name}/tree/"
                          f"{chapter}.ipynb?token=check&reset")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                page.wait_for_timeout(3000)    # run_cell waits for the kernel
                results += check_exercise(page, name, source)
                page.close()
        finally:
            browser.close()
            lab.terminate()
            lab.wait(timeout=30)
    print(f"{sum(results)} of {len(results)} outputs as a reader should see them")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
