import numpy as np


def batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True):
    """Gradients of y = weight * xhat + bias, xhat = (x - mean) * inv_std, per channel.

    Args:
        gy: (N, C, H, W), dL/dy.
        xhat: (N, C, H, W), the normalised input forward computed.
        inv_std: (C,), 1 / sqrt(var + eps) of each channel.
        weight: (C,), or None when the layer has no affine transform (then read it as 1).
        batch_stats: True in training mode, where mean and var are the batch's own (and so
            depend on x); False in eval mode, where they are the fixed running statistics.

    Returns:
        (dx, dweight, dbias): shapes (N, C, H, W), (C,), (C,).

    Math (what must hold): per channel, y is an affine map of xhat, and xhat depends on x
    directly and, in training mode, also through the batch mean and variance (which every x
    of the channel enters, M = N*H*W of them); in eval mode the statistics are constants.
    dx, dweight and dbias must be the gradients of sum(gy * y). `check ... --hint 3` gives
    the formulas.
    """
    raise NotImplementedError("per-channel sums over N, H and W, and in training mode the terms "
                              "through the batch statistics")
