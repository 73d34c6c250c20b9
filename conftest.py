"""What every test process needs before a test module, a course page or NumPy is imported
(pytest reads this file before ``tests/conftest.py`` and ``docs/conftest.py``).

Under pytest-xdist (``python -m pytest -n auto``) each worker is one process per core, so its
BLAS runs one thread, and so do the programs its tests start: two OpenBLAS threads per worker
would put twice as many spinning threads as cores on the machine, and they then wait for each
other (benchmarks/README.md, "DnCNN on photographs"). A count the user set stays.

With ``-n``, each file's tests go to one worker and run there in order (pytest-xdist's
``loadfile`` scheduling, unless ``--dist`` names another): a course page's examples share one
namespace, and one file's fixtures are built once. It is chosen here rather than in
``addopts``, so that ``pytest`` without pytest-xdist installed still runs.
"""
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler for ``-n``: whole files per worker when ``--dist`` was not given
    (pytest-xdist then reports ``load``)."""
    if config.getoption("dist") == "load" and "--dist" not in " ".join(config.invocation_params.args):
        from xdist.scheduler import LoadFileScheduling
        return LoadFileScheduling(config, log)
    return None
