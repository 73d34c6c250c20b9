"""The CPU's fast path for convolutions: the same products as :mod:`scratchnet.functional`,
done a few output rows at a time so that each piece of the im2col matrix stays in cache.

Why. ``functional.conv2d`` lays the whole im2col matrix out and multiplies it once. For a
3x3 layer with 32 input channels at 28x28 and a batch of 64 that matrix is K = 288 rows by
L*N = 50,176 columns, 58 MB: it is written to memory, read back by the GEMM, and read again
by the weight gradient, so the layer runs at memory speed, and the GEMM, skinny (16 output
rows), reaches a fraction of the machine's rate on it. Here the matrix is never built whole:

    forward   for each block of output rows R:   y[:, R] = W @ im2col(x)[:, R]
    dW        for each block:                     dW += gy[:, R] @ im2col(x)[:, R]^T
              (the block of im2col is rebuilt, in cache, rather than kept from forward)
    dx        stride 1: dx = conv2d(gy padded by K - 1 - P, W flipped in space and with its
              channel axes swapped), the same blocked product again, so no col2im;
              other strides: functional.conv2d_grad_input (the reference)

Each block is about 4 MB. The blocks are independent, so they are shared out over the cores
(``backend.parallel_map``; BLAS at one thread per block meanwhile); for dW every thread sums
its own blocks and the partial sums are added at the end.

Why dx is a convolution: dx[c, h, w] = sum over oc, i, j of gy[oc, h + P - i, w + P - j] *
W[oc, c, i, j] (every output that pixel (h, w) fed, stride 1). Renaming i' = KH - 1 - i turns
this into a correlation of gy, padded by KH - 1 - P, with the kernel W'[c, oc, i', j'] =
W[oc, c, KH - 1 - i', KW - 1 - j']: exactly what :func:`conv2d_forward` computes.

Shapes and layout are those of :mod:`scratchnet.functional` (batch axis last in memory). This
module runs on NumPy only (``backend.blocked_cpu_applies`` decides where: float32 by default);
``tests/test_blocked.py`` holds every result to the reference functions on a grid of shapes
and gradchecks the layers on this path.
"""
from __future__ import annotations

from typing import Any

from . import functional as F
from .backend import (as_strided, blocked_cpu_applies, get_array_module, num_threads,
                      parallel_map, use_blocked_cpu)

Array = Any
Pair = tuple[int, int]

__all__ = ["serves", "conv2d_forward", "conv2d_backward", "dx_as_convolution", "BLOCK_BYTES",
           "MIN_BYTES"]

BLOCK_BYTES = 4 << 20           # im2col bytes per block: fits a core's share of the cache
# im2col matrices at least this large take this path: below it the whole matrix stays in
# cache anyway, and one GEMM beats several (measured: 1, 8 and 32 MB tried, 8 MB kept).
MIN_BYTES = 8 << 20


def serves(x: Array, weight: Array, stride: Pair, padding: Pair) -> bool:
    """True when a convolution of ``x`` by ``weight`` should take this path: the backend's
    setting allows it (``backend.use_blocked_cpu``) and its im2col matrix would be at least
    MIN_BYTES (any size with ``"always"``)."""
    if not blocked_cpu_applies(x):
        return False
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    OH = F.conv_output_size(H, KH, stride[0], padding[0])
    OW = F.conv_output_size(W, KW, stride[1], padding[1])
    return C * KH * KW * OH * OW * N * x.itemsize >= MIN_BYTES or use_blocked_cpu() == "always"


