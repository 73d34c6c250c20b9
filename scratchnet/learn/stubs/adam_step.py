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

    Math (what must hold): the update follows PyTorch's Adam: weight decay enters as L2
    (through the gradient, not by shrinking param directly); m and v are exponential running
    averages of the gradient and of its square, corrected for starting at zero; the step
    moves param against the gradient, scaled per entry by the size of its recent gradients,
    eps keeping the division finite. `check ... --hint 3` gives the formulas.
    """
    raise NotImplementedError("update m and v, correct their bias, then step; --hint 2 and 3 say more")
