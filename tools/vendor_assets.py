"""Copy the page assets the book serves itself (no CDN) out of node_modules.

  _assets/mathjax/        MathJax 3 (es5 build, with its input/ extensions)
  _assets/requirejs/      require.js, which the ipywidgets embed manager needs
  _assets/html-manager/   @jupyter-widgets/html-manager, renders saved widget state

_config.yml lists _assets in html_static_path, so Sphinx copies them to
_build/html/_static/. The folder is not called _static on purpose: Jupyter Book
adds every .js and .css under a root _static/ to every page.
"""
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NM = ROOT / "node_modules"
OUT = ROOT / "_assets"

COPIES = {
    NM / "mathjax" / "es5": OUT / "mathjax",
    NM / "requirejs" / "require.js": OUT / "requirejs" / "require.js",
    NM / "@jupyter-widgets" / "html-manager" / "dist": OUT / "html-manager",
}


def main() -> int:
    missing = [str(src) for src in COPIES if not src.exists()]
    if missing:
        print("vendor_assets: missing (run `npm ci` first):\n  " + "\n  ".join(missing),
              file=sys.stderr)
        return 1
    if OUT.exists():
        shutil.rmtree(OUT)
    for src, dst in COPIES.items():
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map"))
        else:
            shutil.copy2(src, dst)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"vendor_assets: {OUT.relative_to(ROOT)}/ ready ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
