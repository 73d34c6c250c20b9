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

    Math, per channel c, with sums over the M = N*H*W values of the channel:
        dbias   = sum(gy)
        dweight = sum(gy * xhat)
        training (batch_stats=True):
            dx = weight * inv_std * (gy - dbias / M - xhat * dweight / M)
        eval (batch_stats=False):
            dx = weight * inv_std * gy
    """
    raise NotImplementedError("per-channel sums over N, H and W, then the dx formula for the "
                              "mode: see the Math section")
