"""Memory layouts and output sizes: the helpers the math and the fast paths share.

The convolution functions keep the batch axis *last* in memory (`scratchnet.functional`
says why): an (N, C, H, W) array is handed around as a *view* of a (C, H, W, N) buffer, and
every function that reads it as a ``(C, H*W*N)`` matrix gets that matrix without a copy. The
helpers here make and read such views; they hold no math and run on any backend.

Course: [4. Transposed convolution](../learn/04-transposed-convolution.md)
(conv_transpose_output_size).
"""
from __future__ import annotations

from typing import Any, Callable

from .backend import get_array_module

Array = Any
Pair = tuple[int, int]

__all__ = ["conv_output_size", "conv_transpose_output_size", "batch_last", "batch_last_matrix",
           "batch_last_padded", "batch_last_apply"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis: ``floor((size + 2P - D*(K - 1) - 1) / S)
    + 1`` (``floor((size + 2P - K) / S) + 1`` without dilation)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution: ``(size - 1)*S - 2P + D*(K - 1) +
    output_padding + 1`` (``(size - 1)*S - 2P + K + output_padding`` without dilation)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def batch_last(a: Array) -> Array:
    """(N, C, H, W) -> the same values as an (N, C, H, W) view of a batch-last (C, H, W, N)
    buffer; no copy when ``a`` is one already. A backward that reads ``gy`` several times as a
    ``(C, H*W*N)`` matrix calls this once instead of copying it each time."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def batch_last_matrix(a: Array) -> Array:
    """``(N, C, H, W) -> (C, H*W*N)``: a copy unless ``a`` is batch-last in memory already."""
    N, C, H, W = a.shape
    return a.transpose(1, 2, 3, 0).reshape(C, H * W * N)


def batch_last_padded(x: Array, padding: Pair, fill: float = 0.0) -> Array:
    """``(N, C, H, W)`` -> padded (with ``fill``), contiguous ``(C, H + 2*PH, W + 2*PW, N)``."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    PH, PW = padding
    xt = x.transpose(1, 2, 3, 0)
    if not (PH or PW):
        return xp.ascontiguousarray(xt)       # no copy if x is batch-last in memory already
    xpad = xp.full((C, H + 2 * PH, W + 2 * PW, N), fill, dtype=x.dtype)
    xpad[:, PH:PH + H, PW:PW + W, :] = xt
    return xpad


def batch_last_apply(fn: Callable[..., Any], *arrays: Array) -> Any:
    """``fn(*arrays)`` for an element-wise ``fn``, keeping a batch-last memory layout.

    When every array is an (N, C, H, W) view of a batch-last (C, H, W, N) buffer, ``fn`` runs
    on those buffers and its result(s) come back as such views too, so the next convolution or
    batch norm reads them without a reordering copy. (NumPy's ufuncs keep an input's layout by
    themselves; CuPy's kernels write C order.) Any other input: plain ``fn(*arrays)``.
    """
    if all(getattr(a, "ndim", 0) == 4 for a in arrays):
        bufs = [a.transpose(1, 2, 3, 0) for a in arrays]
        if all(b.flags.c_contiguous for b in bufs):
            out = fn(*bufs)
            if isinstance(out, tuple):
                return tuple(o.transpose(3, 0, 1, 2) for o in out)
            return out.transpose(3, 0, 1, 2)
    return fn(*arrays)
