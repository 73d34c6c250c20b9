"""Element-wise activations. Each keeps the one array its derivative needs."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_array_module
from .module import Module

Array = Any


class ReLU(Module):
    """y = max(x, 0).  Backward: dx = gy * [x > 0] (the mask is all that is kept)."""

    def forward(self, x: Array) -> Array:
        self._cache = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, grad_output: Array) -> Array:
        mask = self._pop_cache(grad_output)
        return grad_output * mask


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x.  Backward: dx = gy * (1 or negative_slope)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        xp = get_array_module(x)
        mask = x > 0
        self._cache = mask
        return xp.where(mask, x, x * self.negative_slope)

    def backward(self, grad_output: Array) -> Array:
        xp = get_array_module(grad_output)
        mask = self._pop_cache(grad_output)
        return xp.where(mask, grad_output, grad_output * self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), computed without overflow for any |x|.

    Backward: dy/dx = y * (1 - y), so only the output y is kept.
    """

    def forward(self, x: Array) -> Array:
        y = F.sigmoid(x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        y = self._pop_cache(grad_output)
        return grad_output * y * (1 - y)


class Tanh(Module):
    """y = tanh(x).  Backward: dy/dx = 1 - y**2, so only y is kept."""

    def forward(self, x: Array) -> Array:
        y = get_array_module(x).tanh(x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        y = self._pop_cache(grad_output)
        return grad_output * (1 - y * y)
