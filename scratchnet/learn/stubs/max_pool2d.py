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

    Math: the maximum of window (n, c, oh, ow) is x[n, c, h, w] with
        i, j = divmod(k, KW),   h = oh*SH + i - PH,   w = ow*SW + j - PW
    and it receives gy[n, c, oh, ow]; every other pixel of the window receives 0. Where
    windows overlap, one pixel can be the maximum of several windows: the gradients add up.
    """
    raise NotImplementedError("send each gy entry to the pixel argmax names in its window; add "
                              "where windows overlap")
