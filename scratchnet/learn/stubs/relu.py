import numpy as np


def relu_backward(gy, x):
    """dL/dx of y = max(x, 0), applied element by element.

    Args:
        gy: dL/dy, any shape (the shape of x).
        x: the layer's input (what the layer keeps for its backward pass).

    Returns:
        dx, the shape of x.

    Math (what must hold): dx is the gradient of sum(gy * max(x, 0)) with respect to x, entry
    by entry (at exactly 0, use the derivative from the left). Return a new array: do not
    change gy or x in place.
    """
    raise NotImplementedError("multiply gy by the derivative of max(x, 0), entry by entry")
