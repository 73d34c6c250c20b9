import numpy as np


def avg_pool2d_backward(gy, kernel, stride, padding, size):
    """dL/dx of y = avg_pool2d(x): each gradient spread evenly over its window.

    Args:
        gy: (N, C, OH, OW), dL/dy.
        kernel: (KH, KW).  stride: (SH, SW).
        padding: (PH, PW); padded zeros count as pixels of a window (the mean always
            divides by KH*KW, PyTorch's count_include_pad=True).
        size: (H, W) of x.

    Returns:
        dx, shape (N, C, H, W).

    Math: y[n, c, oh, ow] = (1 / (KH*KW)) * sum_{i,j} x_padded[n, c, oh*SH + i, ow*SW + j], so
        dx_padded[n, c, oh*SH + i, ow*SW + j] += gy[n, c, oh, ow] / (KH*KW)   for all i, j
    then drop the padding. Overlapping windows add up.
    """
    raise NotImplementedError("add gy / (KH*KW) onto every pixel of its window, then crop the "
                              "padding")
