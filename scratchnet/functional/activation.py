"""Element-wise activations and their backward passes.

An element-wise layer computes ``y = phi(x)`` entry by entry, so its Jacobian is diagonal and
its backward pass is an element-wise product, ``dx = gy * phi'(x)``. Each backward takes what
its layer keeps: ReLU and LeakyReLU the input x, Sigmoid and Tanh their output y (their
derivatives are functions of the output, so no exponential is evaluated again).

Course: [1. A chain by hand](../learn/01-chain.md) (ReLU), [5. Element-wise layers and
pooling](../learn/05-elementwise-and-pooling.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op

Array = Any

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward"]


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
