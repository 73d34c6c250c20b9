"""Pure array functions: convolution via im2col + one matmul, and its adjoint.

Notation (shape letters used throughout):
    N       batch size                    C       input channels
    H, W    input height and width        OC      output channels
    KH, KW  kernel height and width       SH, SW  strides
    PH, PW  zero padding                  OH, OW  output height and width
    K       C*KH*KW (one flattened receptive field)
    L       OH*OW   (number of output positions)

A convolution is a matrix product once every receptive field is laid out as a column:

    col = im2col(x)                     # (N, C, KH, KW, OH, OW), col[n,c,i,j,oh,ow] =
                                        #   x_pad[n, c, oh*SH + i, ow*SW + j]
    y[n] = W.reshape(OC, K) @ col[n].reshape(K, L)

im2col is a *linear* map, and its adjoint col2im sums every column entry back onto the pixel
it was copied from. Differentiating y = W @ col gives the whole backward pass:

    dL/dW   = sum_n gy[n] @ col[n]^T                 (conv2d_grad_weight)
    dL/dcol = W^T @ gy[n]                            then dL/dx = col2im(dL/dcol)
                                                     (conv2d_grad_input)

A transposed convolution is defined as that adjoint: its forward pass *is* conv2d_grad_input,
and its backward pass is an ordinary conv2d (which is why both layers share these functions).

The functions take and return arrays of any backend; they never call NumPy directly.
"""
from __future__ import annotations

from typing import Any

from .backend import as_strided, get_array_module

Array = Any
Pair = tuple[int, int]

__all__ = ["conv_output_size", "conv_transpose_output_size", "im2col", "col2im", "conv2d",
           "conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d", "sigmoid"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2P - K) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int = 0) -> int:
    """Output length of a transposed convolution: (size - 1)*S - 2P + K + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def im2col(x: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    """Lay every receptive field of ``x`` out as a column.

    Args:
        x: input, shape (N, C, H, W).
        kernel, stride, padding: (KH, KW), (SH, SW), (PH, PW).

    Returns:
        col, shape (N, C, KH, KW, OH, OW), contiguous, where
        col[n, c, i, j, oh, ow] = x_padded[n, c, oh*SH + i, ow*SW + j].

    The padded input is copied once; the six-axis array is first a strided *view* of it
    (moving one step along ``i`` moves one row, along ``oh`` moves SH rows), then one
    contiguous copy so the matmul can read it as (N, K, L).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    if PH or PW:
        xpad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
        xpad[:, :, PH:PH + H, PW:PW + W] = x
    else:
        xpad = xp.ascontiguousarray(x)
    sN, sC, sH, sW = xpad.strides
    view = as_strided(xpad, (N, C, KH, KW, OH, OW), (sN, sC, sH, sW, sH * SH, sW * SW))
    return xp.ascontiguousarray(view)


def col2im(col: Array, stride: Pair, padding: Pair, size: Pair) -> Array:
    """Adjoint of :func:`im2col`: add every column entry back onto its source pixel.

    Args:
        col: shape (N, C, KH, KW, OH, OW).
        stride, padding: (SH, SW), (PH, PW) used by the matching im2col.
        size: (H, W) of the image to rebuild.

    Returns:
        x, shape (N, C, H, W); overlapping receptive fields add up.

    For each of the KH*KW kernel offsets (i, j) the (OH, OW) plane col[:, :, i, j] lands on
    the strided slice x_pad[:, :, i : i + SH*OH : SH, j : j + SW*OW : SW]; one ``+=`` per
    offset (no scatter-add needed, since within one offset no two entries collide).
    """
    xp = get_array_module(col)
    N, C, KH, KW, OH, OW = col.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    # Room for every slice, also when (H + 2P - KH) is not a multiple of S.
    HP, WP = max(H + 2 * PH, SH * (OH - 1) + KH), max(W + 2 * PW, SW * (OW - 1) + KW)
    xpad = xp.zeros((N, C, HP, WP), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            xpad[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] += col[:, :, i, j]
    return xpad[:, :, PH:PH + H, PW:PW + W]


def conv2d(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair
           ) -> tuple[Array, Array]:
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        x: (N, C, H, W).  weight: (OC, C, KH, KW).  bias: (OC,) or None.

    Returns:
        (y, col): y of shape (N, OC, OH, OW) and the im2col matrix that backward needs.
    """
    OC, C, KH, KW = weight.shape
    col = im2col(x, (KH, KW), stride, padding)
    N, _, _, _, OH, OW = col.shape
    y = weight.reshape(OC, C * KH * KW) @ col.reshape(N, C * KH * KW, OH * OW)   # (N, OC, L)
    y = y.reshape(N, OC, OH, OW)
    if bias is not None:
        y += bias.reshape(1, OC, 1, 1)
    return y, col


def conv2d_grad_weight(gy: Array, col: Array) -> Array:
    """dL/dW of a convolution: sum over n and output positions of gy * col.

    Args:
        gy: (N, OC, OH, OW) upstream gradient.  col: (N, C, KH, KW, OH, OW).

    Returns:
        (OC, C, KH, KW).
    """
    xp = get_array_module(gy)
    N, OC = gy.shape[:2]
    _, C, KH, KW, OH, OW = col.shape
    gw = xp.tensordot(gy.reshape(N, OC, OH * OW), col.reshape(N, C * KH * KW, OH * OW),
                      axes=((0, 2), (0, 2)))                                    # (OC, K)
    return gw.reshape(OC, C, KH, KW)


def conv2d_grad_input(gy: Array, weight: Array, size: Pair, stride: Pair, padding: Pair
                      ) -> Array:
    """dL/dx of a convolution: col2im(W^T @ gy).

    Args:
        gy: (N, OC, OH, OW).  weight: (OC, C, KH, KW).  size: (H, W) of the input.

    Returns:
        (N, C, H, W).
    """
    OC, C, KH, KW = weight.shape
    N, _, OH, OW = gy.shape
    gcol = weight.reshape(OC, C * KH * KW).T @ gy.reshape(N, OC, OH * OW)       # (N, K, L)
    return col2im(gcol.reshape(N, C, KH, KW, OH, OW), stride, padding, size)


def conv_transpose2d(x: Array, weight: Array, bias: Array | None, stride: Pair,
                     padding: Pair, output_padding: Pair = (0, 0)) -> Array:
    """Transposed convolution: the adjoint of :func:`conv2d` w.r.t. its input.

    Args:
        x: (N, C_in, H, W).  weight: (C_in, C_out, KH, KW) (PyTorch's layout).
        bias: (C_out,) or None.  output_padding: extra rows/columns on the bottom/right.

    Returns:
        (N, C_out, OH, OW) with OH = (H - 1)*SH - 2*PH + KH + output_padding[0].
    """
    _, C_in, H, W = x.shape
    _, C_out, KH, KW = weight.shape
    OH = conv_transpose_output_size(H, KH, stride[0], padding[0], output_padding[0])
    OW = conv_transpose_output_size(W, KW, stride[1], padding[1], output_padding[1])
    y = conv2d_grad_input(x, weight, (OH, OW), stride, padding)
    if bias is not None:
        y = y + bias.reshape(1, C_out, 1, 1)
    return y


def sigmoid(x: Array) -> Array:
    """Logistic function that never overflows: uses exp(-|x|) <= 1 on both branches."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
