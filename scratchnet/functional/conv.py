"""Convolution as im2col and one matrix product, its gradients, and its adjoint, the
transposed convolution.

A convolution is a matrix product once every receptive field is laid out as a column:

    col = im2col(x)          # (C, KH, KW, OH, OW, N): col[c, i, j, oh, ow, n] =
                             #     x_pad[n, c, oh*SH + i, ow*SW + j]
    y = W.reshape(OC, K) @ col.reshape(K, L*N)          # one GEMM for the whole batch

im2col is a *linear* map, and its adjoint col2im sums every column entry back onto the pixel
it was copied from. Differentiating ``y = W @ col + b`` gives the whole backward pass:

    dL/dW   = gy @ col^T                                  (conv2d_grad_weight)
    dL/dcol = W^T @ gy,  then dL/dx = col2im(dL/dcol)     (conv2d_grad_input)
    dL/db   = gy summed over n, oh and ow                 (bias_grad)

A transposed convolution is defined as that adjoint: its forward pass *is*
`conv2d_grad_input`, and its backward pass is an ordinary `conv2d`.

Why the batch axis comes last in ``col`` (speed, not math): every copy in im2col and every
``+=`` in col2im then runs over rows of N contiguous numbers instead of rows of OW (7 or 14)
numbers, and each product above is a single GEMM with no transposed copies. Outputs are
returned as (N, C, H, W) *views* of batch-last buffers (`scratchnet.layout`), so the next
layer's im2col finds its input already batch-last and copies it without reordering. Shapes
and results are exactly those of the plain (N, C, ...) formulation; only the memory order
differs.

Course: [3. Convolution](../learn/03-convolution.md), [4. Transposed
convolution](../learn/04-transposed-convolution.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import as_strided, get_array_module
from ..layout import batch_last, batch_last_matrix, batch_last_padded, conv_transpose_output_size
from ..ops import op

Array = Any
Pair = tuple[int, int]

__all__ = ["im2col", "col2im", "conv2d", "conv2d_grad_weight", "conv2d_grad_input", "bias_grad",
           "conv2d_forward", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward"]


@op
def im2col(x: Array, kernel: Pair, stride: Pair, padding: Pair, fill: float = 0.0) -> Array:
    """Lay every receptive field of ``x`` out as a column.

    Args:
        x: input, shape (N, C, H, W).
        kernel: (KH, KW).
        stride: (SH, SW).
        padding: (PH, PW).
        fill: the value of padded pixels (0 for convolutions, -inf for max pooling).

    Returns:
        col, shape (C, KH, KW, OH, OW, N), contiguous, where
        ``col[c, i, j, oh, ow, n] = x_padded[n, c, oh*SH + i, ow*SW + j]``.

    The padded, batch-last input is copied once; the six-axis array is first a strided
    *view* of it (one step along ``i`` moves one row, along ``oh`` moves SH rows), then one
    contiguous copy so the GEMM can read it as a ``(K, L*N)`` matrix.
    """
    xp = get_array_module(x)
    (KH, KW), (SH, SW) = kernel, stride
    xpad = batch_last_padded(x, padding, fill)
    C, HP, WP, N = xpad.shape
    OH, OW = (HP - KH) // SH + 1, (WP - KW) // SW + 1
    sC, sH, sW, sN = xpad.strides
    view = as_strided(xpad, (C, KH, KW, OH, OW, N), (sC, sH, sW, sH * SH, sW * SW, sN))
    return xp.ascontiguousarray(view)


@op
def col2im(col: Array, stride: Pair, padding: Pair, size: Pair) -> Array:
    """Adjoint of `im2col`: add every column entry back onto its source pixel.

    Args:
        col: shape (C, KH, KW, OH, OW, N).
        stride: (SH, SW) of the matching im2col.
        padding: (PH, PW) of the matching im2col.
        size: (H, W) of the image to rebuild.

    Returns:
        x, shape (N, C, H, W) (a view of a batch-last buffer); overlapping receptive fields
        add up.

    For each of the ``KH*KW`` kernel offsets (i, j) the (OH, OW, N) block ``col[:, i, j]``
    lands on the strided slice ``x_pad[:, i : i + SH*OH : SH, j : j + SW*OW : SW]`` of the
    padded, batch-last ``(C, H + 2*PH, W + 2*PW, N)`` image; one ``+=`` per offset (no scatter-add
    needed, since within one offset no two entries collide).
    """
    xp = get_array_module(col)
    C, KH, KW, OH, OW, N = col.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    # Room for every slice, also when (H + 2P - KH) is not a multiple of S.
    HP, WP = max(H + 2 * PH, SH * (OH - 1) + KH), max(W + 2 * PW, SW * (OW - 1) + KW)
    xpad = xp.zeros((C, HP, WP, N), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            xpad[:, i:i + SH * OH:SH, j:j + SW * OW:SW, :] += col[:, i, j]
    return xpad[:, PH:PH + H, PW:PW + W, :].transpose(3, 0, 1, 2)


@op
def conv2d(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair
           ) -> tuple[Array, Array]:
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        x: (N, C, H, W).
        weight: (OC, C, KH, KW).
        bias: (OC,) or None.
        stride: (SH, SW).
        padding: (PH, PW), zeros.

    Returns:
        (y, col): y of shape (N, OC, OH, OW) and the im2col matrix (C, KH, KW, OH, OW, N)
        that the gradients need.
    """
    OC, C, KH, KW = weight.shape
    col = im2col(x, (KH, KW), stride, padding)
    _, _, _, OH, OW, N = col.shape
    y = weight.reshape(OC, C * KH * KW) @ col.reshape(C * KH * KW, OH * OW * N)
    if bias is not None:
        y += bias.reshape(OC, 1)
    return y.reshape(OC, OH, OW, N).transpose(3, 0, 1, 2), col


