"""Shared fixtures: every backend-parametrized test runs on NumPy, and on CuPy where a GPU is.

``SCRATCHNET_FAKE_CUPY=1`` puts the strict CuPy stand-in (tests/fake_cupy) in front of any
real CuPy, for this process and the ones it starts, so the ``gpu`` tests run without a GPU.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

# A suite started in the background (`pytest &` in a script) inherits SIGINT ignored, and so would
# every program it starts: Python then installs no Ctrl-C handler at start-up, and the tests that
# press Ctrl-C in a program's first moments would send a signal it ignores. A terminal's Ctrl-C
# is never ignored: start the programs from that (an ignored signal stays ignored across exec,
# a handler does not).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

FAKE_CUPY = os.environ.get("SCRATCHNET_FAKE_CUPY") == "1"
if FAKE_CUPY:
    _stand_in = str(Path(__file__).parent / "fake_cupy")
    sys.path.insert(0, _stand_in)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_stand_in, os.environ.get("PYTHONPATH")]))
    os.environ["SCRATCHNET_FUSED_KERNELS"] = "0"         # the stand-in cannot run CUDA C

from scratchnet import backend as B  # noqa: E402

if FAKE_CUPY:
    B.use_fused_kernels(False)
needs_real_gpu = pytest.mark.skipif(
    FAKE_CUPY, reason="compiles and runs CUDA C kernels: needs a real GPU, not the CuPy stand-in")

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


@pytest.fixture(scope="session")
def real_photos():
    """The root holding natural/train400, natural/bsd68 and natural/set12 (the photographs).
    Skips locally when absent, but fails in CI (CI=true)."""
    root = os.environ.get("SCRATCHNET_DATA")
    if root and all((Path(root) / "natural" / s).is_dir() for s in ("train400", "bsd68", "set12")):
        return Path(root)
    msg = ("the natural images were not found: set SCRATCHNET_DATA to a folder holding "
           "natural/train400, natural/bsd68 and natural/set12")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI=true: real-data tests must run)")
    pytest.skip(msg)


def sigint_at_batch(monkeypatch, n: int):
    """Make the n-th training batch (counting over epochs) raise SIGINT, as a Ctrl-C there
    would; returns the real ``NoiseSpec.apply`` (put it back to train on uninterrupted)."""
    from scratchnet.data import NoiseSpec
    real = NoiseSpec.apply
    calls = []

    def apply(spec, x, rng):
        calls.append(1)
        if len(calls) == n:
            signal.raise_signal(signal.SIGINT)
        return real(spec, x, rng)

    monkeypatch.setattr(NoiseSpec, "apply", apply)
    return real


@pytest.fixture
def checkpoint(tmp_path):
    """An untrained digit checkpoint (the conv autoencoder, a flat old-style noise config),
    for the programs' start-up and signal tests."""
    from scratchnet import manual_seed
    from scratchnet.checkpoint import save_checkpoint
    from scratchnet.models import conv_autoencoder
    manual_seed(0)
    path = tmp_path / "ckpt" / "checkpoint.npz"
    path.parent.mkdir()
    save_checkpoint(path, conv_autoencoder(), config={"model": "conv", "noise": "gaussian",
                                                      "dataset": "mnist", "noise_factor": 0.5})
    return path
