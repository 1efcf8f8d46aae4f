"""Look at the built book as a reader would: headless Chromium loads every page of _build/html offline (after its
scripts, MathJax included, have run) and the check fails on a page with raw TeX, a broken image, a Python traceback
or a dead internal link. It saves a screenshot of each page under _build/screenshots/.

    python .ci/check_book.py [_build/html]
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=8000"]
SKIP = {"genindex.html", "search.html"}
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\\frac\{|\\mathrm\{|\\lVert")


class Page(HTMLParser):
    """Links, images, ids and the visible text (outside code, scripts and MathJax's own output) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.errors: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        classes = (a.get("class") or "").split()
        if "output_error" in classes or "traceback" in classes:
            self.errors.append("an error output cell")
        if tag in ("script", "style", "pre", "code", "mjx-container", "svg", "math") or "highlight" in classes:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "pre", "code", "mjx-container", "svg", "math") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def rendered_dom(chromium: str, page: Path, profile: str) -> str:
    out = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def screenshot(chromium: str, page: Path, target: Path, profile: str) -> None:
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2400",
                    f"--screenshot={target}", page.as_uri()], capture_output=True, timeout=120)


def check(root: Path) -> list[str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        return ["chromium is not installed (Debian: apt-get install chromium)"]
    shots = root.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    problems: list[str] = []
    pages = sorted(p for p in root.rglob("*.html") if p.name not in SKIP and "_static" not in p.parts)
    ids: dict[Path, set[str]] = {}
    parsed: dict[Path, Page] = {}
    with tempfile.TemporaryDirectory() as profile:
        for page in pages:
            redirect = re.search(r'http-equiv="refresh"[^>]*url=([^"]+)"', page.read_text(), re.IGNORECASE)
            if redirect:  # the book's index.html only forwards to the first chapter
                if not (page.parent / redirect.group(1)).is_file():
                    problems.append(f"{page.relative_to(root)}: redirects to a missing page {redirect.group(1)}")
                continue
            dom = rendered_dom(chromium, page, profile)
            if not dom.strip():
                problems.append(f"{page.relative_to(root)}: Chromium rendered nothing")
                continue
            p = Page()
            p.feed(dom)
            parsed[page], ids[page] = p, p.ids
            screenshot(chromium, page, shots / (str(page.relative_to(root)).replace("/", "_") + ".png"), profile)
    for page, p in parsed.items():
        name = page.relative_to(root)
        text = html.unescape(" ".join(p.text))
        if m := RAW_TEX.search(text):
            problems.append(f"{name}: raw TeX in the page: ...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
        if "Traceback (most recent call last)" in text:
            problems.append(f"{name}: a Python traceback")
        problems += [f"{name}: {e}" for e in p.errors]
        for src in p.images:
            if urlparse(src).scheme in ("", "file") and not src.startswith("data:"):
                if not (page.parent / unquote(urlparse(src).path)).resolve().is_file():
                    problems.append(f"{name}: broken image {src}")
        for href in p.links:
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                problems.append(f"{name}: dead link {href}")
            elif url.fragment and target in ids and url.fragment not in ids[target]:
                problems.append(f"{name}: dead anchor {href}")
    print(f"checked {len(parsed)} pages; screenshots in {shots}")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html").resolve()
    if not (root / "index.html").is_file():
        print(f"no built book at {root}: run `make book` first")
        return 1
    problems = check(root)
    for p in problems:
        print("FAIL", p)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
