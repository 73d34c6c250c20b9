import numpy as np

from scratchnet.functional import conv2d, im2col   # the forward convolution and im2col

from conv2d_grad_weight import conv2d_grad_weight   # your own, next to this file


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

    Math (what must hold): a transposed convolution is the adjoint of conv2d with respect to
    its input: y = conv2d_grad_input(x, weight, ...), weight read as a (C_in, C_out, KH, KW)
    convolution kernel. dx, dweight and dbias must be the gradients of sum(gy * y); each is
    an operation you have met already (a convolution, your conv2d_grad_weight, a sum).
    """
    raise NotImplementedError("the adjoint of an adjoint: which convolution's gradients are "
                              "these?")
