import numpy as np


def max_pool2d_backward(gy, argmax, kernel, stride, padding, size):
    """dL/dx of y = max_pool2d(x): each gradient goes to its window's maximum.

    Args:
        gy: (N, C, OH, OW), dL/dy.
        argmax: (C, OH, OW, N) integers, with the batch axis LAST (as
            scratchnet.functional.max_pool2d returns it): for the window of output
            (n, c, oh, ow), the position k = i*KW + j of its maximum inside the window,
            0 <= k < KH*KW (row by row).
        kernel: (KH, KW).  stride: (SH, SW).  padding: (PH, PW) (padding never wins).
        size: (H, W) of x.

    Returns:
        dx, shape (N, C, H, W).

    Math (what must hold): each output is the largest entry of its window, which argmax names
    (k counts row by row inside the window; the window of (oh, ow) starts at row oh*SH - PH
    and column ow*SW - PW of x). dx must be the gradient of sum(gy * y) with respect to x;
    windows may overlap, so one pixel can be the maximum of several.
    """
    raise NotImplementedError("send each gy entry to the pixel argmax names in its window; add "
                              "where windows overlap")