@op
def conv2d_grad_weight(gy: Array, col: Array) -> Array:
    """dL/dW of a convolution, from its im2col matrix.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        col: (C, KH, KW, OH, OW, N), from `conv2d`.

    Returns:
        dweight, (OC, C, KH, KW).

    Math, summing over the batch and the output positions:

        dweight[o, c, i, j] = sum over n, oh, ow of gy[n, o, oh, ow] * col[c, i, j, oh, ow, n]

    one product ``gy @ col^T`` of gy as an ``(OC, L*N)`` matrix and col as a ``(K, L*N)`` one
    (``K = C*KH*KW``), both listing the positions batch-last.
    """
    OC = gy.shape[1]
    C, KH, KW = col.shape[:3]
    gw = batch_last_matrix(gy) @ col.reshape(C * KH * KW, -1).T          # (OC, K)
    return gw.reshape(OC, C, KH, KW)


@op
def conv2d_grad_input(gy: Array, weight: Array, size: Pair, stride: Pair, padding: Pair
                      ) -> Array:
    """dL/dx of a convolution.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        weight: (OC, C, KH, KW).
        size: (H, W) of the input.
        stride: (SH, SW).
        padding: (PH, PW).

    Returns:
        dx, (N, C, H, W).

    Math: ``dcol = W^T @ gy`` (weight as an (OC, K) matrix, gy as ``(OC, L*N)``), then
    ``dx = col2im(dcol)``: every column entry goes back onto the pixel im2col read it from.
    """
    OC, C, KH, KW = weight.shape
    N, _, OH, OW = gy.shape
    gcol = weight.reshape(OC, C * KH * KW).T @ batch_last_matrix(gy)      # (K, L*N)
    return col2im(gcol.reshape(C, KH, KW, OH, OW, N), stride, padding, size)


@op
def bias_grad(gy: Array) -> Array:
    """dL/db of a convolution: gy (N, OC, OH, OW) summed over n, oh and ow, shape (OC,).

    The bias is broadcast over the batch and every output position in forward, so its
    gradient is the sum of gy over them.
    """
    return gy.sum(axis=(0, 2, 3))


