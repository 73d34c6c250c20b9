"""Faster bodies of batch normalisation's ops and of `channel_sums` on CuPy
(`scratchnet.functional.norm`): per-channel statistics and sums in one kernel each (one block
per channel, summing in double), normalisation and dx element-wise."""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..layout import batch_last_matrix
from ..ops import register_faster
from . import ElementwiseOp, RawOp, on_gpu

Array = Any

_CHANNEL_SUMS = RawOp(r"""
extern "C" __global__ void scratchnet_channel_sums(
        const T* a, const T* b, bool has_b, long long M, long long C, double scale, T* out) {
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
        out[blockIdx.x] = (T)(s * scale);
        out[C + blockIdx.x] = (T)(q * scale);
    }
}
""", "scratchnet_channel_sums")


@register_faster("channel_sums", on_gpu)
def channel_sums(a: Array, b: Array | None = None, scale: float = 1.0) -> Array:
    """One block per row of the (C, M) matrix, instead of CuPy's generic reductions."""
    xp = get_array_module(a)
    C, M = a.shape
    out = xp.empty((2, C), dtype=a.dtype)
    _CHANNEL_SUMS.kernel(a)(C, 256, xp.ascontiguousarray(a),
                            a if b is None else xp.ascontiguousarray(b), b is not None, M, C,
                            float(scale), out)
    return out


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


def _nchw(m: Array, shape: tuple[int, ...]) -> Array:
    N, C, H, W = shape
    return m.reshape(C, H, W, N).transpose(3, 0, 1, 2)


@register_faster("batch_norm_forward", on_gpu)
def batch_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float,
                       mean: Array | None = None, var: Array | None = None
                       ) -> tuple[Array, Array, Array, Array, Array]:
    """Two kernels: the statistics (one pass over x), then xhat and y element-wise."""
    xp = get_array_module(x)
    C = x.shape[1]
    xm = xp.ascontiguousarray(batch_last_matrix(x))
    M = xm.shape[1]
    stats = xp.empty((3, C), dtype=x.dtype)                      # mean, var, inv_std
    if mean is None:
        _BN_STATS.kernel(x)(C, 256, xm, M, C, float(eps), stats)
    else:
        stats[0], stats[1] = mean, var
        stats[2] = 1 / xp.sqrt(var + eps)
    xhat, y = xp.empty_like(xm), xp.empty_like(xm)
    affine = weight is not None
    _BN_NORMALIZE(xm, stats, weight if affine else stats, bias if affine else stats, M, C,
                  affine, xhat, y)
    return _nchw(y, x.shape), _nchw(xhat, x.shape), stats[2], stats[0], stats[1]


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


@register_faster("batch_norm_backward", on_gpu)
def batch_norm_backward(gy: Array, xhat: Array, inv_std: Array, weight: Array | None,
                        batch_stats: bool = True) -> tuple[Array, Array, Array]:
    """The two sums in one kernel (`channel_sums`), dx in one element-wise kernel."""
    xp = get_array_module(gy)
    C = gy.shape[1]
    gm = xp.ascontiguousarray(batch_last_matrix(gy))
    xm = xp.ascontiguousarray(batch_last_matrix(xhat))
    M = gm.shape[1]
    sums = channel_sums(gm, xm)                                   # rows: dbias, dweight
    dx = xp.empty_like(gm)
    affine = weight is not None
    _BN_GRAD_INPUT(gm, xm, sums, inv_std, weight if affine else inv_std, M, C, affine,
                   batch_stats, dx)
    return _nchw(dx, gy.shape), sums[1], sums[0]


_RUNNING_STATS = ElementwiseOp(
    "T mean, T var, T keep, T m, T var_scale", "T running_mean, T running_var",
    "running_mean = running_mean * keep + m * mean; running_var = running_var * keep + var_scale * var",
    "scratchnet_bn_running_stats")


@register_faster("batch_norm_update_stats", lambda running_mean, *args: on_gpu(running_mean))
def batch_norm_update_stats(running_mean: Array, running_var: Array, mean: Array, var: Array,
                            momentum: float, count: int) -> None:
    """The four in-place updates in one kernel."""
    m = momentum
    _RUNNING_STATS(mean, var, 1 - m, m, m * count / (count - 1), running_mean, running_var)
