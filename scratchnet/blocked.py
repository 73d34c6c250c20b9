"""The CPU's fast path for convolutions: the products of `scratchnet.functional.conv`, done a
few output rows at a time so that each piece of the im2col matrix stays in cache.

Why. ``functional.conv2d`` lays the whole im2col matrix out and multiplies it once. For a
3x3 layer with 32 input channels at 28x28 and a batch of 64 that matrix is K = 288 rows by
``L*N`` = 50,176 columns, 58 MB: it is written to memory, read back by the GEMM, and read again
by the weight gradient, so the layer runs at memory speed, and the GEMM, skinny (16 output
rows), reaches a fraction of the machine's rate on it. Here the matrix is never built whole:

    forward   for each block of output rows R:   y[:, R] = W @ im2col(x)[:, R]
    dW        for each block:                     dW += gy[:, R] @ im2col(x)[:, R]^T
              (the block of im2col is rebuilt, in cache, rather than kept from forward)
    dx        dx = conv2d(gy spread out by the stride and padded by K - 1 - P, W flipped in
              space and with its channel axes swapped): the same blocked product again, so
              no col2im

Each block is about 4 MB. The blocks are independent, so they are shared out over the cores
(`scratchnet.threads.parallel_map`; BLAS at one thread per block meanwhile); for dW every
thread sums its own blocks and the partial sums are added at the end.

Why dx is a convolution: every output that pixel (h, w) fed contributes to it,

    dx[c, h, w] = sum over oc, oh, ow of gy[oc, oh, ow] * W[oc, c, h + P - oh*S, w + P - ow*S]

Spread gy out by the stride (S - 1 zeros between its entries: the *dilated* gy, whose entry
at row ``oh*S`` is ``gy[oh]``) and rename ``i' = KH - 1 - i``: this is a stride-1 correlation
of the dilated gy, padded by ``K - 1 - P``, with the kernel
``W'[c, oc, i', j'] = W[oc, c, KH - 1 - i', KW - 1 - j']``: exactly what the blocked forward
product computes.

This module is the faster body of the ops `conv2d_forward` and `conv2d_backward`
(`scratchnet.ops`): on NumPy arrays where `use_blocked_cpu` allows it (float32 by default)
and the im2col matrix would be at least `MIN_BYTES`, for convolutions without options
(dilation 1, groups 1, zero padding the same on both sides; `plain`): the others run the
reference. Its forward keeps the padded input, a
`PaddedInput`, where the reference keeps im2col, and its backward runs for exactly that
cache. Shapes and layout are those of `scratchnet.functional` (batch axis last in memory);
``tests/test_blocked.py`` holds every result to the reference functions on a grid of shapes
and gradchecks the layers on this path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy

from .backend import as_strided, get_array_module
from .layout import batch_last, batch_last_padded, conv_output_size
from .ops import register_faster
from .threads import num_threads, parallel_map

Array = Any
Pair = tuple[int, int]

__all__ = ["use_blocked_cpu", "blocked_cpu_applies", "serves", "plain", "PaddedInput", "conv2d_forward",
           "conv2d_backward", "dx_as_convolution", "BLOCK_BYTES", "MIN_BYTES"]

BLOCK_BYTES = 4 << 20           # im2col bytes per block: fits a core's share of the cache
# im2col matrices at least this large take this path: below it the whole matrix stays in
# cache anyway, and one GEMM beats several (measured: 1, 8 and 32 MB tried, 8 MB kept).
MIN_BYTES = 8 << 20

_mode = os.environ.get("SCRATCHNET_BLOCKED_CPU", "float32")


def use_blocked_cpu(mode: str | None = None) -> str:
    """Where the blocked CPU paths run instead of the reference array code (returns the
    previous setting; None only reads it).

    ``"float32"`` (the default): NumPy arrays of float32, i.e. training and inference; float64
    (gradient checks, parity tests) runs the reference code in `scratchnet.functional`.
    ``"always"``: every NumPy array (how the tests gradcheck the blocked code itself).
    ``"never"``: the reference code everywhere. ``SCRATCHNET_BLOCKED_CPU`` sets the start value.
    """
    global _mode
    previous = _mode
    if mode is not None:
        if mode not in ("float32", "always", "never"):
            raise ValueError(f"use_blocked_cpu: expected 'float32', 'always' or 'never', got {mode!r}")
        _mode = mode
    return previous


def blocked_cpu_applies(x: Any) -> bool:
    """True when the setting of `use_blocked_cpu` lets the blocked path serve ``x``."""
    if _mode == "never" or type(x) is not numpy.ndarray:
        return False
    return _mode == "always" or x.dtype == numpy.float32


def serves(x: Array, weight: Array, stride: Pair, padding: Pair) -> bool:
    """True when a convolution of ``x`` by ``weight`` should take this path: the setting allows
    it (`use_blocked_cpu`) and its im2col matrix would be at least MIN_BYTES (any size with
    ``"always"``)."""
    if not blocked_cpu_applies(x):
        return False
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    OH = conv_output_size(H, KH, stride[0], padding[0])
    OW = conv_output_size(W, KW, stride[1], padding[1])
    return C * KH * KW * OH * OW * N * x.itemsize >= MIN_BYTES or _mode == "always"


def plain(padding: tuple[int, ...], dilation: Pair = (1, 1), groups: int = 1,
          padding_mode: str = "zeros") -> bool:
    """True for a convolution this path computes: symmetric zero padding (PH, PW), dilation 1
    and groups 1."""
    return (len(padding) == 2 and tuple(dilation) == (1, 1) and groups == 1
            and padding_mode == "zeros")


@dataclass(frozen=True)
class PaddedInput:
    """What the blocked forward keeps for backward: the padded, batch-last input
    ``(C, H + 2*PH, W + 2*PW, N)``, no larger than x, where the reference keeps a ``KH*KW``
    times larger im2col matrix."""
    xpad: Array


def _row_blocks(rows: int, bytes_per_row: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering ``rows`` output rows, about BLOCK_BYTES of im2col each."""
    step = max(1, min(rows, BLOCK_BYTES // max(bytes_per_row, 1)))
    return [(r, min(r + step, rows)) for r in range(0, rows, step)]


def _im2col_rows(xpad: Array, kernel: Pair, stride: Pair, out_rows: tuple[int, int],
                 OW: int) -> Array:
    """The ``(K, rows*OW*N)`` slice of im2col(x) for output rows [r0, r1), from the padded,
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


@register_faster("conv2d_forward", lambda x, weight, bias, stride, padding, *options, **named:
                 plain(padding, *options, **named) and serves(x, weight, stride, padding))
def conv2d_forward(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair,
                   dilation: Pair = (1, 1), groups: int = 1, padding_mode: str = "zeros"
                   ) -> tuple[Array, PaddedInput]:
    """``functional.conv2d_forward`` in blocks (the same arguments; only for `plain`
    options): y (N, OC, OH, OW) as a view of a batch-last buffer, and the `PaddedInput` that
    `conv2d_backward` needs."""
    xpad = batch_last_padded(x, padding)
    y = _blocked_product(xpad, weight, bias, stride)
    return y.transpose(3, 0, 1, 2), PaddedInput(xpad)


def dx_as_convolution(gy: Array, weight: Array, size: Pair, stride: Pair, padding: Pair
                      ) -> Array:
    """dL/dx of a convolution as a stride-1 convolution of the dilated ``gy`` (see the module
    docstring).

    Args:
        gy: (N, OC, OH, OW).
        weight: (OC, C, KH, KW).
        size: (H, W) of the input.
        stride: the forward's (SH, SW).
        padding: the forward's (PH, PW).

    Returns:
        (N, C, H, W).
    """
    xp = get_array_module(gy)
    OC, C, KH, KW = weight.shape
    N, _, OH, OW = gy.shape
    (H, W), (SH, SW), (PH, PW) = size, stride, padding
    flipped = xp.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, OC, ..)
    # The dilated, padded gy: entry (oh, ow) at row KH - 1 - PH + oh*SH, column KW - 1 - PW +
    # ow*SW of an (H + KH - 1, W + KW - 1) image. With PH > KH - 1 the first rows would land
    # above it: they belong to windows that read padding only, and are left out.
    HD, WD = H + KH - 1, W + KW - 1
    gd = xp.zeros((OC, HD, WD, N), dtype=gy.dtype)
    rows = _placed(KH - 1 - PH, SH, OH, HD)
    cols = _placed(KW - 1 - PW, SW, OW, WD)
    gd[:, rows[0]:rows[1]:SH, cols[0]:cols[1]:SW] = \
        gy.transpose(1, 2, 3, 0)[:, rows[2]:rows[3], cols[2]:cols[3]]
    return _blocked_product(gd, flipped, None, (1, 1)).transpose(3, 0, 1, 2)


def _placed(offset: int, stride: int, n: int, room: int) -> tuple[int, int, int, int]:
    """Entries k of 0 .. n - 1 placed at ``offset + k*stride``: (first and end position, first
    and end k) of those that fall inside 0 .. room - 1."""
    k0 = max(0, -(offset // stride)) if offset < 0 else 0
    k1 = min(n, (room - 1 - offset) // stride + 1)
    return offset + k0 * stride, offset + (k1 - 1) * stride + 1, k0, k1


@register_faster("conv2d_backward",
                 lambda gy, col, *args, **options: isinstance(col, PaddedInput), always=True)
def conv2d_backward(gy: Array, col: PaddedInput, weight: Array, size: Pair, stride: Pair,
                    padding: Pair, dilation: Pair = (1, 1), groups: int = 1,
                    padding_mode: str = "zeros") -> tuple[Array, Array, Array]:
    """``functional.conv2d_backward`` in blocks, for the `PaddedInput` of `conv2d_forward`
    (whose options were `plain`: the default dilation, groups and padding_mode).

    Returns:
        (dx (N, C, H, W), dW (OC, C, KH, KW), db (OC,)).
    """
    xpad = col.xpad
    OC, C, KH, KW = weight.shape
    gy = batch_last(gy)
    gm = gy.transpose(1, 2, 3, 0)                                    # (OC, OH, OW, N), no copy
    _, OH, OW, N = gm.shape

    def block_dw(rows: tuple[int, int]) -> Array:
        cols = _im2col_rows(xpad, (KH, KW), stride, rows, OW)
        return gm[:, rows[0]:rows[1]].reshape(OC, -1) @ cols.T            # (OC, K)

    blocks = _row_blocks(OH, C * KH * KW * OW * N * xpad.itemsize)
    n = min(len(blocks), num_threads())
    groups = [blocks[i::n] for i in range(n)]                           # one per thread
    partial = parallel_map(lambda group: sum(block_dw(rows) for rows in group), groups)
    dw = partial[0]
    for p in partial[1:]:
        dw += p
    dx = dx_as_convolution(gy, weight, size, stride, padding)
    return dx, dw.reshape(OC, C, KH, KW), gy.sum(axis=(0, 2, 3))