def _row_blocks(rows: int, bytes_per_row: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering ``rows`` output rows, about BLOCK_BYTES of im2col each."""
    step = max(1, min(rows, BLOCK_BYTES // max(bytes_per_row, 1)))
    return [(r, min(r + step, rows)) for r in range(0, rows, step)]


def _im2col_rows(xpad: Array, kernel: Pair, stride: Pair, out_rows: tuple[int, int],
                 OW: int) -> Array:
    """The (K, rows*OW*N) slice of im2col(x) for output rows [r0, r1), from the padded,
    batch-last (C, HP, WP, N) input: a strided view, copied once (that copy is the block)."""
    (KH, KW), (SH, SW), (r0, r1) = kernel, stride, out_rows
    C, _, _, N = xpad.shape
    sC, sH, sW, sN = xpad.strides
    view = as_strided(xpad[:, r0 * SH:], (C, KH, KW, r1 - r0, OW, N),
                      (sC, sH, sW, sH * SH, sW * SW, sN))
    return view.reshape(C * KH * KW, (r1 - r0) * OW * N)


def _output_size(xpad: Array, kernel: Pair, stride: Pair) -> Pair:
    _, HP, WP, _ = xpad.shape
    return (HP - kernel[0]) // stride[0] + 1, (WP - kernel[1]) // stride[1] + 1


def _blocked_product(xpad: Array, weight: Array, bias: Array | None, stride: Pair) -> Array:
    """y = W @ im2col(x) (+ bias), block by block: (OC, OH, OW, N) from padded (C, HP, WP, N)."""
    xp = get_array_module(xpad)
    OC, C, KH, KW = weight.shape
    N = xpad.shape[3]
    OH, OW = _output_size(xpad, (KH, KW), stride)
    w = weight.reshape(OC, C * KH * KW)
    y = xp.empty((OC, OH, OW, N), dtype=xpad.dtype)

    def block(rows: tuple[int, int]) -> None:
        col = _im2col_rows(xpad, (KH, KW), stride, rows, OW)
        out = y[:, rows[0]:rows[1]].reshape(OC, -1)             # a view: rows of y, in place
        xp.matmul(w, col, out=out)
        if bias is not None:
            out += bias.reshape(OC, 1)

    parallel_map(block, _row_blocks(OH, C * KH * KW * OW * N * xpad.itemsize))
    return y


def conv2d_forward(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair
                   ) -> tuple[Array, Array]:
    """:func:`functional.conv2d` in blocks.

    Args:
        x: (N, C, H, W).  weight: (OC, C, KH, KW).  bias: (OC,) or None.

    Returns:
        (y, xpad): y (N, OC, OH, OW) as a view of a batch-last buffer, and the padded,
        batch-last input (C, H + 2*PH, W + 2*PW, N) that :func:`conv2d_backward` needs (no
        larger than x, where the reference keeps a KH*KW times larger im2col matrix).
    """
    xpad = F._batch_last_padded(x, padding)
    y = _blocked_product(xpad, weight, bias, stride)
    return y.transpose(3, 0, 1, 2), xpad


def dx_as_convolution(gy: Array, weight: Array, padding: Pair) -> Array:
    """dL/dx of a stride-1 convolution as a convolution of ``gy`` (see the module docstring).

    Args:
        gy: (N, OC, OH, OW).  weight: (OC, C, KH, KW).  padding: the forward's (PH, PW), each
            at most K - 1.

    Returns:
        (N, C, H, W).
    """
    OC, C, KH, KW = weight.shape
    PH, PW = padding
    flipped = get_array_module(weight).ascontiguousarray(
        weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))             # (C, OC, KH, KW)
    gpad = F._batch_last_padded(gy, (KH - 1 - PH, KW - 1 - PW))
    return _blocked_product(gpad, flipped, None, (1, 1)).transpose(3, 0, 1, 2)


def conv2d_backward(gy: Array, xpad: Array, weight: Array, stride: Pair, padding: Pair,
                    size: Pair) -> tuple[Array, Array]:
    """dL/dx and dL/dW of :func:`conv2d_forward` (the bias gradient is ``functional.bias_grad``).

    Args:
        gy: (N, OC, OH, OW).  xpad: from the forward.  weight: (OC, C, KH, KW).
        size: (H, W) of the input.

    Returns:
        (dx (N, C, H, W), dW (OC, C, KH, KW)).
    """
    xp = get_array_module(gy)
    OC, C, KH, KW = weight.shape
    gm = xp.ascontiguousarray(gy.transpose(1, 2, 3, 0))                  # (OC, OH, OW, N)
    _, OH, OW, N = gm.shape

    def block_dw(rows: tuple[int, int]) -> Array:
        col = _im2col_rows(xpad, (KH, KW), stride, rows, OW)
        return gm[:, rows[0]:rows[1]].reshape(OC, -1) @ col.T            # (OC, K)

    blocks = _row_blocks(OH, C * KH * KW * OW * N * xpad.itemsize)
    n = min(len(blocks), num_threads())
    groups = [blocks[i::n] for i in range(n)]                           # one per thread
    partial = parallel_map(lambda group: sum(block_dw(rows) for rows in group), groups)
    dw = partial[0]
    for p in partial[1:]:
        dw += p
    if stride == (1, 1) and padding[0] <= KH - 1 and padding[1] <= KW - 1:
        dx = dx_as_convolution(gm.transpose(3, 0, 1, 2), weight, padding)
    else:
        dx = F.conv2d_grad_input(gm.transpose(3, 0, 1, 2), weight, size, stride, padding)
    return dx, dw.reshape(OC, C, KH, KW)
