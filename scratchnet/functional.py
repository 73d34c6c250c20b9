"""Pure array functions: convolution via im2col + one matmul, and its adjoint.

Notation (shape letters used throughout):
    N       batch size                    C       input channels
    H, W    input height and width        OC      output channels
    KH, KW  kernel height and width       SH, SW  strides
    PH, PW  zero padding                  OH, OW  output height and width
    K       C*KH*KW (one flattened receptive field)
    L       OH*OW   (number of output positions)

A convolution is a matrix product once every receptive field is laid out as a column:

    col = im2col(x)                 # (C, KH, KW, OH, OW, N), col[c,i,j,oh,ow,n] =
                                    #   x_pad[n, c, oh*SH + i, ow*SW + j]
    y = W.reshape(OC, K) @ col.reshape(K, L*N)          # one GEMM for the whole batch

im2col is a *linear* map, and its adjoint col2im sums every column entry back onto the pixel
it was copied from. Differentiating y = W @ col gives the whole backward pass:

    dL/dW   = gy @ col^T                                  (conv2d_grad_weight)
    dL/dcol = W^T @ gy,  then dL/dx = col2im(dL/dcol)     (conv2d_grad_input)

A transposed convolution is defined as that adjoint: its forward pass *is* conv2d_grad_input,
and its backward pass is an ordinary conv2d (which is why both layers share these functions).

Why the batch axis comes last in ``col`` (speed, not math): every copy in im2col and every
``+=`` in col2im then runs over rows of N contiguous numbers instead of rows of OW (7 or 14)
numbers, and each product above is a single GEMM with no transposed copies. Outputs are
returned as (N, C, H, W) *views* of batch-last buffers, so the next layer's im2col finds its
input already batch-last and copies it without reordering. Shapes and results are exactly
those of the plain (N, C, ...) formulation; only the memory order differs.

The functions take and return arrays of any backend; they never call NumPy directly. On CuPy,
col2im and sigmoid run as one fused kernel each (see ``backend.ElementwiseOp``); the array code
beside each kernel is the reference the tests hold it to.
"""
from __future__ import annotations

from typing import Any

from .backend import ElementwiseOp, RawOp, as_strided, get_array_module

Array = Any
Pair = tuple[int, int]

