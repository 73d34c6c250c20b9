import numpy as np


def sigmoid_backward(gy, y):
    """dL/dx of y = 1 / (1 + exp(-x)), from the *output* y.

    Args:
        gy: dL/dy, any shape.
        y: the layer's output sigmoid(x), the one value it keeps (x itself is not kept).

    Returns:
        dx, the shape of y.

    Math:
        dy/dx = sigmoid(x) * (1 - sigmoid(x)) = y * (1 - y)
        dx    = gy * dy/dx
    """
    raise NotImplementedError("the derivative of the sigmoid, written with its output y")
