"""Element-wise activations: each keeps the one array its derivative needs, and runs the ops
of `scratchnet.functional.activation` (ReLU and LeakyReLU keep the input, Sigmoid and Tanh
their output)."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_backend
from ._checks import check_input, flag, positive_int, real_number
from .module import Module, Parameter

Array = Any


class ReLU(Module):
    """``y = max(x, 0)``.  Backward (`functional.relu_backward`): ``dx = gy * [x > 0]``; the
    input x is kept.

    Args:
        inplace: accepted so that PyTorch code runs, and changes nothing: the output is a new
            array and the input is left as it was, so it saves no memory (the layer keeps
            its input for backward, which an in-place ReLU would overwrite).
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = flag(inplace, "inplace", "ReLU")

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""

    def forward(self, x: Array) -> Array:
        self._cache = x
        return F.relu(x)

    def backward(self, grad_output: Array) -> Array:
        return F.relu_backward(grad_output, self._pop_cache(grad_output))


class LeakyReLU(Module):
    """``y = x`` if ``x > 0`` else ``negative_slope * x``.  Backward
    (`functional.leaky_relu_backward`): ``dx = gy`` or ``negative_slope * gy``; x is kept.

    Args:
        negative_slope: the slope for ``x <= 0``.
        inplace: accepted and changes nothing, as in `ReLU` (no memory is saved).
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = flag(inplace, "inplace", "LeakyReLU")       # as in ReLU: no effect

    def forward(self, x: Array) -> Array:
        self._cache = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, grad_output: Array) -> Array:
        return F.leaky_relu_backward(grad_output, self._pop_cache(grad_output),
                                     self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


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


class PReLU(Module):
    """``y = x`` if ``x > 0`` else ``a * x``, with learned slopes ``a`` (PyTorch's PReLU).

    Args:
        num_parameters: 1 (one slope for every entry) or C (one per channel, axis 1).
        init: the slopes' initial value.

    Shapes: (N, C, ...) -> the same; ``weight`` (num_parameters,), filled with ``init``.
    Backward (`functional.prelu_backward`): ``dx = gy`` or ``a * gy``; ``dweight`` adds
    ``gy * x`` over the entries with ``x <= 0`` that share a slope. The input x is kept.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters = positive_int(num_parameters, "num_parameters", "PReLU")
        self.init = real_number(init, "init", "PReLU")
        xp = get_backend("numpy")              # created on the host, moved by .to()
        self.weight = Parameter(xp.full(num_parameters, self.init, dtype="float32"))

    def forward(self, x: Array) -> Array:
        if self.num_parameters > 1:
            check_input(self, x, f"(N, {self.num_parameters}, ...)", dim=1,
                        size=self.num_parameters)
        else:
            check_input(self, x, "(N, ...)")
        self._cache = x
        return F.prelu(x, self.weight.data)

    def backward(self, grad_output: Array) -> Array:
        dx, dweight = F.prelu_backward(grad_output, self._pop_cache(grad_output),
                                       self.weight.data)
        self.weight.grad += dweight
        return dx

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
