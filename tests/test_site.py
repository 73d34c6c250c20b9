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


# --- the API pages: docstrings render as written -------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}
_ROLE = re.compile(r":(?:py:)?(?:func|mod|meth|class|attr|data|exc|obj|ref|const|term):")


class _ApiPage(html.parser.HTMLParser):
    """A page of the API as a reader sees it: its prose (text outside code, signatures and the
    "Source code" boxes), every emphasis with the characters around it, the text of its code,
    and the boxes (admonitions, collapsible blocks) its docstrings made."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []          # (tag, class) of the open elements
        self.prose = []          # (object id, text)
        self.code = []           # text inside <code> of docstrings
        self.emphasis = []       # [object id, char before, content, char after]
        self.boxes = []          # (object id, class of an admonition or <details>)
        self.definition_lists = 0
        self.objects = []        # ids of the documented objects' headings
        self._object = None
        self._open_emphasis = None
        self._closed_emphasis = None

    def _in(self, test):
        return any(test(tag, cls) for tag, cls in self.stack)

    def _machinery(self):
        return self._in(lambda t, c: t in ("script", "style") or "mkdocstrings-source" in c
                        or "doc-signature" in c)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        cls = attrs.get("class") or ""
        if re.fullmatch(r"h[1-6]", tag) and "doc-heading" in cls:
            self._object = attrs.get("id")
            self.objects.append(self._object)
        if tag == "details" and "mkdocstrings-source" not in cls:
            self.boxes.append((self._object, "details " + cls))
        if tag == "div" and "admonition" in cls.split():
            self.boxes.append((self._object, cls))
        if tag == "dl":
            self.definition_lists += 1
        if tag in _VOID:
            return
        self.stack.append((tag, cls))
        if tag in ("em", "strong") and not self._in(lambda t, c: t in ("code", "pre")):
            before = self.prose[-1][1][-1:] if self.prose else ""
            self._open_emphasis = [self._object, before, "", ""]

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack and self.stack.pop()[0] != tag:
            pass
        if tag in ("em", "strong") and self._open_emphasis:
            self.emphasis.append(self._open_emphasis)
            self._closed_emphasis, self._open_emphasis = self._open_emphasis, None

    def handle_data(self, data):
        if self._machinery():
            return
        if self._in(lambda t, c: t in ("code", "pre")):
            self.code.append(data)
            return
        if self._open_emphasis is not None:
            self._open_emphasis[2] += data
        elif self._closed_emphasis is not None:
            self._closed_emphasis[3] = data[:1]
            self._closed_emphasis = None
        self.prose.append((self._object, data))


def _word_emphasis(before, content, after):
    """``*word*`` or ``*a few words*`` written on purpose: letters only, not inside a word. An
    asterisk of a formula that Markdown took for emphasis (``lr*weight_decay*p``,
    ``p *= 1 - lr*``, ``beta1**t``) fails one of the three."""
    return bool(re.fullmatch(r"[A-Za-z]+(?:[ '-][A-Za-z]+)*", content)
                and not re.match(r"\w", before or " ") and not re.match(r"\w", after or " "))


@pytest.fixture(scope="session")
def api_pages(site):
    pages = {}
    for page in sorted((site / "api").glob("*/index.html")):
        parser = _ApiPage()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page.parent.name] = parser
    assert len(pages) == len(list((ROOT / "docs" / "api").glob("*.md"))) >= 20
    return pages


def test_api_docstrings_render_as_written(api_pages):
    """No reST left (a role such as ``:func:`` or a ``::`` marker shows as text), no formula
    outside code (an asterisk in prose is one that survived by luck; one Markdown took becomes
    an emphasis), no line that Markdown or the Google-style parser turned into a box
    ("encoder: ..." is read as an admonition titled "encoder") or a definition list."""
    problems = []
    for name, page in api_pages.items():
        for obj, text in page.prose:
            problems += [(name, obj, "role", text.strip()[:80]) for _ in _ROLE.finditer(text)]
            if "::" in text:
                problems.append((name, obj, "::", text.strip()[:80]))
            if "*" in text:
                problems.append((name, obj, "* outside code", text.strip()[:80]))
        problems += [(name, obj, "emphasis", f"{before}<em>{content}</em>{after}")
                     for obj, before, content, after in page.emphasis
                     if not _word_emphasis(before, content, after)]
        problems += [(name, obj, "box", cls) for obj, cls in page.boxes]
        if page.definition_lists:
            problems.append((name, None, "definition list", page.definition_lists))
    assert not problems, "\n".join(map(str, problems))


def _object_text(site, page, object_id):
    """The rendered text of one object's section (its heading to the next heading)."""
    text = (site / "api" / page / "index.html").read_text(encoding="utf-8")
    start = text.index(f'id="{object_id}"')
    end = text.find('class="doc doc-heading"', start + len(object_id) + 10)
    section = re.sub(r'<details class="mkdocstrings-source">.*?</details>', "",
                     text[start:end if end > 0 else None], flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", section))


@pytest.mark.parametrize("page, object_id, formulas", [
    ("optim", "scratchnet.optim.SGD", [
        "g = grad + weight_decay*p;  buf = momentum*buf + (1 - dampening)*g",
        "g = g + momentum*buf if nesterov else buf;  p -= lr*g"]),
    ("optim", "scratchnet.optim.Adam", [
        "g = grad + weight_decay * p",
        "m = beta1*m + (1 - beta1)*g;   v = beta2*v + (1 - beta2)*g*g",
        "p -= lr/(1 - beta1**t) * m / (sqrt(v)/sqrt(1 - beta2**t) + eps)"]),
    ("optim", "scratchnet.optim.AdamW", ["p *= 1 - lr*weight_decay"]),
    ("optim", "scratchnet.optim.adam_step", [
        "param = param - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)"]),
    ("nn", "scratchnet.nn.Conv2d", ["(C*KH*KW, OH*OW*N)", "(OC, OH*OW*N)",
                                    "~ U(-1/sqrt(C/G*KH*KW), +1/sqrt(C/G*KH*KW))"]),
])
def test_update_rules_read_as_their_code(site, page, object_id, formulas):
    """The optimisers' update rules (and Conv2d's shapes) read on the site exactly as written
    in the code's docstrings: every ``*`` and ``**`` still there."""
    text = _object_text(site, page, object_id)
    for formula in formulas:
        assert formula in text, (object_id, formula, text[:1500])


def test_every_code_span_of_a_docstring_reads_as_written(site, api_pages):
    """Each inline code span (``...`` or `...`) of every docstring the API shows appears, as
    written, in the code of its page."""
    griffe = pytest.importorskip("griffe")
    package = griffe.load("scratchnet", search_paths=[str(ROOT)])
    checked, missing = 0, []
    for name, page in api_pages.items():
        source = (ROOT / "docs" / "api" / f"{name}.md").read_text(encoding="utf-8")
        ids = re.findall(r"^::: (\S+)", source, flags=re.M) + page.objects
        code = " ".join(" ".join(page.code).split())
        for object_id in dict.fromkeys(i for i in ids if i and i.startswith("scratchnet")):
            path = object_id.removeprefix("scratchnet").lstrip(".")
            obj = package[path] if path else package
            if not obj.docstring:
                continue
            for double, single in re.findall(r"``(.+?)``|(?<![`\w])`([^`]+?)`(?![`\w])",
                                             obj.docstring.value, flags=re.S):
                span = " ".join((double or single).split())
                checked += 1
                if span not in code:
                    missing.append((name, object_id, span))
    assert checked > 500
    assert not missing, "\n".join(map(str, missing))


def test_api_shows_every_public_method_its_own_source_and_types(site, api_pages):
    """Undocumented methods are shown too (the course is about forward and backward); a class
    shows its own source, never an inherited ``Module.__init__``; no private base class; the
    signatures carry their annotations."""
    import scratchnet.nn as nn
    page = api_pages["nn"]
    ids = set(page.objects)
    wanted = [f"scratchnet.nn.Module.{m}" for m in
              ("forward", "backward", "parameters", "zero_grad", "train", "eval")]
    layers = [name for name in nn.__all__ if isinstance(getattr(nn, name), type)
              and issubclass(getattr(nn, name), nn.Module) and name != "Module"]
    assert len(layers) >= 15
    wanted += [f"scratchnet.nn.{name}.{m}" for name in layers for m in ("forward", "backward")]
    assert not [i for i in wanted if i not in ids]

    text = (site / "api" / "nn" / "index.html").read_text(encoding="utf-8")
    # Classes with no __init__ of their own show their class body; the others their __init__
    # (ReLU's takes inplace=, MSELoss's reduction=), never Module's.
    for name in ("Sigmoid", "Tanh", "ReLU", "MSELoss", "Conv2d"):
        start = text.index(f'id="scratchnet.nn.{name}"')
        section = text[start:text.index('class="doc doc-children"', start)]
        source = re.search(r'<details class="mkdocstrings-source">.*?</details>', section, re.S)
        code = html.unescape(re.sub(r"<[^>]+>", "", source.group(0)))
        own = {"Conv2d": "def __init__(self, in_channels: int",
               "ReLU": "def __init__(self, inplace: bool = False)",
               "MSELoss": "def __init__(self, *, reduction"}.get(name, f"class {name}(")
        assert own in code, (name, code[:300])
        assert "Module.__init__" not in code and "self._hooks" not in code
    bases = [html.unescape(re.sub(r"<[^>]+>", "", b)) for p in sorted((site / "api").glob("*/index.html"))
             for b in re.findall(r'class="doc doc-class-bases">(.*?)</p>',
                                 p.read_text(encoding="utf-8"), re.S)]
    assert bases and not [b for b in bases if re.search(r"\b_\w", b)], bases
    conv = _object_text(site, "nn", "scratchnet.nn.Conv2d")
    # one parameter a line: the formatter of the docs extra (ruff) wrapped the signature
    assert "(\n    in_channels: int,\n" in conv and "\n    stride: IntOrPair = 1,\n" in conv


def test_course_and_api_link_each_other(site):
    """Each chapter's "Code:" line links the API objects it cites (every link lands on an
    object of its page), and the API links back to every chapter."""
    for page in sorted((site / "learn").glob("0*/index.html")):
        text = page.read_text(encoding="utf-8")
        code_line = re.search(r"<p><strong>Code:</strong>(.*?)</p>", text, re.S).group(1)
        links = re.findall(r'href="(\.\./\.\./api/[^"#]+)#([^"]+)"', code_line)
        assert len(links) >= 2, page
        for target, anchor in links:
            target_page = (page.parent / target / "index.html").resolve()
            assert f'id="{anchor}"' in target_page.read_text(encoding="utf-8"), (page, anchor)
    chapters = set()
    for page in (site / "api").glob("*/index.html"):
        chapters |= set(re.findall(r'href="\.\./\.\./learn/(0\d-[\w-]+)/"',
                                   page.read_text(encoding="utf-8")))
    assert chapters == {p.parent.name for p in (site / "learn").glob("0*/index.html")}
