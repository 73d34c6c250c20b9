"""The pages print no digit that depends on float rounding (the BLAS kernel, the thread count,
the CPU): every page runs again with each initial weight moved by one float32 rounding step
(``SCRATCHNET_DOCS_PERTURB=<seed>``, see docs/conftest.py) and must print the same, except where an
example declares ``+LAST_DIGIT``. A page that prints a long float32 computation to more digits
than are stable fails here on any machine, without touching the BLAS settings."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

UNSTABLE_PAGE = '''
```python
>>> import numpy as np
>>> import scratchnet as sn
>>> from scratchnet import nn, optim
>>> sn.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
>>> x = np.random.default_rng(0).random((16, 1, 12, 12), dtype=np.float32)
>>> opt, mse = optim.Adam(model.parameters(), lr=1e-2), nn.MSELoss()
>>> for step in range(200):
...     opt.zero_grad()
...     loss = float(mse(model(x), x))
...     _ = model.backward(mse.backward())
...     opt.step()
>>> print(f"loss after 200 steps: {loss:{format}}"){flag}
loss after 200 steps: {value}
```
'''


def run_pages(target, perturb, cwd=ROOT, extra=()):
    env = {**os.environ, "SCRATCHNET_DOCS_PERTURB": str(int(perturb))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *extra, str(target)], cwd=cwd, env=env, capture_output=True, text=True)


def page_dir(tmp_path, value, flag="", format=".6e"):
    (tmp_path / "conftest.py").write_text(
        "from sybil import Sybil\nfrom docs.conftest import PARSERS\n"
        "pytest_collect_file = Sybil(parsers=PARSERS, patterns=['*.md']).pytest()\n")
    text = UNSTABLE_PAGE.replace("{value}", value).replace("{flag}", flag)
    (tmp_path / "page.md").write_text(text.replace("{format}", format))
    return tmp_path / "page.md"


@pytest.fixture(scope="module")
def unperturbed_loss(tmp_path_factory):
    """What the page prints on this machine: run it once and read the failure's 'Got'."""
    page = page_dir(tmp_path_factory.mktemp("probe"), "?")
    out = run_pages(page, perturb=False, extra=["--rootdir", str(page.parent)]).stdout
    return out.split("Got:")[1].split("loss after 200 steps: ")[1].split()[0]


def test_the_guard_fails_a_page_that_prints_unstable_digits(tmp_path, unperturbed_loss):
    page = page_dir(tmp_path, unperturbed_loss)
    args = ["--rootdir", str(tmp_path)]
    assert run_pages(page, perturb=False, extra=args).returncode == 0       # as written: passes
    guarded = run_pages(page, perturb=True, extra=args)
    assert guarded.returncode == 1 and "loss after 200 steps" in guarded.stdout


def test_last_digit_accepts_one_unit_and_no_more(tmp_path, unperturbed_loss):
    """At 4 decimals of the mantissa the perturbed run differs from the unperturbed one in
    the last digit (the test above shows it moves at 6): +LAST_DIGIT passes it, and fails a
    value four units away (two is what it allows)."""
    value = float(unperturbed_loss)
    args = ["--rootdir", str(tmp_path)]
    flag = "  # doctest: +LAST_DIGIT"
    page = page_dir(tmp_path, f"{value:.4e}", flag=flag, format=".4e")
    assert run_pages(page, perturb=True, extra=args).returncode == 0
    page = page_dir(tmp_path, f"{value * (1 + 4.7e-4):.4e}", flag=flag, format=".4e")
    assert run_pages(page, perturb=True, extra=args).returncode == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_every_page_prints_only_stable_digits(seed):
    """The guard itself: all of docs/ with the initial weights perturbed, two ways."""
    result = run_pages(ROOT / "docs", perturb=seed)
    assert result.returncode == 0, result.stdout[-4000:]
