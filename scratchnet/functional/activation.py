"""Element-wise activations and their backward passes.

An element-wise layer computes ``y = phi(x)`` entry by entry, so its Jacobian is diagonal and
its backward pass is an element-wise product, ``dx = gy * phi'(x)``. Each backward takes what
its layer keeps: ReLU and LeakyReLU the input x, Sigmoid and Tanh their output y (their
derivatives are functions of the output, so no exponential is evaluated again). PReLU's
slope is a parameter, so its backward also returns the slope's gradient.

Course: [1. A chain by hand](../learn/01-chain.md) (ReLU), [5. Element-wise layers and
pooling](../learn/05-elementwise-and-pooling.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op

Array = Any

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "prelu", "prelu_backward"]


@op
def relu(x: Array) -> Array:
    """``max(x, 0)``, entry by entry (a NaN stays NaN)."""
    return get_array_module(x).maximum(x, 0)


@op
def relu_backward(gy: Array, x: Array) -> Array:
    """dL/dx of `relu`.

    Args:
        gy: the upstream gradient, the shape of x.
        x: the layer's input.

    Returns:
        dx, the shape of x.

    Math: ``dy/dx = 1 where x > 0, else 0`` (0 at exactly 0, as in PyTorch), so
    ``dx = gy * [x > 0]``.
    """
    return gy * (x > 0)


@op
def leaky_relu(x: Array, negative_slope: float) -> Array:
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    return get_array_module(x).where(x > 0, x, x * negative_slope)


@op
def leaky_relu_backward(gy: Array, x: Array, negative_slope: float) -> Array:
    """dL/dx of `leaky_relu`.

    Args:
        gy: the upstream gradient, the shape of x.
        x: the layer's input.
        negative_slope: the slope for x <= 0.

    Returns:
        dx: ``gy`` where ``x > 0``, else ``negative_slope * gy``.
    """
    return get_array_module(gy).where(x > 0, gy, gy * negative_slope)


@op
def sigmoid(x: Array) -> Array:
    """Logistic function that never overflows.

    Math: with ``e = exp(-|x|) <= 1``, ``sigmoid(x) = 1 / (1 + e)`` for ``x >= 0`` and
    ``e / (1 + e)`` for ``x < 0``: algebraically ``1 / (1 + exp(-x))`` on both branches, and
    neither exponential can overflow.
    """
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


@op
def sigmoid_backward(gy: Array, y: Array) -> Array:
    """dL/dx of `sigmoid`, from its output.

    Args:
        gy: the upstream gradient, the shape of y.
        y: the layer's output ``sigmoid(x)``.

    Returns:
        dx: ``gy * y * (1 - y)``, since ``sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x))``.
    """
    return gy * y * (1 - y)


@op
def tanh(x: Array) -> Array:
    """``tanh(x)``, entry by entry."""
    return get_array_module(x).tanh(x)


@op
def tanh_backward(gy: Array, y: Array) -> Array:
    """dL/dx of `tanh` from the upstream gradient gy and the layer's output ``y = tanh(x)``:
    ``dx = gy * (1 - y*y)``, since ``tanh'(x) = 1 - tanh(x)**2``."""
    return gy * (1 - y * y)


def _per_channel(weight: Array, ndim: int) -> Array:
    """PReLU's weight shaped to broadcast against an input of rank ``ndim``: one slope for
    every entry, or one per channel (axis 1)."""
    if weight.size == 1 or ndim < 2:
        return weight.reshape(())
    return weight.reshape((1, weight.size) + (1,) * (ndim - 2))


@op
def prelu(x: Array, weight: Array) -> Array:
    """``x`` where ``x > 0``, else ``a * x``, with a learned slope ``a`` (PyTorch's ``F.prelu``).

    Args:
        x: (N, C, ...) or any shape when weight has one entry.
        weight: (1,), one slope for every entry, or (C,), one per channel (axis 1 of x).

    Returns:
        y, the shape of x.
    """
    a = _per_channel(weight, x.ndim)
    return get_array_module(x).where(x > 0, x, a * x)


@op
def prelu_backward(gy: Array, x: Array, weight: Array) -> tuple[Array, Array]:
    """dL/dx and dL/dweight of `prelu`.

    Args:
        gy: the upstream gradient, the shape of x.
        x: the layer's input.
        weight: the slopes, (1,) or (C,).

    Returns:
        (dx, dweight): dx the shape of x, dweight the shape of weight.

    Math: ``dy/dx = 1`` where ``x > 0``, else ``a``; ``dy/da = 0`` where ``x > 0``, else
    ``x``. So ``dx = gy`` or ``a * gy``, and ``dweight`` sums ``gy * x`` over the entries
    with ``x <= 0`` that share the slope (all of them, or one channel's).
    """
    xp = get_array_module(gy)
    a = _per_channel(weight, x.ndim)
    dx = xp.where(x > 0, gy, a * gy)
    contrib = xp.where(x > 0, 0, gy * x)
    if weight.size == 1 or x.ndim < 2:
        return dx, contrib.sum().reshape(weight.shape)
    axes = (0,) + tuple(range(2, x.ndim))
    return dx, contrib.sum(axis=axes)
