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

    Math (what must hold): each output is the mean of its KH*KW window of x_padded; dx must
    be the gradient of sum(gy * y) with respect to x. Windows may overlap (a pixel then
    belongs to several) and may reach into the padding, which has no pixel of x.
    """
    raise NotImplementedError("add gy / (KH*KW) onto every pixel of its window, then crop the "
                              "padding")
