import numpy as np

from scratchnet.functional import col2im   # or your own: `from col2im import col2im`


def conv2d_grad_input(gy, weight, size, stride, padding):
    """dL/dx of y = conv2d(x, weight) with the given stride and zero padding.

    Args:
        gy: (N, OC, OH, OW), dL/dy.
        weight: (OC, C, KH, KW).
        size: (H, W) of x.
        stride: (SH, SW).  padding: (PH, PW).

    Returns:
        dx, shape (N, C, H, W).

    Math: forward read x_padded[n, c, oh*SH + i, ow*SW + j] into col[c, i, j, oh, ow, n]
    (im2col) and computed y[n, o, oh, ow] = sum_{c,i,j} weight[o, c, i, j] * col[...]. So
        dcol[c, i, j, oh, ow, n] = sum_o weight[o, c, i, j] * gy[n, o, oh, ow]
        dx = col2im(dcol, stride, padding, size)
    where col2im adds every dcol entry back onto the pixel it was read from and drops the
    padding. (Another road to the same dx: a "full" correlation of gy, spread out by the
    stride, with the kernel rotated by 180 degrees and its two channel axes exchanged.)
    """
    raise NotImplementedError("dcol = weight^T @ gy as matrices, then col2im back onto the image")
