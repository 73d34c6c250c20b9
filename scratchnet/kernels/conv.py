"""Faster bodies of `im2col`, `col2im` and `bias_grad` on CuPy (`scratchnet.functional.conv`)."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..layout import batch_last_matrix, conv_output_size
from ..ops import register_faster
from . import ElementwiseOp, on_gpu
from .norm import channel_sums

Array = Any
Pair = tuple[int, int]

# The geometry every window kernel receives (input H, W, batch N, output OH, OW, kernel KH,
# KW, strides SH, SW, padding PH, PW), after its input array.
GEOMETRY = ("int32 H, int32 W, int32 N, int32 OH, int32 OW, int32 KH, int32 KW, int32 SH, "
            "int32 SW, int32 PH, int32 PW")


def window_kernel(arrays: str, outputs: str, body: str, name: str, fill: bool = False
                  ) -> ElementwiseOp:
    """An element-wise kernel over a window geometry: its input arrays, then `GEOMETRY`
    (then the padding's ``T fill``), its outputs and the CUDA C body for element ``i``."""
    return ElementwiseOp(f"{arrays}, {GEOMETRY}" + (", T fill" if fill else ""), outputs, body,
                         name)

# One thread per entry col[c, i, j, oh, ow, n]: it reads pixel (oh*SH + i - PH, ow*SW + j - PW)
# of the batch-last (C, H, W, N) input, or writes ``fill`` where that pixel is padding.
_IM2COL = window_kernel(
    "raw T x", "T col", """
    long long r = i;
    const int n = r % N; r /= N;
    const int ow = r % OW; r /= OW;
    const int oh = r % OH; r /= OH;
    const int kj = r % KW; r /= KW;
    const int ki = r % KH;
    const long long c = r / KH;
    const int h = oh * SH + ki - PH, w = ow * SW + kj - PW;
    col = (h >= 0 && h < H && w >= 0 && w < W) ? x[((c * H + h) * W + w) * N + n] : fill;
    """, "scratchnet_im2col_gather", fill=True)


def _undilated(x: Array, dilation: Pair) -> bool:
    """The ``applies`` of the two kernels below: `on_gpu`, and no dilation (the kernels'
    geometry has none; a dilated convolution runs the reference)."""
    return on_gpu(x) and tuple(dilation) == (1, 1)


@register_faster("im2col", lambda x, kernel, stride, padding, fill=0.0, dilation=(1, 1):
                 _undilated(x, dilation))
def im2col(x: Array, kernel: Pair, stride: Pair, padding: Pair, fill: float = 0.0,
           dilation: Pair = (1, 1)) -> Array:
    """One gather kernel writes col directly, zeros for the padding included (dilation 1)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    col = xp.empty((C, KH, KW, OH, OW, N), dtype=x.dtype)
    _IM2COL(xp.ascontiguousarray(x.transpose(1, 2, 3, 0)), H, W, N, OH, OW, KH, KW,
            SH, SW, PH, PW, fill, col)
    return col


# col2im as a gather: one thread per pixel x[c, h, w, n] of the (C, H, W, N) result sums the
# column entries that were copied from it, i.e. every offset (i, j) with h + PH - i = oh*SH
# and w + PW - j = ow*SW for an output position (oh, ow) inside the (OH, OW) grid.
_COL2IM = window_kernel(
    "raw T col", "T x", """
    const int n = i % N, w = (i / N) % W, h = (i / N / W) % H, c = i / N / W / H;
    T sum = 0;
    for (int ki = 0; ki < KH; ++ki) {
        const int hs = h + PH - ki;                   // = oh * SH when (ki, oh) reads pixel h
        if (hs < 0 || hs % SH != 0 || hs / SH >= OH) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int ws = w + PW - kj;
            if (ws < 0 || ws % SW != 0 || ws / SW >= OW) continue;
            const long long k = ((((long long)c * KH + ki) * KW + kj) * OH + hs / SH) * OW + ws / SW;
            sum += col[k * N + n];
        }
    }
    x = sum;
    """, "scratchnet_col2im_gather")


@register_faster("col2im", lambda col, stride, padding, size, dilation=(1, 1):
                 _undilated(col, dilation))
def col2im(col: Array, stride: Pair, padding: Pair, size: Pair, dilation: Pair = (1, 1)
           ) -> Array:
    """The ``KH*KW`` slice-adds become one gather kernel (dilation 1)."""
    xp = get_array_module(col)
    C, KH, KW, OH, OW, N = col.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    x = xp.empty((C, H, W, N), dtype=col.dtype)
    _COL2IM(xp.ascontiguousarray(col), H, W, N, OH, OW, KH, KW, SH, SW, PH, PW, x)
    return x.transpose(3, 0, 1, 2)


@register_faster("bias_grad", on_gpu)
def bias_grad(gy: Array) -> Array:
    """One block per channel sums its row (`channel_sums`) instead of CuPy's reduction."""
    return channel_sums(batch_last_matrix(gy))[0]
