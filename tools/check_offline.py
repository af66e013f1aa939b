"""Fail if any built page would fetch a script, style, font or image from the network.

Looks at every src=/href= of <script>, <link rel=stylesheet|preload|modulepreload>,
<img>, <iframe>, <source> and at url(...) in inline styles and in the built CSS.
Plain <a href="https://..."> links are allowed: a reader clicks them on purpose.
Usage: python tools/check_offline.py _build/html
"""
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^(https?:)?//", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", re.I)


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.remote = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        urls = []
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed"):
            urls.append(a.get("src"))
        if tag == "object":
            urls.append(a.get("data"))
        if tag == "link" and (a.get("rel") or "").lower() in (
                "stylesheet", "preload", "modulepreload", "icon", "prefetch"):
            urls.append(a.get("href"))
        for u in urls:
            if u and REMOTE.match(u.strip()):
                self.remote.append(f"<{tag}> {u}")
        for u in CSS_URL.findall(a.get("style") or ""):
            self.remote.append(f"style url {u}")


def main(root: str) -> int:
    root = Path(root)
    pages = sorted(root.rglob("*.html"))
    if not pages:
        print(f"check_offline: no HTML pages under {root}", file=sys.stderr)
        return 1
    problems = []
    for page in pages:
        c = Collector()
        text = page.read_text(encoding="utf-8", errors="replace")
        c.feed(text)
        # remote ES module imports inside inline scripts (e.g. a CDN mermaid)
        c.remote += [f"import {m}" for m in re.findall(
            r"import\s[^;]*?from\s+['\"]((?:https?:)?//[^'\"]+)", text)]
        problems += [f"{page.relative_to(root)}: {r}" for r in c.remote]
    for css in root.rglob("_static/**/*.css"):
        for u in CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(root)}: css url {u}")
    if problems:
        print("check_offline: the built book would load assets from the network:",
              file=sys.stderr)
        print("\n".join("  " + p for p in problems), file=sys.stderr)
        return 1
    print(f"check_offline: {len(pages)} pages, no asset from the network")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