__all__ = ["conv_output_size", "conv_transpose_output_size", "im2col", "col2im", "conv2d",
           "conv2d_grad_input", "conv2d_grad_weight", "conv_transpose2d", "sigmoid",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "batch_norm_forward", "batch_norm_backward", "batch_norm_inference", "channel_sums",
           "bias_grad", "mean_square", "batch_last", "batch_last_apply", "cat_channels"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: floor((size + 2P - K) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int = 0) -> int:
    """Output length of a transposed convolution: (size - 1)*S - 2P + K + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def _batch_last_padded(x: Array, padding: Pair, fill: float = 0.0) -> Array:
    """(N, C, H, W) -> padded (with ``fill``), contiguous (C, H + 2*PH, W + 2*PW, N)."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    PH, PW = padding
    xt = x.transpose(1, 2, 3, 0)
    if not (PH or PW):
        return xp.ascontiguousarray(xt)       # no copy if x is batch-last in memory already
    xpad = xp.full((C, H + 2 * PH, W + 2 * PW, N), fill, dtype=x.dtype)
    xpad[:, PH:PH + H, PW:PW + W, :] = xt
    return xpad


def im2col(x: Array, kernel: Pair, stride: Pair, padding: Pair, fill: float = 0.0) -> Array:
    """Lay every receptive field of ``x`` out as a column.

    Args:
        x: input, shape (N, C, H, W).
        kernel, stride, padding: (KH, KW), (SH, SW), (PH, PW).
        fill: the value of padded pixels (0 for convolutions, -inf for max pooling).

    Returns:
        col, shape (C, KH, KW, OH, OW, N), contiguous, where
        col[c, i, j, oh, ow, n] = x_padded[n, c, oh*SH + i, ow*SW + j].

    The padded, batch-last input is copied once; the six-axis array is first a strided
    *view* of it (one step along ``i`` moves one row, along ``oh`` moves SH rows), then one
    contiguous copy so the GEMM can read it as a (K, L*N) matrix. On CuPy one gather kernel
    (:data:`_IM2COL_GATHER`) writes col directly, zeros for the padding included.
    """
    xp = get_array_module(x)
    (KH, KW), (SH, SW) = kernel, stride
    gather = _IM2COL_GATHER.kernel(x)
    if gather is not None:
        N, C, H, W = x.shape
        (PH, PW) = padding
        OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
        col = xp.empty((C, KH, KW, OH, OW, N), dtype=x.dtype)
        gather(xp.ascontiguousarray(x.transpose(1, 2, 3, 0)), H, W, N, OH, OW, KH, KW,
               SH, SW, PH, PW, fill, col)
        return col
    xpad = _batch_last_padded(x, padding, fill)
    C, HP, WP, N = xpad.shape
    OH, OW = (HP - KH) // SH + 1, (WP - KW) // SW + 1
    sC, sH, sW, sN = xpad.strides
    view = as_strided(xpad, (C, KH, KW, OH, OW, N), (sC, sH, sW, sH * SH, sW * SW, sN))
    return xp.ascontiguousarray(view)


# One thread per entry col[c, i, j, oh, ow, n]: it reads pixel (oh*SH + i - PH, ow*SW + j - PW)
# of the batch-last (C, H, W, N) input, or writes ``fill`` where that pixel is padding.
_IM2COL_GATHER = ElementwiseOp(
    "raw T x, int32 H, int32 W, int32 N, int32 OH, int32 OW, int32 KH, int32 KW, "
    "int32 SH, int32 SW, int32 PH, int32 PW, T fill",
    "T col",
    """
    long long r = i;
    const int n = r % N; r /= N;
    const int ow = r % OW; r /= OW;
    const int oh = r % OH; r /= OH;
    const int kj = r % KW; r /= KW;
    const int ki = r % KH;
    const long long c = r / KH;
    const int h = oh * SH + ki - PH, w = ow * SW + kj - PW;
    col = (h >= 0 && h < H && w >= 0 && w < W) ? x[((c * H + h) * W + w) * N + n] : fill;
    """,
    "scratchnet_im2col_gather")


def col2im(col: Array, stride: Pair, padding: Pair, size: Pair) -> Array:
    """Adjoint of :func:`im2col`: add every column entry back onto its source pixel.

    Args:
        col: shape (C, KH, KW, OH, OW, N).
        stride, padding: (SH, SW), (PH, PW) used by the matching im2col.
        size: (H, W) of the image to rebuild.

    Returns:
        x, shape (N, C, H, W) (a view of a batch-last buffer); overlapping receptive fields
        add up.

    For each of the KH*KW kernel offsets (i, j) the (OH, OW, N) block col[:, i, j] lands on
    the strided slice x_pad[:, i : i + SH*OH : SH, j : j + SW*OW : SW]; one ``+=`` per
    offset (no scatter-add needed, since within one offset no two entries collide). On CuPy
    the same sum is one *gather* kernel instead (:data:`_COL2IM_GATHER`): KH*KW launches
    become one.
    """
    xp = get_array_module(col)
    C, KH, KW, OH, OW, N = col.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    gather = _COL2IM_GATHER.kernel(col)
    if gather is not None:
        x = xp.empty((C, H, W, N), dtype=col.dtype)
        gather(xp.ascontiguousarray(col), H, W, N, OH, OW, KH, KW, SH, SW, PH, PW, x)
        return x.transpose(3, 0, 1, 2)
    # Room for every slice, also when (H + 2P - KH) is not a multiple of S.
    HP, WP = max(H + 2 * PH, SH * (OH - 1) + KH), max(W + 2 * PW, SW * (OW - 1) + KW)
    xpad = xp.zeros((C, HP, WP, N), dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            xpad[:, i:i + SH * OH:SH, j:j + SW * OW:SW, :] += col[:, i, j]
    return xpad[:, PH:PH + H, PW:PW + W, :].transpose(3, 0, 1, 2)


# col2im as a gather: one thread per pixel x[c, h, w, n] of the (C, H, W, N) result sums the
# column entries that were copied from it, i.e. every offset (i, j) with h + PH - i = oh*SH
# and w + PW - j = ow*SW for an output position (oh, ow) inside the (OH, OW) grid.
_COL2IM_GATHER = ElementwiseOp(
    "raw T col, int32 H, int32 W, int32 N, int32 OH, int32 OW, int32 KH, int32 KW, "
    "int32 SH, int32 SW, int32 PH, int32 PW",
    "T x",
    """
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
    """,
    "scratchnet_col2im_gather")


def _batch_last_matrix(a: Array) -> Array:
    """(N, C, H, W) -> (C, H*W*N): a copy unless ``a`` is batch-last in memory already."""
    N, C, H, W = a.shape
    return a.transpose(1, 2, 3, 0).reshape(C, H * W * N)


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
    _, _, _, OH, OW, N = col.shape
    y = weight.reshape(OC, C * KH * KW) @ col.reshape(C * KH * KW, OH * OW * N)
    if bias is not None:
        y += bias.reshape(OC, 1)
    return y.reshape(OC, OH, OW, N).transpose(3, 0, 1, 2), col


def conv2d_grad_weight(gy: Array, col: Array) -> Array:
    """dL/dW of a convolution: gy @ col^T, summing over batch and output positions.

    Args:
        gy: (N, OC, OH, OW) upstream gradient.  col: (C, KH, KW, OH, OW, N).

    Returns:
        (OC, C, KH, KW).
    """
    OC = gy.shape[1]
    C, KH, KW = col.shape[:3]
    gw = _batch_last_matrix(gy) @ col.reshape(C * KH * KW, -1).T          # (OC, K)
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
    gcol = weight.reshape(OC, C * KH * KW).T @ _batch_last_matrix(gy)      # (K, L*N)
    return col2im(gcol.reshape(C, KH, KW, OH, OW, N), stride, padding, size)


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
        y += bias.reshape(1, C_out, 1, 1)            # y is a view of a fresh buffer: in place
    return y


def sigmoid(x: Array) -> Array:
    """Logistic function that never overflows: uses exp(-|x|) <= 1 on both branches."""
    fused = _SIGMOID.kernel(x)
    if fused is not None:
        return fused(x)
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


_SIGMOID = ElementwiseOp("T x", "T y", "T e = exp(-fabs(x)); y = x >= 0 ? 1 / (1 + e) : e / (1 + e)",
                         "scratchnet_sigmoid")


# --- pooling ---------------------------------------------------------------------------
# Pooling reuses the convolution's im2col/col2im pair: a window is a receptive field.
#
#   max:  y = max over the KH*KW entries of each column;  dx = col2im(gy placed at the argmax)
#   avg:  y = mean of each column (zero padding counts);   dx = col2im(gy / (KH*KW) everywhere)

def max_pool2d(x: Array, kernel: Pair, stride: Pair, padding: Pair, with_argmax: bool = True
               ) -> tuple[Array, Array | None]:
    """Max pooling (padding with -inf, as in PyTorch).

    Args:
        x: (N, C, H, W).
        with_argmax: False when no backward will follow (inference): argmax is then None and
            the NumPy path skips its bookkeeping.

    Returns:
        (y, argmax): y of shape (N, C, OH, OW) and, for backward, the index (0 .. KH*KW-1,
        row-major in the window; the first one on ties) of each window's maximum, shape
        (C, OH, OW, N).
    """
    xp = get_array_module(x)
    fused = _MAX_POOL_GATHER.kernel(x)
    if fused is not None:                   # one thread per output: the loop below, in place
        N, C, H, W = x.shape
        (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
        OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
        y = xp.empty((C, OH, OW, N), dtype=x.dtype)
        argmax = xp.empty((C, OH, OW, N), dtype="int32")
        fused(xp.ascontiguousarray(x.transpose(1, 2, 3, 0)), H, W, N, OH, OW, KH, KW, SH, SW,
              PH, PW, -float("inf"), y, argmax)
        return y.transpose(3, 0, 1, 2), argmax
    col = im2col(x, kernel, stride, padding, fill=-float("inf"))
    C, KH, KW, OH, OW, N = col.shape
    col = col.reshape(C, KH * KW, OH, OW, N)
    # A running maximum over the KH*KW window entries: each pass is element-wise over
    # contiguous (C, OH, OW, N) slabs, several times faster on NumPy than argmax(axis=1)
    # (measured: 2x2 pooling of (64, 16, 28, 28) float32 on 2 cores, 9.4 -> 3.1 ms).
    # ">" keeps the first maximum on ties; a NaN wins, as in PyTorch.
    y, argmax = col[:, 0], xp.zeros((C, OH, OW, N), dtype="int32") if with_argmax else None
    for k in range(1, KH * KW):
        entry = col[:, k]
        if with_argmax:
            better = (entry > y) | (entry != entry)
            argmax += better * (k - argmax)      # = where(better, k, argmax), but faster
        y = xp.maximum(y, entry)
    return y.transpose(3, 0, 1, 2), argmax


def max_pool2d_backward(gy: Array, argmax: Array, kernel: Pair, stride: Pair, padding: Pair,
                        size: Pair) -> Array:
    """dL/dx of max pooling: each gy goes to its window's maximum; overlapping windows add.

    Args:
        gy: (N, C, OH, OW).  argmax: from :func:`max_pool2d`.  size: (H, W) of the input.
    """
    xp = get_array_module(gy)
    (KH, KW), (C, OH, OW, N) = kernel, argmax.shape
    fused = _MAX_POOL_GRAD_GATHER.kernel(gy)
    if fused is not None:
        (SH, SW), (PH, PW), (H, W) = stride, padding, size
        dx = xp.empty((C, H, W, N), dtype=gy.dtype)
        fused(xp.ascontiguousarray(gy.transpose(1, 2, 3, 0)), argmax, H, W, N, OH, OW, KH, KW,
              SH, SW, PH, PW, dx)
        return dx.transpose(3, 0, 1, 2)
    window = xp.arange(KH * KW).reshape(1, KH * KW, 1, 1, 1)
    gcol = (window == argmax[:, None]) * gy.transpose(1, 2, 3, 0)[:, None]     # one-hot * gy
    return col2im(gcol.reshape(C, KH, KW, OH, OW, N), stride, padding, size)


# max_pool2d on CuPy: one thread per output y[c, oh, ow, n] runs the window loop above over the
# batch-last (C, H, W, N) input (padding reads as -inf; ">" keeps the first maximum, a NaN wins).
_MAX_POOL_GATHER = ElementwiseOp(
    "raw T x, int32 H, int32 W, int32 N, int32 OH, int32 OW, int32 KH, int32 KW, "
    "int32 SH, int32 SW, int32 PH, int32 PW, T fill",
    "T y, int32 argmax",
    """
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
    """,
    "scratchnet_max_pool_gather")

# max_pool2d_backward on CuPy: one thread per input pixel sums the gy of every window whose
# maximum it was (the col2im gather, keeping only the entries argmax points at).
_MAX_POOL_GRAD_GATHER = ElementwiseOp(
    "raw T gy, raw int32 argmax, int32 H, int32 W, int32 N, int32 OH, int32 OW, int32 KH, "
    "int32 KW, int32 SH, int32 SW, int32 PH, int32 PW",
    "T dx",
    """
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
    """,
    "scratchnet_max_pool_grad_gather")


def avg_pool2d(x: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    """Average pooling over (N, C, H, W); padded zeros count (PyTorch's count_include_pad)."""
    col = im2col(x, kernel, stride, padding)
    C, KH, KW, OH, OW, N = col.shape
    y = col.reshape(C, KH * KW, OH, OW, N).mean(axis=1)
    return y.transpose(3, 0, 1, 2)


def avg_pool2d_backward(gy: Array, kernel: Pair, stride: Pair, padding: Pair, size: Pair) -> Array:
    """dL/dx of average pooling: gy / (KH*KW) to every pixel of its window."""
    xp = get_array_module(gy)
    (KH, KW), (N, C, OH, OW) = kernel, gy.shape
    g = gy.transpose(1, 2, 3, 0) * (1.0 / (KH * KW))                           # (C, OH, OW, N)
    gcol = xp.broadcast_to(g[:, None, None], (C, KH, KW, OH, OW, N))
    return col2im(gcol, stride, padding, size)


# --- batch normalisation -------------------------------------------------------------------
# Per channel c, over its M = N*H*W values (a row of the batch-last (C, M) matrix):
#
#   xhat = (x - mean) * inv_std,   inv_std = 1 / sqrt(var + eps),   y = weight * xhat + bias
#
# Backward through the batch statistics (mean and var depend on every x of the channel):
#
#   dbias = sum(gy),   dweight = sum(gy * xhat),
#   dx = weight * inv_std * (gy - dbias / M - xhat * dweight / M)

def batch_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float,
                       mean: Array | None = None, var: Array | None = None
                       ) -> tuple[Array, Array, Array, Array, Array]:
    """Batch normalisation of (N, C, H, W).

    Args:
        weight, bias: (C,) or None (no affine transform).
        mean, var: (C,) statistics to use (eval mode: the running ones); None computes the
            batch's own mean and *biased* variance (training mode).

    Returns:
        (y, xhat, inv_std, mean, var): y (N, C, H, W) as a view of a batch-last buffer;
        xhat as a (C, M) matrix and inv_std (C, 1) for backward; the statistics used, (C,).

    On CuPy this is two kernels: :data:`_BN_STATS` (one block per channel: mean, variance and
    inv_std in one pass over x) and :data:`_BN_NORMALIZE` (xhat and y element-wise).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    xm = _batch_last_matrix(x)                                        # (C, M)
    stats_kernel, normalize = _BN_STATS.kernel(x), _BN_NORMALIZE.kernel(x)
    if stats_kernel is not None and normalize is not None:
        xm = xp.ascontiguousarray(xm)
        M = xm.shape[1]
        stats = xp.empty((3, C), dtype=x.dtype)                      # mean, var, inv_std
        if mean is None:
            stats_kernel(C, 256, xm, M, C, float(eps), stats)
        else:
            stats[0], stats[1] = mean, var
            stats[2] = 1 / xp.sqrt(var + eps)
        xhat, y = xp.empty_like(xm), xp.empty_like(xm)
        affine = weight is not None
        normalize(xm, stats, weight if affine else stats, bias if affine else stats, M, C,
                  affine, xhat, y)
        return (y.reshape(C, H, W, N).transpose(3, 0, 1, 2), xhat, stats[2].reshape(C, 1),
                stats[0], stats[1])
    if mean is None:
        mean = xm.mean(axis=1)
        xc = xm - mean[:, None]
        var = xp.einsum("cm,cm->c", xc, xc) / xc.shape[1]        # mean of xc**2, no temporary
    else:
        xc = xm - mean[:, None]
    inv_std = 1 / xp.sqrt(var[:, None] + eps)
    xhat = xc
    xhat *= inv_std                                                # in place: xc is not needed
    if weight is None:
        return xhat.reshape(C, H, W, N).transpose(3, 0, 1, 2), xhat, inv_std, mean, var
    y = xhat * weight[:, None]
    y += bias[:, None]
    return y.reshape(C, H, W, N).transpose(3, 0, 1, 2), xhat, inv_std, mean, var


# One block per channel c (a row of the (C, M) matrix): mean and biased variance in one pass,
# summing in double the values shifted by the row's first one (so that a mean far from 0 costs
# no precision), then inv_std = 1 / sqrt(var + eps). stats is (3, C): mean, var, inv_std.
_BN_STATS = RawOp(r"""
extern "C" __global__ void scratchnet_bn_stats(const T* x, long long M, long long C,
                                               double eps, T* stats) {
    const T* row = x + blockIdx.x * M;
    const double shift = (double)row[0];
    double s = 0.0, q = 0.0;
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        const double d = (double)row[j] - shift;
        s += d;
        q += d * d;
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        const double mean = s / M, var = fmax(q / M - mean * mean, 0.0);
        stats[blockIdx.x] = (T)(mean + shift);
        stats[C + blockIdx.x] = (T)var;
        stats[2 * C + blockIdx.x] = (T)(1.0 / sqrt((double)(T)var + eps));
    }
}
""", "scratchnet_bn_stats")

# xhat = (x - mean) * inv_std and y = weight * xhat + bias for every entry of the (C, M) matrix.
_BN_NORMALIZE = ElementwiseOp(
    "T x, raw T stats, raw T weight, raw T bias, int64 M, int64 C, bool affine",
    "T xhat, T y",
    """
    const long long c = i / M;
    xhat = (x - stats[c]) * stats[2 * C + c];
    y = affine ? xhat * weight[c] + bias[c] : xhat;
    """,
    "scratchnet_bn_normalize")


def batch_norm_inference(x: Array, weight: Array | None, bias: Array | None, eps: float,
                         mean: Array, var: Array) -> Array:
    """Batch normalisation with fixed statistics when no backward will follow (eval mode
    under ``no_grad``): one scale and one shift per channel,

        y = x * s + t,   s = weight / sqrt(var + eps),   t = bias - mean * s,

    two passes over x where :func:`batch_norm_forward` makes four and keeps xhat.
    Returns y (N, C, H, W) as a view of a batch-last buffer.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    scale = 1 / xp.sqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    y = _batch_last_matrix(x) * scale[:, None]
    y += shift[:, None]
    return y.reshape(C, H, W, N).transpose(3, 0, 1, 2)


def batch_norm_backward(gy: Array, xhat: Array, inv_std: Array, weight: Array | None,
                        batch_stats: bool = True,
                        add_to: tuple[Array, Array] | None = None) -> tuple[Array, Array, Array]:
    """Gradients of :func:`batch_norm_forward`.

    Args:
        gy: (N, C, H, W).  xhat, inv_std: from the forward pass.
        batch_stats: whether forward used the batch's statistics (training mode): then the
            gradient also flows through the mean and variance; with fixed (running)
            statistics dx is just gy * weight * inv_std.
        add_to: optional (grad_weight, grad_bias) into which dweight and dbias are also added.

    Returns:
        (dx (N, C, H, W), dweight (C,), dbias (C,)).

    On CuPy: the two sums in one kernel (:func:`channel_sums`), dx in one element-wise kernel.
    """
    xp = get_array_module(gy)
    N, C, H, W = gy.shape
    gm = _batch_last_matrix(gy)                                       # (C, M)
    M = gm.shape[1]
    grad_input = _BN_GRAD_INPUT.kernel(gy)
    if grad_input is not None:
        gm = xp.ascontiguousarray(gm)
        sums = channel_sums(gm, xhat, add_to=add_to[::-1] if add_to else None)  # dbias, dweight
        dx = xp.empty_like(gm)
        affine = weight is not None
        grad_input(gm, xhat, sums, inv_std, weight if affine else inv_std, M, C, affine,
                   batch_stats, dx)
        return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), sums[1], sums[0]
    dbias = gm.sum(axis=1)
    dweight = (gm * xhat).sum(axis=1)   # pairwise sum: its terms cancel, so einsum's running
                                        # float32 sum was measurably less accurate here
    scale = inv_std if weight is None else weight[:, None] * inv_std
    if batch_stats:
        dx = scale * (gm - dbias[:, None] / M - xhat * (dweight[:, None] / M))
    else:
        dx = gm * scale
    if add_to is not None:
        grad_weight, grad_bias = add_to
        grad_weight += dweight
        grad_bias += dbias
    return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), dweight, dbias


