"""The one place that knows NumPy from CuPy.

Every other module asks this one for an *array module* ``xp`` (``numpy`` or ``cupy``) and
then calls ``xp.matmul``, ``xp.exp`` ... so the same code runs on CPU and GPU arrays:

    xp = get_array_module(x)        # numpy for numpy arrays, cupy for cupy arrays
    y = xp.maximum(x, 0)

CuPy is imported only when a caller asks for it, so a NumPy-only machine never needs it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import functools
import os
import types
from typing import Any, Callable, Iterable, Iterator

import numpy

__all__ = [
    "BackendUnavailableError", "BACKEND_NAMES", "get_backend", "get_array_module", "backend_name",
    "to_numpy", "to_backend", "as_dtype", "as_strided", "manual_seed", "init_rng",
    "default_rng", "synchronize", "free_memory", "is_available", "retain_freed_host_memory",
    "ElementwiseOp", "RawOp", "pointer_table", "use_fused_kernels", "num_threads",
    "parallel_map", "use_blocked_cpu", "blocked_cpu_applies",
]

_CUPY_HINT = ("install the GPU extra that matches your CUDA major version (nvidia-smi shows it): "
              "`pip install 'scratchnet[gpu-cuda12]'` or `pip install 'scratchnet[gpu-cuda13]'`")
_ALIASES = {"numpy": "numpy", "cpu": "numpy", "np": "numpy",
            "cupy": "cupy", "cuda": "cupy", "gpu": "cupy", "cp": "cupy"}
BACKEND_NAMES = frozenset(_ALIASES)      # every name get_backend() accepts


class BackendUnavailableError(RuntimeError):
    """Raised when the CuPy backend is asked for but CuPy or a CUDA GPU is missing."""


def _import_cupy() -> types.ModuleType:
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend 'cupy' needs CuPy, which is not installed ({exc}); {_CUPY_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendUnavailableError(
            f"backend 'cupy': CuPy is installed but no usable CUDA GPU was found ({exc})") from None
    if count == 0:
        raise BackendUnavailableError("backend 'cupy': CuPy is installed but no CUDA GPU was found")
    return cupy


def get_backend(name: str | types.ModuleType = "numpy") -> types.ModuleType:
    """Return the array module for a backend name ('numpy'/'cpu' or 'cupy'/'cuda')."""
    if isinstance(name, types.ModuleType):
        return name
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown backend {name!r}; expected 'numpy' or 'cupy'")
    return numpy if key == "numpy" else _import_cupy()


def is_available(name: str) -> bool:
    """True when ``get_backend(name)`` would succeed."""
    try:
        get_backend(name)
    except BackendUnavailableError:
        return False
    return True


def get_array_module(*arrays: Any) -> types.ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (never imports CuPy)."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy
            return cupy
    return numpy


def backend_name(x: Any) -> str:
    """'numpy' or 'cupy' for an array or an array module."""
    xp = x if isinstance(x, types.ModuleType) else get_array_module(x)
    return xp.__name__


def to_numpy(x: Any) -> numpy.ndarray:
    """Copy an array of any backend to a host NumPy array (no copy for NumPy arrays)."""
    if get_array_module(x) is numpy:
        return numpy.asarray(x)
    return x.get()


def to_backend(x: Any, name: str | types.ModuleType) -> Any:
    """Move an array to the backend ``name`` (no copy when it is already there)."""
    xp = get_backend(name)
    if get_array_module(x) is xp:
        return x
    return xp.asarray(to_numpy(x))


def as_dtype(dtype: Any) -> numpy.dtype:
    """Normalise a dtype spec ('float32', numpy.float64, ...) to float32 or float64, the two
    precisions scratchnet trains in (float16 would overflow and underflow in plain array code)."""
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'") from None
    if dt not in (numpy.float32, numpy.float64):
        raise TypeError(f"dtype {dt} is not supported; expected 'float32' or 'float64'")
    return dt


def as_strided(x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A strided *view* of ``x`` (no copy), on x's backend."""
    xp = get_array_module(x)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


