"""Every code block of the Markdown pages under docs/ runs in the test suite (Sybil).

* ```python blocks run in order, sharing one namespace per page (a page reads like a
  notebook: later blocks use what earlier ones defined);
* a ```python block written as a ``>>>`` session runs as a doctest, so what a page says a
  line prints is what it prints;
* ``<!-- skip: next -->`` before a block skips it; ```bash blocks are never run.

Pages run on NumPy and seed whatever they draw.
"""
from doctest import ELLIPSIS, NORMALIZE_WHITESPACE

import matplotlib

matplotlib.use("Agg")

from sybil import Sybil  # noqa: E402
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser  # noqa: E402

pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=ELLIPSIS | NORMALIZE_WHITESPACE),
             SkipParser()],
    patterns=["*.md"],
).pytest()
