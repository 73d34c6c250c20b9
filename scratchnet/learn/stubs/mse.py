import numpy as np


def mse_backward(diff, grad_output):
    """dL/dpred of loss = mean((pred - target) ** 2), with diff = pred - target.

    Args:
        diff: pred - target, any shape; the one value the loss keeps from forward.
        grad_output: dL/dloss, a number (a float, or a 0-d array): 1.0 when the loss is the
            end of the chain, which it usually is.

    Returns:
        dpred, the shape of diff.

    Math (what must hold): loss is the mean of diff**2 over all M = diff.size entries;
    dpred is d loss / d pred times grad_output (the chain rule), entry by entry.
    """
    raise NotImplementedError("differentiate (1/M) * sum of diff**2 with respect to each entry "
                              "of pred, then apply the chain rule with grad_output")
