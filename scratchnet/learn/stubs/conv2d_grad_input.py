import numpy as np

from col2im import col2im   # your own col2im, next to this file (its exercise comes first)


def conv2d_grad_input(gy, weight, size, stride, padding):
    """dL/dx of y = conv2d(x, weight) with the given stride and zero padding.

    Args:
        gy: (N, OC, OH, OW), dL/dy.
        weight: (OC, C, KH, KW).
        size: (H, W) of x.
        stride: (SH, SW).  padding: (PH, PW).

    Returns:
        dx, shape (N, C, H, W).

    Math (what must hold): forward read x_padded[n, c, oh*SH + i, ow*SW + j] into
    col[c, i, j, oh, ow, n] (im2col, the batch axis last) and multiplied weight (as an
    OC x C*KH*KW matrix) by col (as C*KH*KW x OH*OW*N); dx must be the gradient of
    sum(gy * y) with respect to x. col2im takes a gradient of col back onto the pixels.
    """
    raise NotImplementedError("the gradient of col first (a product with weight), then col2im "
                              "back onto the image")
