"""Every code block of the Markdown pages under docs/ runs in the test suite (Sybil).

* ```python blocks run in order, sharing one namespace per page (a page reads like a
  notebook: later blocks use what earlier ones defined);
* a ```python block written as a ``>>>`` session runs as a doctest, so what a page says a
  line prints is what it prints;
* ``<!-- skip: next -->`` before a block skips it; ```bash blocks are never run;
* ``# doctest: +LAST_DIGIT`` on an example lets every number it prints differ by up to two
  units in its last printed digit (and nothing else differ): for results of long float32 computations
  such as a training run, whose last digit depends on the CPU's BLAS kernels. The page says so
  where it prints them; ``SCRATCHNET_DOCS_PERTURB=<seed>`` (below) finds the lines that need it.

Pages run on NumPy and seed whatever they draw. A page that loads MNIST is skipped where the
data cannot be found (and fails in CI, which must run it).
"""
import doctest
from doctest import ELLIPSIS, NORMALIZE_WHITESPACE

import matplotlib

matplotlib.use("Agg")

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sybil import Sybil  # noqa: E402
from sybil.evaluators.doctest import OutputChecker  # noqa: E402
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser  # noqa: E402

LAST_DIGIT = doctest.register_optionflag("LAST_DIGIT")


class LastDigitChecker(OutputChecker):
    """Sybil's output checker, plus ``+LAST_DIGIT``: where the printed text matches but for
    numbers, each number may be off by up to two units in the last digit the page shows (0.042
    for 0.044, 12.2 for 12.3; 0.042 for 0.045 still fails). Two, because a training run of a
    few hundred float32 steps was seen to move that far across BLAS kernels. Numbers are
    matched in order, so a different count of numbers fails as before."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if optionflags & LAST_DIGIT:
            got = self._within_last_digit(want, got)
        return super().check_output(want, got, optionflags)

    def _within_last_digit(self, want: str, got: str) -> str:
        wants, gots = list(self._number_re.finditer(want)), list(self._number_re.finditer(got))
        if len(wants) != len(gots):
            return got
        pieces, end = [], 0
        for w, g in zip(wants, gots):
            exponent = w.group("exponent1") or w.group("exponent2") or 0
            places = len(w.group("fraction") or "") - int(exponent)    # 2.5e-3: 4 places
            close = abs(float(w.group()) - float(g.group())) <= 2.001 * 10.0 ** -places
            pieces += [got[end:g.start()], w.group() if close else g.group()]
            end = g.end()
        return "".join(pieces) + got[end:]


class _CodeBlockParser(PythonCodeBlockParser):
    """Sybil's Markdown Python parser with :class:`LastDigitChecker` as its doctest checker."""

    def __init__(self, doctest_optionflags: int = 0) -> None:
        super().__init__(doctest_optionflags=doctest_optionflags)
        self.doctest_parser.evaluator.runner._checker = LastDigitChecker()


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


PARSERS = [_CodeBlockParser(doctest_optionflags=ELLIPSIS | NORMALIZE_WHITESPACE), SkipParser()]

pytest_collect_file = Sybil(
    parsers=PARSERS,
    patterns=["*.md"],
    fixtures=["datasets_for_pages"],
).pytest()


# --- the guard against digits that depend on float rounding ---------------------------------
# With SCRATCHNET_DOCS_PERTURB=<seed> (a positive integer) every initial weight drawn by scratchnet.nn.init is moved by
# about one float32 rounding step (a relative 2**-23, sign drawn per weight). A printed number
# that changes under it depends on rounding, as it would on another CPU's BLAS kernels, another
# thread count or another NumPy: such a line must show fewer digits, compare with a tolerance
# (``# doctest: +LAST_DIGIT``: within two units of its last printed digit), or say what it checks.
# tests/test_docs_stable_digits.py runs every page this way, with two seeds.
_PERTURB = int(os.environ.get("SCRATCHNET_DOCS_PERTURB") or 0)
if _PERTURB > 0:
    import numpy as _np

    import scratchnet.nn.init as _init

    class _PerturbedGenerator:
        def __init__(self, rng):
            self._rng, self._signs = rng, _np.random.default_rng(_PERTURB)

        def _moved(self, values):
            return values * (1 + self._signs.choice([-1.0, 1.0], _np.shape(values)) * 2.0 ** -23)

        def uniform(self, low, high, size=None):
            return self._moved(self._rng.uniform(low, high, size=size))

        def normal(self, loc=0.0, scale=1.0, size=None):      # nn.init.normal_, kaiming_normal_
            return self._moved(self._rng.normal(loc, scale, size=size))

        def __getattr__(self, name):
            return getattr(self._rng, name)

    _unperturbed = _init.init_rng
    _init.init_rng = lambda: _PerturbedGenerator(_unperturbed())
