"""The mean squared error and its gradient.

Course: [1. A chain by hand](../learn/01-chain.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op

Array = Any

__all__ = ["mse_loss", "mse_backward", "mean_square"]


@op
def mean_square(a: Array) -> Array:
    """The mean of ``a**2`` over all entries, as a 0-d array."""
    xp = get_array_module(a)
    return xp.asarray(xp.mean(a * a))


@op
def mse_loss(input: Array, target: Array) -> tuple[Array, Array]:
    """``mean((input - target)**2)`` over all M entries (PyTorch's reduction='mean').

    Args:
        input: the prediction, any shape.
        target: the same shape.

    Returns:
        (loss, diff): the loss as a 0-d array, and ``diff = input - target``, what
        `mse_backward` needs.
    """
    diff = input - target
    return mean_square(diff), diff


@op
def mse_backward(diff: Array, grad_output: Array | float) -> Array:
    """dL/dinput of `mse_loss`.

    Args:
        diff: ``input - target``, from the forward pass.
        grad_output: dL/dloss, a number or a 0-d array (1.0 at the end of the chain).

    Returns:
        dinput, the shape of diff.

    Math: ``loss = (1/M) * sum of diff**2``, so ``dinput = grad_output * 2 * diff / M``.
    """
    if isinstance(grad_output, (int, float)):          # one pass over diff, not two
        return diff * (2.0 / diff.size * grad_output)
    return diff * (2.0 / diff.size) * grad_output
