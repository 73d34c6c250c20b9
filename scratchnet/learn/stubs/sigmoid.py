import numpy as np


def sigmoid_backward(gy, y):
    """dL/dx of y = 1 / (1 + exp(-x)), from the *output* y.

    Args:
        gy: dL/dy, any shape.
        y: the layer's output sigmoid(x), the one value it keeps (x itself is not kept).

    Returns:
        dx, the shape of y.

    Math (what must hold): dx is the gradient of sum(gy * sigmoid(x)) with respect to x,
    entry by entry, written with the output y alone (x is not kept).
    """
    raise NotImplementedError("the derivative of the sigmoid, written with its output y")
