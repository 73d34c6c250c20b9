"""Faster bodies of `max_pool2d` and `max_pool2d_backward` on CuPy (`scratchnet.functional.pool`)."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..layout import conv_output_size
from ..ops import register_faster
from . import on_gpu
from .conv import window_kernel

Array = Any
Pair = tuple[int, int]

# One thread per output y[c, oh, ow, n] runs the window loop of the reference over the
# batch-last (C, H, W, N) input (padding reads as -inf; ">" keeps the first maximum, a NaN wins).
_MAX_POOL = window_kernel(
    "raw T x", "T y, int32 argmax", """
    const int n = i % N, ow = (i / N) % OW, oh = (i / N / OW) % OH;
    const long long c = i / N / OW / OH;
    T best = 0;
    int arg = 0;
    for (int k = 0; k < KH * KW; ++k) {
        const int h = oh * SH + k / KW - PH, w = ow * SW + k % KW - PW;
        const T v = (h >= 0 && h < H && w >= 0 && w < W) ? x[((c * H + h) * W + w) * N + n] : fill;
        if (k == 0 || v > best || v != v) { best = v; arg = k; }    // as maximum(): NaN stays
    }
    y = best;
    argmax = arg;
    """, "scratchnet_max_pool_gather", fill=True)


@register_faster("max_pool2d", on_gpu)
def max_pool2d(x: Array, kernel: Pair, stride: Pair, padding: Pair, with_argmax: bool = True
               ) -> tuple[Array, Array | None]:
    """One thread per output: the reference's window loop, in place."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    y = xp.empty((C, OH, OW, N), dtype=x.dtype)
    argmax = xp.empty((C, OH, OW, N), dtype="int32")
    _MAX_POOL(xp.ascontiguousarray(x.transpose(1, 2, 3, 0)), H, W, N, OH, OW, KH, KW, SH, SW,
              PH, PW, -float("inf"), y, argmax)
    return y.transpose(3, 0, 1, 2), argmax


# One thread per input pixel sums the gy of every window whose maximum it was (the col2im
# gather, keeping only the entries argmax points at).
_MAX_POOL_BACKWARD = window_kernel(
    "raw T gy, raw int32 argmax", "T dx", """
    const int n = i % N, w = (i / N) % W, h = (i / N / W) % H;
    const long long c = i / N / W / H;
    T sum = 0;
    for (int ki = 0; ki < KH; ++ki) {
        const int hs = h + PH - ki;
        if (hs < 0 || hs % SH != 0 || hs / SH >= OH) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int ws = w + PW - kj;
            if (ws < 0 || ws % SW != 0 || ws / SW >= OW) continue;
            const long long o = ((c * OH + hs / SH) * OW + ws / SW) * N + n;
            if (argmax[o] == ki * KW + kj) sum += gy[o];
        }
    }
    dx = sum;
    """, "scratchnet_max_pool_grad_gather")


@register_faster("max_pool2d_backward", on_gpu)
def max_pool2d_backward(gy: Array, argmax: Array, kernel: Pair, stride: Pair, padding: Pair,
                        size: Pair) -> Array:
    """One thread per input pixel, no one-hot column and no col2im."""
    xp = get_array_module(gy)
    (KH, KW), (C, OH, OW, N) = kernel, argmax.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    dx = xp.empty((C, H, W, N), dtype=gy.dtype)
    _MAX_POOL_BACKWARD(xp.ascontiguousarray(gy.transpose(1, 2, 3, 0)), argmax, H, W, N, OH, OW,
                       KH, KW, SH, SW, PH, PW, dx)
    return dx.transpose(3, 0, 1, 2)
