import numpy as np


def linear_backward(gy, x, weight):
    """Gradients of y = x @ weight.T + bias, for one batch.

    Args:
        gy: (N, out), dL/dy: the gradient arriving from the layer above.
        x: (N, in), the input the layer saw in forward (what the layer keeps).
        weight: (out, in), the layer's weight.

    Returns:
        (dx, dweight, dbias): dL/dx of shape (N, in), dL/dweight of shape (out, in) and
        dL/dbias of shape (out,). The layer adds dweight and dbias into the parameters'
        gradients and passes dx on to the layer below.

    Math (n runs over the batch, o over outputs, i over inputs):
        y[n, o]       = sum_i x[n, i] * weight[o, i] + bias[o]
        dx[n, i]      = sum_o gy[n, o] * weight[o, i]
        dweight[o, i] = sum_n gy[n, o] * x[n, i]
        dbias[o]      = sum_n gy[n, o]
    Each is one matrix product (or one sum) over the whole batch.
    """
    raise NotImplementedError("write dx, dweight and dbias from the Math section; each is one "
                              "matrix product or sum")
