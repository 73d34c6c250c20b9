"""Linear, Flatten and Unflatten: the pieces of a dense ("vanilla") autoencoder."""
from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ._checks import check_input, positive_int
from .init import default_bound, uniform
from .module import Module, Parameter

Array = Any


class Linear(Module):
    """``y = x @ W^T + b``.

    Args:
        in_features: the size of the input's last axis.
        out_features: the size of the output's last axis.
        bias: learn an additive bias.

    Shapes: input (N, in) -> output (N, out); weight (out, in), bias (out,), both
    ``~ U(-1/sqrt(in), +1/sqrt(in))`` as in PyTorch.

    Backward (`functional.linear_backward`): ``dW = gy^T @ x``, ``db = sum over n of gy``,
    ``dx = gy @ W``.  Only x is kept.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Linear")
        self.out_features = positive_int(out_features, "out_features", "Linear")
        bound = default_bound(in_features)
        self.weight = Parameter(uniform((out_features, in_features), bound))
        self.bias = Parameter(uniform((out_features,), bound)) if bias else None

    def forward(self, x: Array) -> Array:
        check_input(self, x, f"(N, {self.in_features})", ndim=2, dim=1, size=self.in_features)
        self._cache = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, grad_output: Array) -> Array:
        dx, dw, db = F.linear_backward(grad_output, self._pop_cache(grad_output), self.weight.data)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge axes start_dim..end_dim into one (default: all but the batch axis).

    Backward reshapes the gradient back to the input's shape.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Array) -> Array:
        nd = x.ndim
        if self.start_dim % nd > self.end_dim % nd:
            raise ValueError(f"{self!r}: start_dim {self.start_dim} comes after end_dim "
                             f"{self.end_dim} for an input of shape {tuple(x.shape)}")
        self._cache = x.shape
        return F.flatten(x, self.start_dim, self.end_dim)

    def backward(self, grad_output: Array) -> Array:
        return F.flatten_backward(grad_output, self._pop_cache(grad_output))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size`` (e.g. 784 -> (1, 28, 28)).

    Backward reshapes the gradient back to the input's shape.
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Array) -> Array:
        d = self.dim % x.ndim
        if x.shape[d] != math.prod(self.unflattened_size):
            raise ValueError(f"{self!r}: axis {self.dim} of the input has size {x.shape[d]}, "
                             f"which cannot be split into {self.unflattened_size}")
        self._cache = x.shape
        return F.unflatten(x, self.dim, self.unflattened_size)

    def backward(self, grad_output: Array) -> Array:
        return F.flatten_backward(grad_output, self._pop_cache(grad_output))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
