"""Batch normalisation: forward, backward, inference, and the running statistics.

Per channel c, over its ``M = N*H*W`` values (a row of the batch-last (C, M) matrix):

    xhat = (x - mean) * inv_std,   inv_std = 1 / sqrt(var + eps),   y = weight * xhat + bias

Backward through the batch statistics (mean and var depend on every x of the channel):

    dbias = sum(gy),   dweight = sum(gy * xhat),
    dx = weight * inv_std * (gy - dbias / M - xhat * dweight / M)

Course: [6. Batch norm](../learn/06-batch-norm.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..layout import batch_last_matrix
from ..ops import op

Array = Any

__all__ = ["batch_norm_forward", "batch_norm_backward", "batch_norm_inference",
           "batch_norm_update_stats", "channel_sums"]


def _nchw(m: Array, shape: tuple[int, ...]) -> Array:
    """A (C, M) batch-last matrix as the (N, C, H, W) view it stands for."""
    N, C, H, W = shape
    return m.reshape(C, H, W, N).transpose(3, 0, 1, 2)


@op
def batch_norm_forward(x: Array, weight: Array | None, bias: Array | None, eps: float,
                       mean: Array | None = None, var: Array | None = None
                       ) -> tuple[Array, Array, Array, Array, Array]:
    """Batch normalisation of (N, C, H, W).

    Args:
        x: (N, C, H, W).
        weight: (C,), or None (no affine transform).
        bias: (C,), or None.
        eps: added to the variance.
        mean: (C,) statistics to use (eval mode: the running ones); None computes the
            batch's own mean and *biased* variance (training mode).
        var: (C,), given with ``mean``.

    Returns:
        (y, xhat, inv_std, mean, var): y and xhat (N, C, H, W), each a view of a batch-last
        buffer; inv_std (C,); the statistics used, (C,) each. ``xhat`` and ``inv_std`` are
        what `batch_norm_backward` needs.
    """
    xp = get_array_module(x)
    xm = batch_last_matrix(x)                                        # (C, M)
    if mean is None:
        mean = xm.mean(axis=1)
        xc = xm - mean[:, None]
        var = xp.einsum("cm,cm->c", xc, xc) / xc.shape[1]        # mean of xc**2, no temporary
    else:
        xc = xm - mean[:, None]
    inv_std = 1 / xp.sqrt(var + eps)
    xhat = xc
    xhat *= inv_std[:, None]                                       # in place: xc is not needed
    if weight is None:
        return _nchw(xhat, x.shape), _nchw(xhat, x.shape), inv_std, mean, var
    y = xhat * weight[:, None]
    y += bias[:, None]
    return _nchw(y, x.shape), _nchw(xhat, x.shape), inv_std, mean, var


@op
def batch_norm_backward(gy: Array, xhat: Array, inv_std: Array, weight: Array | None,
                        batch_stats: bool = True) -> tuple[Array, Array, Array]:
    """Gradients of `batch_norm_forward`.

    Args:
        gy: (N, C, H, W), the upstream gradient.
        xhat: (N, C, H, W), from the forward pass.
        inv_std: (C,), from the forward pass.
        weight: (C,), or None (then read as 1).
        batch_stats: whether forward used the batch's statistics (training mode): then the
            gradient also flows through the mean and the variance; with fixed (running)
            statistics it does not.

    Returns:
        (dx, dweight, dbias): (N, C, H, W), (C,), (C,).

    Math, per channel, with sums over its ``M = N*H*W`` values:

        dbias   = sum(gy)
        dweight = sum(gy * xhat)
        dx      = weight * inv_std * (gy - dbias / M - xhat * dweight / M)   (batch_stats)
        dx      = weight * inv_std * gy                                      (fixed stats)
    """
    gm, xm = batch_last_matrix(gy), batch_last_matrix(xhat)            # (C, M) each
    M = gm.shape[1]
    dbias = gm.sum(axis=1)
    dweight = (gm * xm).sum(axis=1)     # pairwise sum: its terms cancel, so einsum's running
                                        # float32 sum was measurably less accurate here
    scale = inv_std if weight is None else weight * inv_std
    if batch_stats:
        dx = scale[:, None] * (gm - dbias[:, None] / M - xm * (dweight[:, None] / M))
    else:
        dx = gm * scale[:, None]
    return _nchw(dx, gy.shape), dweight, dbias


@op
def batch_norm_inference(x: Array, weight: Array | None, bias: Array | None, eps: float,
                         mean: Array, var: Array) -> Array:
    """Batch normalisation with fixed statistics when no backward will follow (eval mode
    under ``no_grad``): one scale and one shift per channel.

    Args:
        x: (N, C, H, W).
        weight: (C,), or None.
        bias: (C,), or None.
        eps: added to the variance.
        mean: (C,), the running mean.
        var: (C,), the running variance.

    Returns:
        y (N, C, H, W), a view of a batch-last buffer.

    Math: ``y = x * s + t`` with ``s = weight / sqrt(var + eps)`` and ``t = bias - mean *
    s``: two passes over x where `batch_norm_forward` makes four and keeps xhat.
    """
    xp = get_array_module(x)
    scale = 1 / xp.sqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    y = batch_last_matrix(x) * scale[:, None]
    y += shift[:, None]
    return _nchw(y, x.shape)


@op
def batch_norm_update_stats(running_mean: Array, running_var: Array, mean: Array, var: Array,
                            momentum: float, count: int) -> None:
    """Update the running statistics in place with one batch's, as PyTorch does.

    Args:
        running_mean: (C,), updated in place.
        running_var: (C,), updated in place.
        mean: (C,), the batch's mean.
        var: (C,), the batch's *biased* variance.
        momentum: the weight of the batch.
        count: ``M = N*H*W``, the values per channel (for the unbiased variance).

    Math: ``running = (1 - momentum) * running + momentum * batch``, with the batch's
    unbiased variance ``var * M / (M - 1)``.
    """
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += (momentum * count / (count - 1)) * var


@op
def channel_sums(a: Array, b: Array | None = None, scale: float = 1.0) -> Array:
    """Sums over each row of a (C, M) matrix: a channel's values over batch and pixels.

    Args:
        a: (C, M).
        b: (C, M) or None.
        scale: multiplies both sums.

    Returns:
        (2, C): row 0 the sums of ``a``, row 1 the sums of ``a * b`` (zeros without ``b``).
    """
    xp = get_array_module(a)
    out = xp.stack([a.sum(axis=1), (a * b).sum(axis=1) if b is not None else xp.zeros_like(a[:, 0])])
    if scale != 1:
        out *= scale
    return out