@op
def conv2d_forward(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair
                   ) -> tuple[Array, Any]:
    """The forward pass of `nn.Conv2d`: `conv2d` (the same arguments), returning ``(y,
    saved)``, where ``saved`` is what `conv2d_backward` needs: the im2col matrix here. (Large
    float32 layers on the CPU take `scratchnet.blocked` instead, which keeps the padded
    input, a `blocked.PaddedInput`, in its place.)
    """
    return conv2d(x, weight, bias, stride, padding)


@op
def conv2d_backward(gy: Array, col: Any, weight: Array, size: Pair, stride: Pair,
                    padding: Pair) -> tuple[Array, Array, Array]:
    """The backward pass of `nn.Conv2d`: all three gradients of `conv2d_forward`.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        col: what `conv2d_forward` saved (the im2col matrix).
        weight: (OC, C, KH, KW).
        size: (H, W) of the input.
        stride: (SH, SW).
        padding: (PH, PW).

    Returns:
        (dx, dweight, dbias): `conv2d_grad_input`, `conv2d_grad_weight` and `bias_grad`,
        shapes (N, C, H, W), (OC, C, KH, KW) and (OC,).
    """
    gy = batch_last(gy)                          # read three times below: lay it out once
    dbias, dweight = bias_grad(gy), conv2d_grad_weight(gy, col)
    return conv2d_grad_input(gy, weight, size, stride, padding), dweight, dbias


@op
def conv_transpose2d(x: Array, weight: Array, bias: Array | None, stride: Pair,
                     padding: Pair, output_padding: Pair = (0, 0)) -> Array:
    """Transposed convolution: the adjoint of `conv2d` with respect to its input.

    Args:
        x: (N, C_in, H, W).
        weight: (C_in, C_out, KH, KW) (PyTorch's layout).
        bias: (C_out,) or None.
        stride: (SH, SW).
        padding: (PH, PW).
        output_padding: extra rows and columns on the bottom and right.

    Returns:
        (N, C_out, OH, OW) with ``OH = (H - 1)*SH - 2*PH + KH + output_padding[0]``.

    Math: ``y = conv2d_grad_input(x, weight, (OH, OW), stride, padding) + bias``: weight
    read as the (C_in, C_out, KH, KW) kernel of a convolution from C_out to C_in channels.
    """
    _, C_in, H, W = x.shape
    _, C_out, KH, KW = weight.shape
    OH = conv_transpose_output_size(H, KH, stride[0], padding[0], output_padding[0])
    OW = conv_transpose_output_size(W, KW, stride[1], padding[1], output_padding[1])
    y = conv2d_grad_input(x, weight, (OH, OW), stride, padding)
    if bias is not None:
        y += bias.reshape(1, C_out, 1, 1)            # y is a view of a fresh buffer: in place
    return y


@op
def conv_transpose2d_backward(gy: Array, x: Array, weight: Array, stride: Pair,
                              padding: Pair) -> tuple[Array, Array, Array]:
    """Gradients of `conv_transpose2d`.

    Args:
        gy: (N, C_out, OH, OW), the upstream gradient.
        x: (N, C_in, H, W), the layer's input (what it keeps).
        weight: (C_in, C_out, KH, KW).
        stride: (SH, SW).
        padding: (PH, PW). (output_padding only added rows and columns of y, whose
            gradients are in gy already.)

    Returns:
        (dx, dweight, dbias): shapes (N, C_in, H, W), (C_in, C_out, KH, KW), (C_out,).

    Math: forward was ``y = A^T x`` with A the matrix of a convolution, so backward is that
    convolution itself:

        dx, gcol = conv2d(gy, weight, no bias, stride, padding)     # A gy, and im2col(gy)
        dweight  = conv2d_grad_weight(x, gcol)                       # x @ im2col(gy)^T
        dbias    = gy summed over n, oh and ow
    """
    dx, gcol = conv2d(gy, weight, None, stride, padding)
    return dx, conv2d_grad_weight(x, gcol), bias_grad(gy)