# --- random numbers -------------------------------------------------------------------
# Weights are always drawn on the host from one NumPy generator and then moved, so the same
# seed gives bit-identical initial weights on CPU and GPU.
_init_rng = numpy.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises new layers' weights (like ``torch.manual_seed``)."""
    global _init_rng
    _init_rng = numpy.random.default_rng(seed)


def init_rng() -> numpy.random.Generator:
    """The host generator used for weight initialisation."""
    return _init_rng


def default_rng(seed: int | tuple[int, ...] | None = None,
                backend: str | types.ModuleType = "numpy") -> Any:
    """A seeded ``Generator`` that draws directly on the given backend (noise, shuffling).

    ``seed`` may be a tuple such as ``(seed, epoch)``: it is mixed into one integer by
    NumPy's SeedSequence, so each (seed, epoch) pair gets its own independent stream.

    On CuPy the bit generator is Philox4x32-10 rather than CuPy's default XORWOW: training
    seeds a fresh generator for every batch, and XORWOW's cuRAND state set-up costs about
    0.66 ms of GPU time per generator against 0.08 ms for Philox (seed plus one batch of
    noise, measured on an H100; ``benchmarks/bench_gpu_choices.py``).
    """
    if isinstance(seed, (tuple, list)):
        seed = int(numpy.random.SeedSequence(list(seed)).generate_state(1, numpy.uint64)[0] >> 1)
    xp = get_backend(backend)
    if xp is numpy:
        return numpy.random.default_rng(seed)
    return xp.random.Generator(xp.random.Philox4x3210(seed))


# --- fused GPU kernels -----------------------------------------------------------------
# On CuPy every array expression is one kernel launch, and at batch 64 a launch (a few
# microseconds of Python and driver work) costs more than the arithmetic it starts. An
# ElementwiseOp is a CUDA C body for one element that CuPy compiles once into a single kernel;
# the array code it replaces stays beside it as the reference (and runs on NumPy).
_fused = os.environ.get("SCRATCHNET_FUSED_KERNELS", "1") != "0"


def use_fused_kernels(enabled: bool | None = None) -> bool:
    """Turn the fused CuPy kernels on or off (returns the previous setting; None only reads it).

    On by default; ``SCRATCHNET_FUSED_KERNELS=0`` starts with them off. With them off the
    CuPy path runs the same array code as NumPy, which tests and benchmarks compare against.
    """
    global _fused
    previous = _fused
    if enabled is not None:
        _fused = bool(enabled)
    return previous


class ElementwiseOp:
    """A fused element-wise operation: one CUDA C body, compiled by CuPy on first use.

    Args:
        in_params, out_params, operation, name: as for ``cupy.ElementwiseKernel`` (``T`` is
            the arrays' dtype; ``raw T a`` is indexed by hand with ``a[k]``).

    ``op.kernel(x)`` is the compiled kernel when ``x`` is a CuPy array and fused kernels are on,
    else None, so callers read::

        k = OP.kernel(x)
        y = k(x) if k is not None else <the same math in xp array code>
    """

    def __init__(self, in_params: str, out_params: str, operation: str, name: str):
        self.spec = (in_params, out_params, operation, name)

    def kernel(self, like: Any) -> Callable[..., Any] | None:
        if not _fused or get_array_module(like) is numpy:
            return None
        return _compile(self.spec)


@functools.lru_cache(maxsize=None)
def _compile(spec: tuple[str, str, str, str]) -> Callable[..., Any]:
    import cupy
    return cupy.ElementwiseKernel(*spec)


class RawOp:
    """A hand-written CUDA C kernel (``extern "C" __global__ void <name>(...)``), for what an
    element-wise body cannot express: one block per channel summing a row (batch norm, bias
    gradients), or one launch over a list of tensors (the optimizer's update of every
    parameter). Compiled by CuPy on first use, once per dtype: ``T`` is ``float`` or
    ``double`` (the ``like`` array's dtype), and the source may use :data:`BLOCK_REDUCE`.

    ``op.kernel(x)`` is None on NumPy or with fused kernels off (the caller then runs the
    array code beside it), else ``launch(blocks, threads, *args)``, where arrays are passed
    as pointers, Python ``int`` as ``long long``, ``float`` as ``double`` and ``bool`` as
    ``bool`` (the kernel casts a scalar to ``T`` itself, rounding as NumPy would).
    """

    def __init__(self, source: str, name: str):
        self.source, self.name = source, name

    def kernel(self, like: Any) -> Callable[..., None] | None:
        if not _fused or get_array_module(like) is numpy:
            return None
        return _compile_raw(self.source, self.name, numpy.dtype(like.dtype).name)


