import numpy as np


def relu_backward(gy, x):
    """dL/dx of y = max(x, 0), applied element by element.

    Args:
        gy: dL/dy, any shape (the shape of x).
        x: the layer's input (what the layer keeps for its backward pass).

    Returns:
        dx, the shape of x.

    Math:
        dy/dx = 1 where x > 0, else 0   (at exactly 0 either is fine; this uses 0)
        dx    = gy * dy/dx              (the chain rule, entry by entry)
    Return a new array: do not change gy or x in place.
    """
    raise NotImplementedError("multiply gy by the derivative of max(x, 0), entry by entry")
