"""Fused CUDA kernels: the faster bodies of ops on CuPy, apart from the math a learner reads.

On CuPy every array expression is one kernel launch, and at batch 64 a launch (a few
microseconds of Python and driver work) costs more than the arithmetic it starts. A kernel
here does the work of several array operations in one launch. Each module is named after
the ops it speeds up and registers its kernels as their faster bodies
(`scratchnet.ops.register_faster`), so the op's readable body in `scratchnet.functional`
stays the reference, which the tests hold every kernel to:

| module | faster bodies of |
|---|---|
| `kernels.conv` | `im2col`, `col2im`, `bias_grad` |
| `kernels.pool` | `max_pool2d`, `max_pool2d_backward` |
| `kernels.norm` | `batch_norm_forward`, `batch_norm_backward`, `batch_norm_update_stats`, `channel_sums` |
| `kernels.activation` | `relu`, `relu_backward`, `sigmoid`, `sigmoid_backward` |
| `kernels.loss` | `mean_square` |
| `kernels.noise` | `add_scaled_noise` (`scratchnet.data.noise`) |
| `kernels.optim` | `adam_update`, `zero_grads` (`scratchnet.optim`) |

A kernel runs only on CuPy arrays, with fused kernels on (`use_fused_kernels`; the
environment variable ``SCRATCHNET_FUSED_KERNELS=0`` starts with them off) and no override
active. With them off the CuPy path runs the same array code as NumPy, which tests and
benchmarks compare against. Nothing here imports CuPy until a kernel is first compiled.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import numpy

from ..backend import get_array_module

__all__ = ["ElementwiseOp", "RawOp", "BLOCK_REDUCE", "pointer_table", "use_fused_kernels",
           "on_gpu"]

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


def on_gpu(x: Any, *args: Any, **kwargs: Any) -> bool:
    """The usual ``applies`` of a kernel: fused kernels on and ``x`` (the op's first
    argument) a CuPy array."""
    return _fused and get_array_module(x) is not numpy


class ElementwiseOp:
    """A fused element-wise operation: one CUDA C body, compiled by CuPy on first use.

    Args:
        in_params: as for ``cupy.ElementwiseKernel`` (``T`` is the arrays' dtype; ``raw T a``
            is indexed by hand with ``a[k]``).
        out_params: as for ``cupy.ElementwiseKernel``.
        operation: the CUDA C body for one element ``i``.
        name: the kernel's name (``scratchnet_<op>``).

    Calling it launches the kernel on CuPy arrays, as a ``cupy.ElementwiseKernel`` would be.
    """

    def __init__(self, in_params: str, out_params: str, operation: str, name: str):
        self.spec = (in_params, out_params, operation, name)

    def __call__(self, *args: Any) -> Any:
        return _compile(self.spec)(*args)


@functools.lru_cache(maxsize=None)
def _compile(spec: tuple[str, str, str, str]) -> Callable[..., Any]:
    import cupy
    return cupy.ElementwiseKernel(*spec)


class RawOp:
    """A hand-written CUDA C kernel (``extern "C" __global__ void <name>(...)``), for what an
    element-wise body cannot express: one block per channel summing a row (batch norm, bias
    gradients), or one launch over a list of tensors (the optimizer's update of every
    parameter). Compiled by CuPy on first use, once per dtype: ``T`` is ``float`` or
    ``double`` (the ``like`` array's dtype), and the source may use `BLOCK_REDUCE`.

    ``op.kernel(x)`` is ``launch(blocks, threads, *args)`` for x's dtype, where arrays are
    passed as pointers, Python ``int`` as ``long long``, ``float`` as ``double`` and ``bool``
    as ``bool`` (the kernel casts a scalar to ``T`` itself, rounding as NumPy would).
    """

    def __init__(self, source: str, name: str):
        self.source, self.name = source, name

    def kernel(self, like: Any) -> Callable[..., None]:
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
    over many tensors (`RawOp`), e.g. ``pointer_table(params, grads, exp_avgs)``.

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


from . import activation, conv, loss, noise, norm, optim, pool  # noqa: E402,F401  (registration)