# Sums of a block's threads in double precision, for kernels that reduce one row per block:
# ``block_sum2(a, b)`` leaves the block's totals of a and b in thread 0 (every thread calls it).
BLOCK_REDUCE = r"""
__device__ void block_sum2(double& a, double& b) {
    __shared__ double sa[32], sb[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_down_sync(0xffffffffu, a, o);
        b += __shfl_down_sync(0xffffffffu, b, o);
    }
    if (lane == 0) { sa[warp] = a; sb[warp] = b; }
    __syncthreads();
    if (warp == 0) {
        const int warps = (blockDim.x + 31) >> 5;
        a = lane < warps ? sa[lane] : 0.0;
        b = lane < warps ? sb[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) {
            a += __shfl_down_sync(0xffffffffu, a, o);
            b += __shfl_down_sync(0xffffffffu, b, o);
        }
    }
}
"""


def _c_scalar(a: Any) -> Any:
    if isinstance(a, bool):
        return numpy.bool_(a)
    if isinstance(a, int):
        return numpy.int64(a)
    if isinstance(a, float):
        return numpy.float64(a)
    return a


@functools.lru_cache(maxsize=None)
def _compile_raw(source: str, name: str, dtype: str) -> Callable[..., None]:
    import cupy
    ctype = {"float32": "float", "float64": "double"}[dtype]
    kernel = cupy.RawKernel(f"typedef {ctype} T;\n{BLOCK_REDUCE}\n{source}", name)

    def launch(blocks: int, threads: int, *args: Any) -> None:
        kernel((int(blocks),), (int(threads),), tuple(_c_scalar(a) for a in args))
    return launch


def pointer_table(*rows: list[Any]) -> tuple[Any, Any]:
    """Device addresses and cumulative sizes of lists of CuPy arrays, for one-launch kernels
    over many tensors (:class:`RawOp`), e.g. ``pointer_table(params, grads, exp_avgs)``.

    Args:
        rows: R lists of P C-contiguous arrays each; the i-th arrays of all rows have the same
            size (a parameter, its gradient, its moments).

    Returns:
        (table, offsets): int64 device arrays. ``table[r * P + i]`` is the address of
        ``rows[r][i]``; ``offsets`` (P + 1 entries) sums the sizes, so element ``k`` of the
        concatenated row lives in tensor ``i`` with ``offsets[i] <= k < offsets[i + 1]``.
        The arrays must outlive every launch that uses the table.
    """
    arrays = [a for row in rows for a in row]
    xp = get_array_module(*arrays)
    sizes = [a.size for a in rows[0]]
    for row in rows:
        if [a.size for a in row] != sizes or any(not a.flags.c_contiguous for a in row):
            raise ValueError("pointer_table: rows must hold C-contiguous arrays of equal sizes")
    table = numpy.array([a.data.ptr for a in arrays], dtype=numpy.int64)
    offsets = numpy.cumsum([0] + sizes, dtype=numpy.int64)
    return xp.asarray(table), xp.asarray(offsets)


# --- threads on the CPU ---------------------------------------------------------------------
# NumPy runs element-wise work and copies on one thread, and only BLAS uses the others. The
# blocked CPU paths (scratchnet/blocked.py) split their work into independent pieces (blocks of
# output rows, groups of channels) and run them on a pool of threads: NumPy releases the GIL
# inside copies, ufuncs and BLAS calls, so the pieces really run at once. BLAS is held to one
# thread per piece meanwhile, so the threads do not oversubscribe the cores.

