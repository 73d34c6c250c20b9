"""Skip connections: concatenation along channels, and the two rules of its backward pass.

A U-Net concatenates an up-sampled map with an encoder map, ``cat(up, e)``, and the encoder
map e also feeds the path below it: e *fans out* to two consumers. Backward needs a rule for
each branching point: the concatenation *splits* the gradient by channels (`skip_split`), and
the fan-out *sums* the gradients of its consumers (`skip_sum`).

Course: [7. Skip connections](../learn/07-skip-connections.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op

Array = Any

__all__ = ["cat_channels", "skip_split", "skip_sum"]


@op
def cat_channels(a: Array, b: Array) -> Array:
    """Concatenate (N, Ca, H, W) and (N, Cb, H, W) along channels into (N, Ca + Cb, H, W).

    Its backward is `skip_split`. The result is built batch-last in memory, so the
    convolution that reads it copies it without reordering.
    """
    xp = get_array_module(a)
    y = xp.concatenate([a.transpose(1, 2, 3, 0), b.transpose(1, 2, 3, 0)], axis=0)
    return y.transpose(3, 0, 1, 2)


@op
def skip_split(grad: Array, up_channels: int) -> tuple[Array, Array]:
    """Backward of ``cat_channels(up, skip)``.

    Args:
        grad: (N, up_channels + skip_channels, H, W), dL/d cat(up, skip).
        up_channels: the channels of up, the first part of the concatenation.

    Returns:
        (grad_up, grad_skip): ``grad[:, :up_channels]`` and ``grad[:, up_channels:]``; the
        concatenation copied each channel to its own place, so each part of the gradient
        goes back to where its channels came from.
    """
    return grad[:, :up_channels], grad[:, up_channels:]


@op
def skip_sum(grad_pool: Array, grad_skip: Array) -> Array:
    """Backward of a fan-out: a feature map that fed two consumers (the pooling below it and
    the skip) gets the sum of their gradients (the multivariable chain rule).

    Args:
        grad_pool: (N, C, H, W), its gradient through the pooling path.
        grad_skip: (N, C, H, W), its gradient through the skip.

    Returns:
        ``grad_pool + grad_skip``.
    """
    return grad_pool + grad_skip
