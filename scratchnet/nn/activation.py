"""Element-wise activations. Each keeps the one array its derivative needs.

On CuPy the ReLU forward and the Sigmoid backward are single fused kernels
(``backend.ElementwiseOp``); the array code next to each is the reference they are tested against.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import ElementwiseOp, get_array_module
from .module import NO_CACHE, Module, is_grad_enabled

Array = Any


class ReLU(Module):
    """y = max(x, 0).  Backward: dx = gy * [x > 0] (the mask is all that is kept)."""

    def forward(self, x: Array) -> Array:
        fused = _RELU.kernel(x)
        if fused is not None:
            y, self._cache = F.batch_last_apply(fused, x)
            return y
        self._cache = x > 0 if is_grad_enabled() else NO_CACHE    # the mask is for backward only
        return get_array_module(x).maximum(x, 0)

    def backward(self, grad_output: Array) -> Array:
        mask = self._pop_cache(grad_output)
        return F.batch_last_apply(_multiply, grad_output, mask)


def _multiply(a: Array, b: Array) -> Array:
    return a * b


# y and the mask in one pass; NaN stays NaN, as with maximum(x, 0).
_RELU = ElementwiseOp("T x", "T y, bool mask", "mask = x > 0; y = (mask || x != x) ? x : (T)0",
                      "scratchnet_relu")


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
        y = F.batch_last_apply(F.sigmoid, x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        y = self._pop_cache(grad_output)
        fused = _SIGMOID_GRAD.kernel(y)
        if fused is not None:
            return F.batch_last_apply(fused, grad_output, y)
        return grad_output * y * (1 - y)


_SIGMOID_GRAD = ElementwiseOp("T gy, T y", "T gx", "gx = gy * y * (1 - y)", "scratchnet_sigmoid_grad")


class Tanh(Module):
    """y = tanh(x).  Backward: dy/dx = 1 - y**2, so only y is kept."""

    def forward(self, x: Array) -> Array:
        y = get_array_module(x).tanh(x)
        self._cache = y
        return y

    def backward(self, grad_output: Array) -> Array:
        y = self._pop_cache(grad_output)
        return grad_output * (1 - y * y)
