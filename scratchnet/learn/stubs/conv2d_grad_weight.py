import numpy as np


def conv2d_grad_weight(gy, col):
    """dL/dweight of y = conv2d(x, weight), from the im2col matrix of x.

    Args:
        gy: (N, OC, OH, OW), dL/dy.
        col: (C, KH, KW, OH, OW, N), the columns forward built from x (im2col; the batch axis
            comes LAST): col[c, i, j, oh, ow, n] = x_padded[n, c, oh*SH + i, ow*SW + j].

    Returns:
        dweight, shape (OC, C, KH, KW).

    Math (what must hold): forward computed every output pixel as a product of weight (as an
    OC x C*KH*KW matrix) with one column of col, plus the bias; dweight must be the gradient
    of sum(gy * y) with respect to weight, summed over every sample and output position. gy
    and col order those positions differently.
    """
    raise NotImplementedError("one product of gy and col summed over n, oh and ow (mind that "
                              "col keeps the batch axis last)")
