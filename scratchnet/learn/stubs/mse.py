import numpy as np


def mse_backward(diff, grad_output):
    """dL/dpred of loss = mean((pred - target) ** 2), with diff = pred - target.

    Args:
        diff: pred - target, any shape; the one value the loss keeps from forward.
        grad_output: dL/dloss, a number (a float, or a 0-d array): 1.0 when the loss is the
            end of the chain, which it usually is.

    Returns:
        dpred, the shape of diff.

    Math (M = diff.size, the number of entries the mean runs over):
        loss    = (1/M) * sum_k diff[k] ** 2
        dpred_k = grad_output * d loss / d pred_k = grad_output * 2 * diff[k] / M
    """
    raise NotImplementedError("differentiate (1/M) * sum of diff**2 with respect to each entry "
                              "of pred, then apply the chain rule with grad_output")
