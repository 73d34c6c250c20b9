"""What every test process needs before a test module, a course page or NumPy is imported
(pytest reads this file before ``tests/conftest.py`` and ``docs/conftest.py``).

Under pytest-xdist (``python -m pytest -n auto``) each worker is one process per core, so its
BLAS runs one thread, and so do the programs its tests start: two OpenBLAS threads per worker
would put twice as many spinning threads as cores on the machine, and they then wait for each
other (benchmarks/README.md, "DnCNN on photographs"). A count the user set stays.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