def num_threads() -> int:
    """Threads for the blocked CPU paths: ``SCRATCHNET_NUM_THREADS`` if set, else 1.

    One by default because that measured fastest on the 2-core development machine: two
    threads over the blocks of a convolution (BLAS at one thread each) took 5-25% longer than
    one thread whose GEMMs use BLAS's own two threads, and splitting ReLU or batch norm by
    channels over two threads 20-40% longer (the cores share one memory bus, and these passes
    are memory-bound). On a machine with more cores and memory channels, try
    ``SCRATCHNET_NUM_THREADS=<cores>`` with ``benchmarks/bench_layers.py``."""
    value = os.environ.get("SCRATCHNET_NUM_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"SCRATCHNET_NUM_THREADS must be a positive integer, got {value!r}") from None
        if n < 1:
            raise ValueError(f"SCRATCHNET_NUM_THREADS must be a positive integer, got {value!r}")
        return n
    return 1


@functools.lru_cache(maxsize=None)
def _pool(n: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="scratchnet")


@contextlib.contextmanager
def _blas_single_threaded() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                        # optional: without it BLAS keeps its threads
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, the items shared out over :func:`num_threads`
    threads (BLAS at one thread each meanwhile); in order. One item or one thread: no pool."""
    items = list(items)
    n = min(num_threads(), len(items))
    if n <= 1:
        return [fn(item) for item in items]
    with _blas_single_threaded():
        return list(_pool(n).map(fn, items))


_blocked = os.environ.get("SCRATCHNET_BLOCKED_CPU", "float32")


def use_blocked_cpu(mode: str | None = None) -> str:
    """Where the blocked CPU paths run instead of the reference array code (returns the
    previous setting; None only reads it).

    ``"float32"`` (the default): NumPy arrays of float32, i.e. training and inference; float64
    (gradient checks, parity tests) runs the reference code in :mod:`scratchnet.functional`.
    ``"always"``: every NumPy array (how the tests gradcheck the blocked code itself).
    ``"never"``: the reference code everywhere. ``SCRATCHNET_BLOCKED_CPU`` sets the start value.
    """
    global _blocked
    previous = _blocked
    if mode is not None:
        if mode not in ("float32", "always", "never"):
            raise ValueError(f"use_blocked_cpu: expected 'float32', 'always' or 'never', got {mode!r}")
        _blocked = mode
    return previous


def blocked_cpu_applies(x: Any) -> bool:
    """True when the blocked CPU path should serve an operation on ``x``."""
    if _blocked == "never" or type(x) is not numpy.ndarray:
        return False
    return _blocked == "always" or x.dtype == numpy.float32


# --- device housekeeping ---------------------------------------------------------------
def synchronize(xp: types.ModuleType | str = numpy) -> None:
    """Wait for queued GPU work to finish (no-op on NumPy); call before reading a timer."""
    xp = get_backend(xp)
    if xp is not numpy:
        xp.cuda.Device().synchronize()


def free_memory(xp: types.ModuleType | str = numpy) -> None:
    """Return cached blocks of CuPy's memory pools to the driver (no-op on NumPy)."""
    xp = get_backend(xp)
    if xp is not numpy:
        xp.get_default_memory_pool().free_all_blocks()
        xp.get_default_pinned_memory_pool().free_all_blocks()


def retain_freed_host_memory() -> bool:
    """Ask glibc's malloc to keep freed host memory for reuse; returns whether it could.

    A training step allocates the same large temporaries (im2col matrices of several MB)
    every iteration. By default glibc returns each one to the operating system when it is
    freed and maps fresh pages for the next step, which the kernel zero-fills on first touch:
    measured on a 2-core machine, that page-fault work was about half of the NumPy training
    step at batch 64 and 256. Raising the mmap threshold to glibc's maximum (32 MiB) and the
    trim threshold to 1 GiB keeps those blocks in the heap instead; since blocks above 32 MiB
    would still be mapped afresh each time (the U-Net's im2col matrices at 28x28 are ~58 MB),
    mmap is switched off altogether (M_MMAP_MAX = 0), which halved im2col and the input-
    gradient GEMM of a 32-channel 3x3 convolution at batch 64 (17.8 -> 8.5 ms, 17.9 -> 8.0 ms). This changes where memory
    comes from, never any result; peak memory stays the same, but the process no longer
    shrinks after a peak. Process-wide, so it is opt-in: ``train()`` and the benchmarks call
    it. A no-op returning False where the C library is not glibc.
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
