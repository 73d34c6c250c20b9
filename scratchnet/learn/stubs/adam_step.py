import math

import numpy as np


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
    """One Adam update of one parameter, as PyTorch's Adam does it (weight decay as L2).

    Args:
        param: the parameter's values, any shape.
        grad: dL/dparam, the shape of param.
        exp_avg: m, the running average of gradients from the previous step (zeros before
            the first step).
        exp_avg_sq: v, the running average of squared gradients (zeros before the first).
        step: t, the number of this update: 1 for the first (already counted for you).
        lr: the learning rate.  betas: (beta1, beta2).  eps: added to the denominator.
        weight_decay: the L2 coefficient (0 for none).

    Returns:
        (param, exp_avg, exp_avg_sq) after the update. Updating the three arrays in place and
        returning them is fine, and so is returning new arrays.

    Math:
        g     = grad + weight_decay * param
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)          (bias corrections: m and v start at zero)
        v_hat = v / (1 - beta2 ** t)
        param = param - lr * m_hat / (sqrt(v_hat) + eps)
    """
    raise NotImplementedError("follow the Math section line by line")
