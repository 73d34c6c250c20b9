"""mkdocs hooks: the site carries its own math renderer, so its formulas typeset offline.

MathJax 3 (Apache License 2.0, https://www.mathjax.org) comes from the ``django-static-mathjax``
package of the docs extra: the unmodified MathJax distribution packaged for Python (it needs no
Django). After every build the files the site uses are copied from it into
``<site>/assets/mathjax/``, with MathJax's licence beside them; nothing is fetched from a CDN.
"""
from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

# What tex-chtml.js loads at run time, relative to its own folder: the fonts of its HTML output,
# TeX extensions it loads on demand (\boldsymbol, \cancel, ...), the context menu and the
# accessibility code the menu offers.
MATHJAX_FILES = ["tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y"]


def mathjax_source() -> Path:
    try:
        root = importlib.resources.files("mathjax") / "static" / "mathjax"
    except ModuleNotFoundError:
        raise SystemExit("the docs site needs MathJax from the docs extra: "
                         "pip install -e \".[docs]\"") from None
    return Path(str(root))


def on_post_build(config, **kwargs) -> None:
    source = mathjax_source()
    dest = Path(config["site_dir"]) / "assets" / "mathjax"
    for name in MATHJAX_FILES:
        src, out = source / "es5" / name, dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out, dirs_exist_ok=True)
        else:
            shutil.copy2(src, out)
    shutil.copy2(source / "LICENSE", dest / "LICENSE")
