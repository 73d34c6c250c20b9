"""The docs site as built: it loads nothing from another host (math, fonts and scripts are
its own), so it reads the same offline, behind a firewall or from ``mkdocs serve``.

Builds the site once (``mkdocs build --strict``, about 10 s). Needs the docs extra
(``pip install -e ".[docs]"``): skipped without it, except in CI (``CI=true``), which installs it.
"""
import html.parser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    try:
        import mkdocs  # noqa: F401
        import mathjax  # noqa: F401
    except ImportError:
        msg = 'the docs extra is not installed (pip install -e ".[docs]")'
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: the site must be checked)")
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


class _Resources(html.parser.HTMLParser):
    """Every URL a page makes the browser fetch: scripts, styles, fonts, icons, images, frames."""

    LOADING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"),
               ("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src")}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (tag, name) in self.LOADING and value:
                self.urls.append(value)


def external(url):
    return bool(re.match(r"(https?:)?//", url))


def test_no_page_loads_anything_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    offenders = {}
    for page in pages:
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8"))
        bad = [u for u in parser.urls if external(u)]
        if bad:
            offenders[str(page.relative_to(site))] = sorted(set(bad))
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        bad = [u for u in re.findall(r"""url\(\s*['"]?([^'")\s]+)""", text) if external(u)]
        bad += [u for u in re.findall(r"""@import\s+(?:url\()?['"]?([^'");\s]+)""", text) if external(u)]
        if bad:
            offenders[str(css.relative_to(site))] = sorted(set(bad))
    assert not offenders, offenders


def test_the_site_serves_its_own_math_renderer(site):
    mathjax = site / "assets" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 500_000
    assert (mathjax / "LICENSE").is_file()
    fonts = list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20
    page = (site / "learn" / "03-convolution" / "index.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in page and "assets/mathjax/tex-chtml.js" in page


def test_no_table_row_renders_as_text(site):
    """A Markdown table row that lost its table (a paragraph before it, no blank line) shows up
    as a paragraph of ``| 30 | ... |``."""
    stray = {}
    for page in site.rglob("*.html"):
        paragraphs = re.findall(r"<p>(.*?)</p>", page.read_text(encoding="utf-8"), flags=re.S)
        rows = [line[:60] for p in paragraphs for line in p.splitlines()
                if re.match(r"\s*\|.*\|\s*$", line)]
        if rows:
            stray[str(page.relative_to(site))] = rows[:3]
    assert not stray, stray
