"""How the suite is run: ``python -m pytest -n auto`` (the README's command) keeps each file in
one worker, and a plain ``pytest`` runs without pytest-xdist installed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/learn/01-chain.md"       # its examples share one namespace, in order


def _pytest(*args):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_with_n_a_course_page_runs_whole_in_one_worker():
    pytest.importorskip("xdist")
    r = _pytest("-n", "2", PAGE)
    assert r.returncode == 0, r.stdout[-2000:]
    split = _pytest("-n", "2", "--dist", "load", PAGE)     # what loadfile prevents
    assert split.returncode == 1 and " failed" in split.stdout.splitlines()[-1]


def test_a_plain_pytest_runs_without_pytest_xdist():
    r = _pytest("-p", "no:xdist", PAGE)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
