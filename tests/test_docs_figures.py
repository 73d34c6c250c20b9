"""The course's figures are drawn by docs/make_figures.py from the library's own functions.

These tests run that script into a temporary folder and check that it still works against
the current code, that it draws every figure the pages reference under docs/images/learn/,
that no page references an image missing from the repository, and that the committed
figures are the ones the script draws now.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LEARN_IMAGES = DOCS / "images" / "learn"
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc=[\"']([^\"']+)[\"']")


def _referenced_images() -> list[tuple[str, Path]]:
    """(page, resolved image path) for every local image that a page under docs/ shows."""
    refs = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target in MARKDOWN_IMAGE.findall(text) + HTML_IMAGE.findall(text):
            if "://" in target or target.startswith("data:"):
                continue
            refs.append((str(page.relative_to(ROOT)), (page.parent / target).resolve()))
    return refs


REFERENCES = _referenced_images()


def _load_script():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> dict[str, Path]:
    """Every figure, freshly drawn into a temporary folder: {file name: path}."""
    out = tmp_path_factory.mktemp("figures")
    written = _load_script().main(out)
    return {p.name: p for p in written}


def test_pages_reference_course_figures():
    assert any(path.parent == LEARN_IMAGES for _, path in REFERENCES), \
        "no page under docs/ shows a figure from docs/images/learn/"


@pytest.mark.parametrize("page, path", REFERENCES,
                         ids=[f"{page}:{path.name}" for page, path in REFERENCES])
def test_referenced_image_exists(page, path):
    assert path.is_relative_to(ROOT), f"{page} shows {path}, outside the repository"
    assert path.is_file(), f"{page} shows {path.relative_to(ROOT)}, which does not exist"


def test_script_draws_every_referenced_figure(drawn):
    referenced = {path.name for _, path in REFERENCES if path.parent == LEARN_IMAGES}
    missing = sorted(referenced - set(drawn))
    assert not missing, f"docs/make_figures.py does not draw {missing}, which pages show"
    unused = sorted(set(drawn) - referenced)
    assert not unused, f"docs/make_figures.py draws {unused}, which no page shows"
    for name, path in drawn.items():
        assert path.stat().st_size > 1000, f"{name} is (nearly) empty"


def test_committed_figures_are_the_drawn_ones(drawn):
    committed = {p.name for p in LEARN_IMAGES.glob("*.png")}
    assert committed == set(drawn), (
        f"docs/images/learn/ holds {sorted(committed)} but the script draws {sorted(drawn)}; "
        "run `python docs/make_figures.py`")
    stale = []
    for name, fresh in sorted(drawn.items()):
        old = LEARN_IMAGES / name
        with Image.open(old) as im:
            software = im.info.get("Software", "")
            old_pixels = np.asarray(im.convert("RGB"), dtype=np.int16)
        drawn_by = re.match(r"Matplotlib version\s*([^,\s]+)", software)
        if drawn_by is None or drawn_by.group(1) != matplotlib.__version__:
            continue                # drawn by another matplotlib: fonts may differ slightly
        with Image.open(fresh) as im:
            new_pixels = np.asarray(im.convert("RGB"), dtype=np.int16)
        if old_pixels.shape != new_pixels.shape:
            stale.append(f"{name} (size {old_pixels.shape[:2]} -> {new_pixels.shape[:2]})")
            continue
        changed = (np.abs(old_pixels - new_pixels).max(axis=2) > 32).mean()
        if changed > 0.005:          # float32 curves may move by a pixel on another CPU
            stale.append(f"{name} ({changed:.1%} of the pixels differ)")
    assert not stale, ("committed figures differ from what docs/make_figures.py draws now: "
                       + ", ".join(stale) + "; run `python docs/make_figures.py`")
