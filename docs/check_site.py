#!/usr/bin/env python
"""Open the built site's pages in headless Chromium, served from 127.0.0.1 with no other
network, and count the formulas that typeset: every ``arithmatex`` element of a page must hold
a MathJax container once its scripts ran, and no raw ``\\(`` / ``\\[`` may be left.

    mkdocs build --strict --site-dir /tmp/site
    python docs/check_site.py /tmp/site learn/01-chain learn/03-convolution ...   # or no pages: the course

Needs Debian's chromium (``apt-get install chromium``). Prints one line per page and a total;
exits 1 if any formula stayed raw.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000", "--dump-dom"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(site: Path) -> tuple[http.server.HTTPServer, int]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def count(dom: str) -> tuple[int, int, int]:
    """(formulas, typeset, raw): arithmatex elements, MathJax containers, leftover delimiters."""
    formulas = len(re.findall(r'class="arithmatex"', dom))
    typeset = len(re.findall(r"<mjx-container", dom))
    texts = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    raw = len(re.findall(r"\\\(|\\\[", re.sub(r"<[^>]+>", "", texts)))
    return formulas, typeset, raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("pages", nargs="*")
    args = parser.parse_args()
    pages = args.pages or sorted(p.parent.relative_to(args.site).as_posix()
                                 for p in (args.site / "learn").glob("0*/index.html"))
    server, port = serve(args.site)
    total = [0, 0, 0]
    try:
        with tempfile.TemporaryDirectory() as profile:
            for page in pages:
                dom = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      f"http://127.0.0.1:{port}/{page.strip('/')}/"],
                                     capture_output=True, text=True, timeout=120).stdout
                n = count(dom)
                total = [a + b for a, b in zip(total, n)]
                print(f"{page}: {n[0]} formulas, {n[1]} typeset, {n[2]} raw delimiters left")
    finally:
        server.shutdown()
    print(f"total: {total[0]} formulas, {total[1]} typeset, {total[2]} raw")
    return 0 if total[0] == total[1] and total[2] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
