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

The options of PyTorch's layers go through the same three products:

- dilation D: kernel tap (i, j) reads pixel ``(oh*SH + i*DH, ow*SW + j*DW)``; only im2col's
  view and col2im's slices change (the receptive field spans ``D*(K - 1) + 1`` pixels);
- groups G: the C input and OC output channels are cut into G groups and group g's outputs
  read group g's inputs only; weight is (OC, C/G, KH, KW), and each product above becomes G
  products, one per group (`grouped_matmul`);
- padding_mode 'reflect', 'replicate', 'circular' (and asymmetric zero padding, as
  ``padding='same'`` with an even kernel needs): x is padded first by the op `pad`, then
  convolved without padding; backward runs `pad_backward` on the padded input's gradient.

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
from .pad import pad, pad_backward

Array = Any
Pair = tuple[int, int]

__all__ = ["im2col", "col2im", "conv2d", "conv2d_grad_weight", "conv2d_grad_input", "bias_grad",
           "conv2d_forward", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
           "grouped_matmul", "non_default"]

_DEFAULTS = {"dilation": (1, 1), "groups": 1, "padding_mode": "zeros"}


def non_default(**options: Any) -> dict[str, Any]:
    """The options among dilation, groups and padding_mode that differ from their defaults.

    The ops pass these on as keyword arguments, so a convolution without options calls the
    ops below it with their original arguments only (and a replacement written for those,
    ``override(col2im=my_col2im)``, keeps working in the layers).
    """
    return {k: v for k, v in options.items() if v != _DEFAULTS[k]}


def grouped_matmul(a: Array, b: Array) -> Array:
    """``a[g] @ b[g]`` for every group g: (G, M, K) and (G, K, P) -> (G, M, P).

    One group is one plain 2-D product (the GEMM of a convolution without groups).
    """
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


@op
def im2col(x: Array, kernel: Pair, stride: Pair, padding: Pair, fill: float = 0.0,
           dilation: Pair = (1, 1)) -> Array:
    """Lay every receptive field of ``x`` out as a column.

    Args:
        x: input, shape (N, C, H, W).
        kernel: (KH, KW).
        stride: (SH, SW).
        padding: (PH, PW).
        fill: the value of padded pixels (0 for convolutions, -inf for max pooling).
        dilation: (DH, DW), the spacing of the kernel's taps.

    Returns:
        col, shape (C, KH, KW, OH, OW, N), contiguous, where
        ``col[c, i, j, oh, ow, n] = x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW]``.

    The padded, batch-last input is copied once; the six-axis array is first a strided
    *view* of it (one step along ``i`` moves DH rows, along ``oh`` moves SH rows), then one
    contiguous copy so the GEMM can read it as a ``(K, L*N)`` matrix.
    """
    xp = get_array_module(x)
    (KH, KW), (SH, SW), (DH, DW) = kernel, stride, dilation
    xpad = batch_last_padded(x, padding, fill)
    C, HP, WP, N = xpad.shape
    OH, OW = (HP - DH * (KH - 1) - 1) // SH + 1, (WP - DW * (KW - 1) - 1) // SW + 1
    sC, sH, sW, sN = xpad.strides
    view = as_strided(xpad, (C, KH, KW, OH, OW, N),
                      (sC, sH * DH, sW * DW, sH * SH, sW * SW, sN))
    return xp.ascontiguousarray(view)


