"""Each chapter of the course is also a Jupyter notebook (docs/learn/NN-*.ipynb), generated from
its page by docs/make_notebooks.py: the committed notebooks must be what the pages generate now,
and a generated notebook's code must run as the page's does."""
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_notebooks():
    try:
        import jupytext  # noqa: F401
    except ImportError:
        msg = 'jupytext is not installed (pip install -e ".[docs]")'
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: the notebooks must be checked)")
        pytest.skip(msg)
    sys.path.insert(0, str(ROOT / "docs"))
    import make_notebooks
    return make_notebooks


def test_every_chapter_has_its_notebook_and_nothing_else(make_notebooks):
    pages = {p.stem for p in make_notebooks.pages()}
    assert len(pages) == 9
    assert {p.stem for p in (ROOT / "docs" / "learn").glob("*.ipynb")} == pages


@pytest.mark.parametrize("page", sorted((ROOT / "docs" / "learn").glob("[0-9][0-9]-*.md")),
                         ids=lambda p: p.stem)
def test_notebook_is_in_step_with_its_page(make_notebooks, page):
    committed = page.with_suffix(".ipynb").read_text(encoding="utf-8")
    fresh = make_notebooks.render(make_notebooks.notebook(page))
    assert committed == fresh, (f"{page.with_suffix('.ipynb').name} is out of step with "
                                f"{page.name}: run python docs/make_notebooks.py")


@pytest.mark.parametrize("chapter", [f"0{i}" for i in range(1, 9)])
def test_a_notebook_runs_cell_by_cell(make_notebooks, chapter, capsys):
    """Every code cell in order in one namespace, as "Run all" in a kernel would (chapter 9,
    the longest, runs as its page; its cells are made the same way). Cells from blocks the
    page does not run are left out here too."""
    path = next((ROOT / "docs" / "learn").glob(f"{chapter}-*.ipynb"))
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and not any(line.startswith((">>>", "...")) for c in code for line in c.splitlines())
    namespace = {}
    for cell in code:
        if not cell.startswith("# (the test suite does not run this cell)"):
            exec(compile(cell, str(path), "exec"), namespace)