# dx of batch norm for every entry of the (C, M) matrix, given sums = (dbias, dweight).
_BN_GRAD_INPUT = ElementwiseOp(
    "T gy, T xhat, raw T sums, raw T inv_std, raw T weight, int64 M, int64 C, bool affine, "
    "bool batch_stats",
    "T dx",
    """
    const long long c = i / M;
    const T scale = affine ? weight[c] * inv_std[c] : inv_std[c];
    dx = batch_stats ? scale * (gy - sums[c] / (T)M - xhat * (sums[C + c] / (T)M)) : gy * scale;
    """,
    "scratchnet_bn_grad_input")


def channel_sums(a: Array, b: Array | None = None, scale: float = 1.0,
                 add_to: tuple[Array | None, Array | None] | None = None) -> Array:
    """Sums over each row of a (C, M) matrix: a channel's values over batch and pixels.

    Args:
        a: (C, M).  b: (C, M) or None.  scale: multiplies both sums.
        add_to: optional pair of (C,) arrays (either may be None) into which the two rows of
            the result are also *added*, in place: how a layer accumulates its parameters'
            gradients without another pass.

    Returns:
        (2, C): row 0 the sums of ``a``, row 1 the sums of ``a * b`` (zeros without ``b``).
        A bias gradient is ``channel_sums(gy_matrix)[0]``; batch norm's dbias and dweight
        are ``channel_sums(gy_matrix, xhat)``. On CuPy one kernel (:data:`_CHANNEL_SUMS`,
        one block per row, summing in double) instead of CuPy's generic reductions.
    """
    xp = get_array_module(a)
    C, M = a.shape
    acc_s, acc_q = add_to if add_to is not None else (None, None)
    fused = _CHANNEL_SUMS.kernel(a)
    if fused is not None:
        out = xp.empty((2, C), dtype=a.dtype)
        fused(C, 256, xp.ascontiguousarray(a), a if b is None else xp.ascontiguousarray(b),
              b is not None, M, C, float(scale), out, out if acc_s is None else acc_s,
              out if acc_q is None else acc_q, acc_s is not None, acc_q is not None)
        return out
    out = xp.stack([a.sum(axis=1), (a * b).sum(axis=1) if b is not None else xp.zeros_like(a[:, 0])])
    if scale != 1:
        out *= scale
    for acc, row in ((acc_s, out[0]), (acc_q, out[1])):
        if acc is not None:
            acc += row
    return out


