import numpy as np


def conv2d_grad_weight(gy, col):
    """dL/dweight of y = conv2d(x, weight), from the im2col matrix of x.

    Args:
        gy: (N, OC, OH, OW), dL/dy.
        col: (C, KH, KW, OH, OW, N), the columns forward built from x (im2col; the batch axis
            comes LAST): col[c, i, j, oh, ow, n] = x_padded[n, c, oh*SH + i, ow*SW + j].

    Returns:
        dweight, shape (OC, C, KH, KW).

    Math (forward was y[n, o, oh, ow] = sum_{c,i,j} weight[o, c, i, j] * col[c, i, j, oh, ow, n]
    plus the bias):
        dweight[o, c, i, j] = sum_{n, oh, ow} gy[n, o, oh, ow] * col[c, i, j, oh, ow, n]
    As matrices: gy as (OC, L) times col as (K, L) transposed, with K = C*KH*KW and
    L = OH*OW*N, when both list the L positions in the same order.
    """
    raise NotImplementedError("one product of gy and col summed over n, oh and ow (mind that "
                              "col keeps the batch axis last)")
