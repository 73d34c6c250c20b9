"""Element-wise activations: each keeps the one array its derivative needs, and runs the ops
of `scratchnet.functional.activation` (ReLU and LeakyReLU keep the input, Sigmoid and Tanh
their output)."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from .module import Module

Array = Any


class ReLU(Module):
    """``y = max(x, 0)``.  Backward (`functional.relu_backward`): ``dx = gy * [x > 0]``; the
    input x is kept."""

    def forward(self, x: Array) -> Array:
        self._cache = x
        return F.relu(x)

    def backward(self, grad_output: Array) -> Array:
        return F.relu_backward(grad_output, self._pop_cache(grad_output))


class LeakyReLU(Module):
    """``y = x`` if ``x > 0`` else ``negative_slope * x``.  Backward
    (`functional.leaky_relu_backward`): ``dx = gy`` or ``negative_slope * gy``; x is kept."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        self._cache = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, grad_output: Array) -> Array:
        return F.leaky_relu_backward(grad_output, self._pop_cache(grad_output),
                                     self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))``, computed without overflow for any ``|x|``.

    Backward (`functional.sigmoid_backward`): ``dy/dx = y * (1 - y)``, so only the output y
    is kept.
    """

    def forward(self, x: Array) -> Array:
        y = F.sigmoid(x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        return F.sigmoid_backward(grad_output, self._pop_cache(grad_output))


class Tanh(Module):
    """``y = tanh(x)``.  Backward (`functional.tanh_backward`): ``dy/dx = 1 - y**2``, so only
    y is kept."""

    def forward(self, x: Array) -> Array:
        y = F.tanh(x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        return F.tanh_backward(grad_output, self._pop_cache(grad_output))