_CHANNEL_SUMS = RawOp(r"""
extern "C" __global__ void scratchnet_channel_sums(
        const T* a, const T* b, bool has_b, long long M, long long C, double scale, T* out,
        T* acc_s, T* acc_q, bool has_acc_s, bool has_acc_q) {
    const T* ra = a + blockIdx.x * M;
    const T* rb = b + blockIdx.x * M;
    double s = 0.0, q = 0.0;
    for (long long j = threadIdx.x; j < M; j += blockDim.x) {
        const double v = (double)ra[j];
        s += v;
        if (has_b) q += v * (double)rb[j];
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        const T vs = (T)(s * scale), vq = (T)(q * scale);
        out[blockIdx.x] = vs;
        out[C + blockIdx.x] = vq;
        if (has_acc_s) acc_s[blockIdx.x] += vs;
        if (has_acc_q) acc_q[blockIdx.x] += vq;
    }
}
""", "scratchnet_channel_sums")


def mean_square(a: Array) -> Array:
    """The mean of ``a**2`` over all entries, as a 0-d array (an MSE loss of ``a = pred -
    target``). On CuPy one kernel (:func:`channel_sums` of ``a`` as one row) instead of a
    product and CuPy's generic reduction."""
    xp = get_array_module(a)
    if a.ndim and _CHANNEL_SUMS.kernel(a) is not None:
        flat = a.reshape(1, -1)
        return channel_sums(flat, flat, scale=1.0 / a.size)[1, 0]
    return xp.asarray(xp.mean(a * a))


