import numpy as np

from scratchnet.functional import conv2d, conv2d_grad_weight, im2col   # use them if you like


def conv_transpose2d_backward(gy, x, weight, stride, padding):
    """Gradients of y = conv_transpose2d(x, weight, bias, stride, padding, output_padding).

    Args:
        gy: (N, C_out, OH, OW), dL/dy.
        x: (N, C_in, H, W), the layer's input (what the layer keeps).
        weight: (C_in, C_out, KH, KW) (PyTorch's layout for transposed convolutions).
        stride: (SH, SW).  padding: (PH, PW).  (output_padding only adds rows and columns of
            y, whose gradients are in gy already; backward does not need it.)

    Returns:
        (dx, dweight, dbias): shapes (N, C_in, H, W), (C_in, C_out, KH, KW), (C_out,).

    Math: a transposed convolution is the adjoint of conv2d with respect to its input:
    y = conv2d_grad_input(x, weight, ...) with weight read as a (C_in, C_out, KH, KW)
    convolution kernel. So its backward is an ordinary convolution of gy:
        dx      = conv2d(gy, weight, no bias, stride, padding)
        dweight[c, o, i, j] = sum_{n,h,w} x[n, c, h, w] * gy_padded[n, o, h*SH + i, w*SW + j]
                            (= conv2d_grad_weight(x, im2col(gy)): gy's columns, x as "gy")
        dbias[o] = sum of gy[:, o] over n, oh, ow
    """
    raise NotImplementedError("the backward of a transposed convolution is an ordinary "
                              "convolution of gy: see the Math section")
