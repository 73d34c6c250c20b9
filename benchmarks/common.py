"""Timing helpers shared by the benchmarks: warm-up, repetitions, medians, A/B alternation."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

# The PyTorch twins of the models live with the tests (tests/torch_models.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from scratchnet.backend import retain_freed_host_memory, synchronize

# As in training (scratchnet.experiment.train). Process-wide: PyTorch, timed in the same
# process, gets the same allocator settings, so the ratios compare like with like.
ALLOCATOR_TUNED = retain_freed_host_memory()


def time_call(fn: Callable[[], object], repeat: int, xp=np) -> list[float]:
    """Seconds of each of ``repeat`` calls (device-synchronised)."""
    out = []
    for _ in range(repeat):
        synchronize(xp)
        t = time.perf_counter()
        fn()
        synchronize(xp)
        out.append(time.perf_counter() - t)
    return out


def alternate(fns: dict[str, Callable[[], object]], rounds: int, per_round: int, warmup: int = 5,
              xps: dict | None = None) -> dict[str, float]:
    """Median seconds per call of each function, timed A B A B ... so drift hits all alike."""
    xps = xps or {}
    for name, fn in fns.items():
        time_call(fn, warmup, xps.get(name, np))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name] += time_call(fn, per_round, xps.get(name, np))
    return {k: statistics.median(v) for k, v in samples.items()}


def gemm_roof(n: int = 1024, repeat: int = 20, xp=np) -> float:
    """Measured float32 GEMM throughput of the backend's BLAS (cuBLAS on CuPy), in GFLOP/s."""
    a = xp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    b = a.copy()
    a @ b
    t = statistics.median(time_call(lambda: a @ b, repeat, xp))
    return 2 * n ** 3 / t / 1e9


def machine(with_torch: bool = True) -> str:
    """One line: CPU, library versions, allocator setting (and PyTorch's, if asked)."""
    import scratchnet
    parts = [platform.processor() or platform.machine(), f"{os.cpu_count()} CPUs",
             f"Python {platform.python_version()}", f"NumPy {np.__version__}",
             f"scratchnet {scratchnet.__version__}",
             f"glibc malloc tuned: {ALLOCATOR_TUNED}"]
    if "cupy" in sys.modules:                     # a GPU benchmark: name the device
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        parts.append(f"{props['name'].decode()}, CuPy {cupy.__version__}, "
                     f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
    try:
        if not with_torch:
            raise ImportError
        import torch
        parts.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    return ", ".join(parts)
