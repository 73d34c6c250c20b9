"""Shared fixtures: every backend-parametrized test runs on NumPy, and on CuPy where a GPU is."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scratchnet import backend as B

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module of each available backend; CuPy cases skip cleanly without a GPU."""
    if request.param == "cupy" and not B.is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    return B.get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _real_data_root() -> Path | None:
    root = os.environ.get("SCRATCHNET_DATA")
    if root and (Path(root) / "mnist").is_dir() and (Path(root) / "fashion-mnist").is_dir():
        return Path(root)
    return None


@pytest.fixture(scope="session")
def real_data():
    """The real datasets' root. Skips locally when absent, but fails in CI (CI=true)."""
    root = _real_data_root()
    if root is None:
        msg = ("real MNIST/Fashion-MNIST data not found: set SCRATCHNET_DATA to a folder holding "
               "mnist/ and fashion-mnist/")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: real-data tests must run)")
        pytest.skip(msg)
    return root