@op
def col2im(col: Array, stride: Pair, padding: Pair, size: Pair, dilation: Pair = (1, 1)
           ) -> Array:
    """Adjoint of `im2col`: add every column entry back onto its source pixel.

    Args:
        col: shape (C, KH, KW, OH, OW, N).
        stride: (SH, SW) of the matching im2col.
        padding: (PH, PW) of the matching im2col.
        size: (H, W) of the image to rebuild.
        dilation: (DH, DW) of the matching im2col.

    Returns:
        x, shape (N, C, H, W) (a view of a batch-last buffer); overlapping receptive fields
        add up.

    For each of the ``KH*KW`` kernel offsets (i, j) the (OH, OW, N) block ``col[:, i, j]``
    lands on the strided slice ``x_pad[:, i*DH : i*DH + SH*OH : SH, j*DW : ...]`` of the
    padded, batch-last ``(C, H + 2*PH, W + 2*PW, N)`` image; one ``+=`` per offset (no scatter-add
    needed, since within one offset no two entries collide).
    """
    xp = get_array_module(col)
    C, KH, KW, OH, OW, N = col.shape
    (SH, SW), (PH, PW), (H, W), (DH, DW) = stride, padding, size, dilation
    # Room for every slice, also when (H + 2P - D*(KH - 1) - 1) is not a multiple of S.
    HP = max(H + 2 * PH, SH * (OH - 1) + DH * (KH - 1) + 1)
    WP = max(W + 2 * PW, SW * (OW - 1) + DW * (KW - 1) + 1)
    xpad = xp.zeros((C, HP, WP, N), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            h, w = i * DH, j * DW
            xpad[:, h:h + SH * OH:SH, w:w + SW * OW:SW, :] += col[:, i, j]
    return xpad[:, PH:PH + H, PW:PW + W, :].transpose(3, 0, 1, 2)


@op
def conv2d(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair,
           dilation: Pair = (1, 1), groups: int = 1) -> tuple[Array, Array]:
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        x: (N, C, H, W).
        weight: (OC, C/G, KH, KW).
        bias: (OC,) or None.
        stride: (SH, SW).
        padding: (PH, PW), zeros.
        dilation: (DH, DW).
        groups: G, dividing C and OC.

    Returns:
        (y, col): y of shape (N, OC, OH, OW) and the im2col matrix (C, KH, KW, OH, OW, N)
        that the gradients need.

    Math: with col as G stacked ``(C/G*KH*KW, L*N)`` matrices and weight as G stacked
    ``(OC/G, C/G*KH*KW)`` ones, ``y[g] = weight[g] @ col[g]`` (one GEMM when G = 1).
    """
    OC, Cg, KH, KW = weight.shape
    col = im2col(x, (KH, KW), stride, padding, **non_default(dilation=dilation))
    _, _, _, OH, OW, N = col.shape
    K = Cg * KH * KW
    y = grouped_matmul(weight.reshape(groups, OC // groups, K),
                       col.reshape(groups, K, OH * OW * N)).reshape(OC, OH * OW * N)
    if bias is not None:
        y += bias.reshape(OC, 1)
    return y.reshape(OC, OH, OW, N).transpose(3, 0, 1, 2), col


@op
def conv2d_grad_weight(gy: Array, col: Array, groups: int = 1) -> Array:
    """dL/dW of a convolution, from its im2col matrix.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        col: (C, KH, KW, OH, OW, N), from `conv2d`.
        groups: G of the convolution.

    Returns:
        dweight, (OC, C/G, KH, KW).

    Math, summing over the batch and the output positions:

        dweight[o, c, i, j] = sum over n, oh, ow of gy[n, o, oh, ow] * col[c, i, j, oh, ow, n]

    one product ``gy @ col^T`` of gy as an ``(OC, L*N)`` matrix and col as a ``(K, L*N)`` one
    (``K = C*KH*KW``), both listing the positions batch-last. With groups, one such product
    per group: group g's rows of gy times group g's rows of col.
    """
    OC = gy.shape[1]
    C, KH, KW = col.shape[:3]
    Cg = C // groups
    gw = grouped_matmul(batch_last_matrix(gy).reshape(groups, OC // groups, -1),
                        col.reshape(groups, Cg * KH * KW, -1).transpose(0, 2, 1))   # (G, OC/G, K)
    return gw.reshape(OC, Cg, KH, KW)


@op
def conv2d_grad_input(gy: Array, weight: Array, size: Pair, stride: Pair, padding: Pair,
                      dilation: Pair = (1, 1), groups: int = 1) -> Array:
    """dL/dx of a convolution.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        weight: (OC, C/G, KH, KW).
        size: (H, W) of the input.
        stride: (SH, SW).
        padding: (PH, PW).
        dilation: (DH, DW).
        groups: G.

    Returns:
        dx, (N, C, H, W).

    Math: ``dcol = W^T @ gy`` (weight as an (OC, K) matrix, gy as ``(OC, L*N)``; with groups,
    one such product per group), then ``dx = col2im(dcol)``: every column entry goes back
    onto the pixel im2col read it from.
    """
    OC, Cg, KH, KW = weight.shape
    N, _, OH, OW = gy.shape
    K = Cg * KH * KW
    gcol = grouped_matmul(weight.reshape(groups, OC // groups, K).transpose(0, 2, 1),
                          batch_last_matrix(gy).reshape(groups, OC // groups, -1))  # (G, K, L*N)
    return col2im(gcol.reshape(Cg * groups, KH, KW, OH, OW, N), stride, padding, size,
                  **non_default(dilation=dilation))


@op
def bias_grad(gy: Array) -> Array:
    """dL/db of a convolution: gy (N, OC, OH, OW) summed over n, oh and ow, shape (OC,).

    The bias is broadcast over the batch and every output position in forward, so its
    gradient is the sum of gy over them.
    """
    return gy.sum(axis=(0, 2, 3))


def split_padding(padding: tuple[int, ...], padding_mode: str
                  ) -> tuple[tuple[int, int, int, int] | None, Pair]:
    """How a convolution pads: ``(pads, inner)``, where ``pads`` (left, right, top, bottom) is
    what the op `pad` adds first (None: nothing) and ``inner`` is the zero padding of im2col.

    ``padding`` is (PH, PW), or (left, right, top, bottom) for padding that is not the same on
    both sides (``padding='same'`` with an even kernel: PyTorch adds the extra on the right
    and bottom). Zero padding, the same on both sides, is left to im2col.
    """
    if len(padding) == 2:
        (PH, PW) = padding
        padding = (PW, PW, PH, PH)
    left, right, top, bottom = padding
    if (padding_mode == "zeros" and left == right and top == bottom) or not any(padding):
        return None, (top, left)
    return (left, right, top, bottom), (0, 0)


@op
def conv2d_forward(x: Array, weight: Array, bias: Array | None, stride: Pair,
                   padding: tuple[int, ...], dilation: Pair = (1, 1), groups: int = 1,
                   padding_mode: str = "zeros") -> tuple[Array, Any]:
    """The forward pass of `nn.Conv2d`: `conv2d`, returning ``(y, saved)``, where ``saved`` is
    what `conv2d_backward` needs: the im2col matrix here. (Large float32 layers on the CPU
    take `scratchnet.blocked` instead, which keeps the padded input, a `blocked.PaddedInput`,
    in its place.)

    Args:
        x: (N, C, H, W), as for `conv2d`.
        weight: (OC, C/G, KH, KW), as for `conv2d`.
        bias: (OC,) or None.
        stride: (SH, SW).
        padding: (PH, PW), or (left, right, top, bottom) (`split_padding`).
        dilation: (DH, DW), as for `conv2d`.
        groups: G, as for `conv2d`.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'; anything but zeros (and
            zero padding that differs between the sides) runs the op `pad` before `conv2d`.
    """
    pads, inner = split_padding(padding, padding_mode)
    if pads is not None:
        x = pad(x, pads, padding_mode)
    return conv2d(x, weight, bias, stride, inner, **non_default(dilation=dilation, groups=groups))


@op
def conv2d_backward(gy: Array, col: Any, weight: Array, size: Pair, stride: Pair,
                    padding: tuple[int, ...], dilation: Pair = (1, 1), groups: int = 1,
                    padding_mode: str = "zeros") -> tuple[Array, Array, Array]:
    """The backward pass of `nn.Conv2d`: all three gradients of `conv2d_forward`.

    Args:
        gy: (N, OC, OH, OW), the upstream gradient.
        col: what `conv2d_forward` saved (the im2col matrix).
        weight: (OC, C/G, KH, KW).
        size: (H, W) of the input.
        stride: as given to `conv2d_forward`.
        padding: as given to `conv2d_forward`.
        dilation: as given to `conv2d_forward`.
        groups: as given to `conv2d_forward`.
        padding_mode: as given to `conv2d_forward`.

    Returns:
        (dx, dweight, dbias): `conv2d_grad_input`, `conv2d_grad_weight` and `bias_grad`,
        shapes (N, C, H, W), (OC, C/G, KH, KW) and (OC,). Where forward ran `pad`, dx is
        `pad_backward` of the padded input's gradient.
    """
    gy = batch_last(gy)                          # read three times below: lay it out once
    dbias, dweight = bias_grad(gy), conv2d_grad_weight(gy, col, **non_default(groups=groups))
    pads, inner = split_padding(padding, padding_mode)
    options = non_default(dilation=dilation, groups=groups)
    if pads is None:
        return conv2d_grad_input(gy, weight, size, stride, inner, **options), dweight, dbias
    left, right, top, bottom = pads
    padded = (size[0] + top + bottom, size[1] + left + right)
    dxpad = conv2d_grad_input(gy, weight, padded, stride, inner, **options)
    return pad_backward(dxpad, pads, padding_mode), dweight, dbias


@op
def conv_transpose2d(x: Array, weight: Array, bias: Array | None, stride: Pair,
                     padding: Pair, output_padding: Pair = (0, 0), groups: int = 1,
                     dilation: Pair = (1, 1)) -> Array:
    """Transposed convolution: the adjoint of `conv2d` with respect to its input.

    Args:
        x: (N, C_in, H, W).
        weight: (C_in, C_out/G, KH, KW) (PyTorch's layout).
        bias: (C_out,) or None.
        stride: (SH, SW).
        padding: (PH, PW).
        output_padding: extra rows and columns on the bottom and right.
        groups: G, dividing C_in and C_out.
        dilation: (DH, DW).

    Returns:
        (N, C_out, OH, OW) with ``OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + output_padding[0] + 1``.

    Math: ``y = conv2d_grad_input(x, weight, (OH, OW), stride, padding, dilation, groups) +
    bias``: weight read as the (C_in, C_out/G, KH, KW) kernel of a convolution from C_out to
    C_in channels.
    """
    _, C_in, H, W = x.shape
    _, Cg_out, KH, KW = weight.shape
    OH = conv_transpose_output_size(H, KH, stride[0], padding[0], output_padding[0], dilation[0])
    OW = conv_transpose_output_size(W, KW, stride[1], padding[1], output_padding[1], dilation[1])
    y = conv2d_grad_input(x, weight, (OH, OW), stride, padding,
                          **non_default(dilation=dilation, groups=groups))
    if bias is not None:
        y += bias.reshape(1, Cg_out * groups, 1, 1)  # y is a view of a fresh buffer: in place
    return y


@op
def conv_transpose2d_backward(gy: Array, x: Array, weight: Array, stride: Pair,
                              padding: Pair, groups: int = 1, dilation: Pair = (1, 1)
                              ) -> tuple[Array, Array, Array]:
    """Gradients of `conv_transpose2d`.

    Args:
        gy: (N, C_out, OH, OW), the upstream gradient.
        x: (N, C_in, H, W), the layer's input (what it keeps).
        weight: (C_in, C_out/G, KH, KW).
        stride: (SH, SW).
        padding: (PH, PW). (output_padding only added rows and columns of y, whose
            gradients are in gy already.)
        groups: G.
        dilation: (DH, DW).

    Returns:
        (dx, dweight, dbias): shapes (N, C_in, H, W), (C_in, C_out/G, KH, KW), (C_out,).

    Math: forward was ``y = A^T x`` with A the matrix of a convolution, so backward is that
    convolution itself:

        dx, gcol = conv2d(gy, weight, no bias, stride, padding, dilation, groups)
        dweight  = conv2d_grad_weight(x, gcol, groups)               # x @ im2col(gy)^T
        dbias    = gy summed over n, oh and ow

    (An output_padding of at least the stride, allowed below the dilation, gives that
    convolution more than H rows: the rows past H belong to no input pixel and are dropped.)
    """
    options = non_default(dilation=dilation, groups=groups)
    dx, gcol = conv2d(gy, weight, None, stride, padding, **options)
    H, W = x.shape[2:]
    if dx.shape[2:] != (H, W):
        dx, gcol = dx[:, :, :H, :W], gcol[:, :, :, :H, :W]
    return dx, conv2d_grad_weight(x, gcol, **non_default(groups=groups)), bias_grad(gy)
