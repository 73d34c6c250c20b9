"""The fully connected layer, and the reshapes around it (Flatten, Unflatten).

Course: [1. A chain by hand](../learn/01-chain.md).
"""
from __future__ import annotations

import math
from typing import Any

from ..ops import op

Array = Any

__all__ = ["linear", "linear_backward", "flatten", "unflatten", "flatten_backward"]


@op
def linear(x: Array, weight: Array, bias: Array | None) -> Array:
    """``y = x @ weight.T + bias``.

    Args:
        x: (N, in).
        weight: (out, in).
        bias: (out,) or None.

    Returns:
        y, (N, out).
    """
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


@op
def linear_backward(gy: Array, x: Array, weight: Array) -> tuple[Array, Array, Array]:
    """Gradients of `linear` for one batch.

    Args:
        gy: (N, out), the upstream gradient.
        x: (N, in), the layer's input (what it keeps).
        weight: (out, in).

    Returns:
        (dx, dweight, dbias): (N, in), (out, in), (out,).

    Math (n runs over the batch, o over outputs, i over inputs):

        dx[n, i]      = sum over o of gy[n, o] * weight[o, i]      dx      = gy @ weight
        dweight[o, i] = sum over n of gy[n, o] * x[n, i]           dweight = gy.T @ x
        dbias[o]      = sum over n of gy[n, o]
    """
    return gy @ weight, gy.T @ x, gy.sum(axis=0)


@op
def flatten(x: Array, start_dim: int = 1, end_dim: int = -1) -> Array:
    """Merge the axes ``start_dim .. end_dim`` (inclusive, negative counts from the end)."""
    nd = x.ndim
    start, end = start_dim % nd, end_dim % nd
    return x.reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


@op
def unflatten(x: Array, dim: int, sizes: tuple[int, ...]) -> Array:
    """Split axis ``dim`` into ``sizes`` (e.g. 784 -> (1, 28, 28))."""
    d = dim % x.ndim
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


@op
def flatten_backward(gy: Array, shape: tuple[int, ...]) -> Array:
    """dL/dx of a reshape (`flatten`, `unflatten`): gy reshaped back to the input's ``shape``;
    a reshape moves no value, so neither does its backward."""
    return gy.reshape(shape)
