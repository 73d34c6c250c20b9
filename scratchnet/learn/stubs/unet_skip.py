import numpy as np


def skip_split(grad, up_channels):
    """Backward of the concatenation cat(up, skip) along the channel axis.

    Args:
        grad: (N, up_channels + skip_channels, H, W), dL/d cat(up, skip).
        up_channels: the number of channels of up, the first part of the concatenation.

    Returns:
        (grad_up, grad_skip): shapes (N, up_channels, H, W) and (N, skip_channels, H, W),
        the gradients of up and of skip.

    Math (what must hold): grad_up and grad_skip are the gradients of sum(grad * cat(up,
    skip)) with respect to up and to skip.
    """
    raise NotImplementedError("split grad along the channel axis, up's channels first")


def skip_sum(grad_pool, grad_skip):
    """Backward of a feature map that fed two consumers (the pooling and the skip).

    Args:
        grad_pool: (N, C, H, W), the gradient of e arriving through the pooling path.
        grad_skip: (N, C, H, W), the gradient of e arriving through the skip.

    Returns:
        grad, (N, C, H, W), dL/de.

    Math (what must hold): L depends on e through both consumers; grad is dL/de, from the two
    gradients that arrive along them.
    """
    raise NotImplementedError("a feature map used twice gets the gradients of both uses")