def batch_last_apply(fn: Any, *arrays: Array) -> Any:
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


def bias_grad(gy: Array, add_to: Array | None = None) -> Array:
    """dL/db of a convolution: gy (N, OC, OH, OW) summed over n, oh and ow, shape (OC,);
    also added into ``add_to`` (a bias's ``grad``) when given."""
    if _CHANNEL_SUMS.kernel(gy) is not None:
        return channel_sums(_batch_last_matrix(gy), add_to=(add_to, None))[0]
    g = gy.sum(axis=(0, 2, 3))
    if add_to is not None:
        add_to += g
    return g


def batch_last(a: Array) -> Array:
    """(N, C, H, W) -> the same values as an (N, C, H, W) view of a batch-last (C, H, W, N)
    buffer; no copy when ``a`` is one already. A backward that reads ``gy`` several times as a
    (C, H*W*N) matrix calls this once instead of copying it each time."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


# --- concatenation -------------------------------------------------------------------------
def cat_channels(a: Array, b: Array) -> Array:
    """Concatenate (N, Ca, H, W) and (N, Cb, H, W) along channels into (N, Ca + Cb, H, W).

    Its backward is a split: dL/da = g[:, :Ca], dL/db = g[:, Ca:]. The result is built
    batch-last in memory (see the top of this module), so the convolution that reads it copies
    it without reordering.
    """
    xp = get_array_module(a)
    y = xp.concatenate([a.transpose(1, 2, 3, 0), b.transpose(1, 2, 3, 0)], axis=0)
    return y.transpose(3, 0, 1, 2)
