"""The one place that knows NumPy from CuPy.

Every other module asks this one for an *array module* ``xp`` (``numpy`` or ``cupy``) and
then calls ``xp.matmul``, ``xp.exp`` ... so the same code runs on CPU and GPU arrays:

    xp = get_array_module(x)        # numpy for numpy arrays, cupy for cupy arrays
    y = xp.maximum(x, 0)

CuPy is imported only when a caller asks for it, so a NumPy-only machine never needs it.
A backend name is normalised once, by `canonical_name`: "numpy", "cpu" and "np" mean
NumPy; "cupy", "cuda", "gpu" and "cp" mean CuPy; every function here that takes a name
accepts all of them and speaks of the result as "numpy" or "cupy".

What used to live here as well now has a module of its own, and the old names still import
from here: seeded generators (`scratchnet.random`), threads, BLAS limits and the allocator
(`scratchnet.threads`), the fused GPU kernels (`scratchnet.kernels`) and the switch of the
blocked CPU convolution (`scratchnet.blocked`).
"""
from __future__ import annotations

import importlib
import types
from typing import Any

import numpy

__all__ = ["BackendUnavailableError", "BACKEND_NAMES", "canonical_name", "get_backend",
           "is_available", "get_array_module", "backend_name", "to_numpy", "to_backend",
           "as_dtype", "as_strided", "synchronize"]

# From the clone (the name `scratchnet` on the package index is another project): docs/gpu.md.
_CUPY_HINT = ("install the GPU extra that matches your CUDA major version (nvidia-smi shows it), "
              "from the repository's folder: `pip install -e \".[gpu-cuda12]\"` or "
              "`pip install -e \".[gpu-cuda13]\"` (see docs/gpu.md)")
_NO_GPU_HINT = "train on the CPU instead: leave out --backend (or pass --backend numpy)"

_ALIASES = {"numpy": "numpy", "cpu": "numpy", "np": "numpy",
            "cupy": "cupy", "cuda": "cupy", "gpu": "cupy", "cp": "cupy"}
BACKEND_NAMES = frozenset(_ALIASES)      # every name get_backend() accepts


class BackendUnavailableError(RuntimeError):
    """Raised when the CuPy backend is asked for but CuPy or a CUDA GPU is missing."""


def canonical_name(name: str | types.ModuleType) -> str:
    """'numpy' or 'cupy' for any accepted backend name (any case) or array module.

    Raises:
        ValueError: the name is none of `BACKEND_NAMES`.
    """
    if isinstance(name, types.ModuleType):
        return name.__name__
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown backend {name!r}; expected 'numpy' or 'cupy'")
    return key


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
            f"backend 'cupy': CuPy is installed but no usable CUDA GPU was found ({exc}); "
            f"{_NO_GPU_HINT}") from None
    if count == 0:
        raise BackendUnavailableError(
            f"backend 'cupy': CuPy is installed but no CUDA GPU was found; {_NO_GPU_HINT}")
    return cupy


def get_backend(name: str | types.ModuleType = "numpy") -> types.ModuleType:
    """Return the array module for a backend name ('numpy'/'cpu' or 'cupy'/'cuda')."""
    if isinstance(name, types.ModuleType):
        return name
    return numpy if canonical_name(name) == "numpy" else _import_cupy()


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


def synchronize(xp: types.ModuleType | str = numpy) -> None:
    """Wait for queued GPU work to finish (no-op on NumPy); call before reading a timer."""
    xp = get_backend(xp)
    if xp is not numpy:
        xp.cuda.Device().synchronize()


# Names that moved to a module of their own, still importable from here
# (``from scratchnet.backend import default_rng`` keeps working).
_MOVED = {
    "manual_seed": "random", "init_rng": "random", "default_rng": "random",
    "num_threads": "threads", "parallel_map": "threads",
    "retain_freed_host_memory": "threads",
    "use_blocked_cpu": "blocked", "blocked_cpu_applies": "blocked",
    "ElementwiseOp": "kernels", "RawOp": "kernels", "pointer_table": "kernels",
    "use_fused_kernels": "kernels", "BLOCK_REDUCE": "kernels",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(f"scratchnet.{_MOVED[name]}"), name)
    raise AttributeError(f"module 'scratchnet.backend' has no attribute {name!r}")
