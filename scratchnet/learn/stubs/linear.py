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

    Math (what must hold): each of the three is the gradient of sum(gy * y) with respect to
    x, weight or bias, and has that array's shape; weight and bias serve every sample of the
    batch. Each is one matrix product (or one sum) over the whole batch.
    """
    raise NotImplementedError("differentiate y[n, o] for one entry of x, of weight and of bias; "
                              "each gradient is one matrix product or sum")
