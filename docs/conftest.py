"""Every code block of the Markdown pages under docs/ runs in the test suite (Sybil).

* ```python blocks run in order, sharing one namespace per page (a page reads like a
  notebook: later blocks use what earlier ones defined);
* a ```python block written as a ``>>>`` session runs as a doctest, so what a page says a
  line prints is what it prints;
* ``<!-- skip: next -->`` before a block skips it; ```bash blocks are never run.

Pages run on NumPy and seed whatever they draw. A page that loads MNIST is skipped where the
data cannot be found (and fails in CI, which must run it).
"""
from doctest import ELLIPSIS, NORMALIZE_WHITESPACE

import matplotlib

matplotlib.use("Agg")

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sybil import Sybil  # noqa: E402
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser  # noqa: E402


@pytest.fixture
def datasets_for_pages(request):
    """A page that loads MNIST (``load_dataset(``) needs the real data, found the usual way:
    without it the page is skipped, except in CI (``CI=true``), where it fails, as the
    ``realdata`` tests do."""
    path = Path(str(getattr(request.node, "path", "")))
    if path.suffix != ".md" or "load_dataset(" not in path.read_text():
        return
    from scratchnet.data import find_dataset_dir
    if find_dataset_dir("mnist") is None:
        msg = "MNIST not found: set SCRATCHNET_DATA to a folder holding mnist/"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: pages that need the data must run)")
        pytest.skip(msg)


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=ELLIPSIS | NORMALIZE_WHITESPACE),
             SkipParser()],
    patterns=["*.md"],
    fixtures=["datasets_for_pages"],
).pytest()
