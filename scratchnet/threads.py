"""Threads, BLAS limits and the host allocator: how the CPU paths use the machine.

NumPy runs element-wise work and copies on one thread, and only BLAS uses the others. The
blocked CPU convolution (`scratchnet.blocked`) splits its work into independent pieces
(blocks of output rows) and runs them with `parallel_map` on a pool of threads: NumPy
releases the GIL inside copies, ufuncs and BLAS calls, so the pieces really run at once.
BLAS is held to one thread per piece meanwhile, so the threads do not oversubscribe the
cores. `retain_freed_host_memory` tunes glibc's malloc for a training loop.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import os
from typing import Any, Callable, Iterable, Iterator

__all__ = ["num_threads", "positive_env", "parallel_map", "blas_single_threaded",
           "retain_freed_host_memory"]


def num_threads() -> int:
    """Threads for the blocked CPU paths: ``SCRATCHNET_NUM_THREADS`` if set, else 1.

    One by default because that measured fastest on the 2-core development machine: two
    threads over the blocks of a convolution (BLAS at one thread each) took 5-25% longer than
    one thread whose GEMMs use BLAS's own two threads, and splitting ReLU or batch norm by
    channels over two threads 20-40% longer (the cores share one memory bus, and these passes
    are memory-bound). On a machine with more cores and memory channels, try
    ``SCRATCHNET_NUM_THREADS=<cores>`` with ``benchmarks/bench_layers.py``."""
    return positive_env("SCRATCHNET_NUM_THREADS") or 1


def positive_env(name: str) -> int | None:
    """The positive integer the environment variable ``name`` holds, or None when it is unset
    or empty.

    Raises:
        ValueError: it holds something else (one line naming the variable and the value).
    """
    value = os.environ.get(name)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n


@functools.lru_cache(maxsize=None)
def _pool(n: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="scratchnet")


@contextlib.contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Hold BLAS to one thread inside the block (``threadpoolctl``; without it, a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                        # optional: without it BLAS keeps its threads
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, the items shared out over `num_threads`
    threads (BLAS at one thread each meanwhile); in order. One item or one thread: no pool."""
    items = list(items)
    n = min(num_threads(), len(items))
    if n <= 1:
        return [fn(item) for item in items]
    with blas_single_threaded():
        return list(_pool(n).map(fn, items))


def retain_freed_host_memory() -> bool:
    """Ask glibc's malloc to keep freed host memory for reuse; returns whether it could.

    A training step allocates the same large temporaries (im2col matrices of several MB)
    every iteration. By default glibc returns each one to the operating system when it is
    freed and maps fresh pages for the next step, which the kernel zero-fills on first touch:
    measured on a 2-core machine, that page-fault work was about half of the NumPy training
    step at batch 64 and 256. Raising the mmap threshold to glibc's maximum (32 MiB) and the
    trim threshold to 1 GiB keeps those blocks in the heap instead; since blocks above 32 MiB
    would still be mapped afresh each time (the U-Net's im2col matrices at 28x28 are ~58 MB),
    mmap is switched off altogether (``M_MMAP_MAX = 0``), which halved im2col and the input-
    gradient GEMM of a 32-channel 3x3 convolution at batch 64 (17.8 -> 8.5 ms, 17.9 -> 8.0
    ms). This changes where memory comes from, never any result; peak memory stays the same,
    but the process no longer shrinks after a peak. Process-wide, so it is opt-in: ``train()``
    and the benchmarks call it. A no-op returning False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    return (bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
            and bool(mallopt(M_MMAP_MAX, 0)))
