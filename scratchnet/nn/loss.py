"""Mean-squared-error loss."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import backend_name, get_array_module
from .module import Module

Array = Any


class MSELoss(Module):
    """``loss = mean((input - target)**2)`` over all M elements (PyTorch's reduction='mean').

    ``loss = mse(pred, target)`` returns a 0-d array on the inputs' backend (``float(loss)``
    works); ``mse.backward()`` returns ``dL/dpred = 2 * (pred - target) / M``, times
    ``grad_output`` when one is given (`functional.mse_backward`). Only the difference is
    kept.
    """

    def forward(self, input: Array, target: Array) -> Array:
        if getattr(input, "shape", None) != getattr(target, "shape", None):
            raise ValueError(f"MSELoss: input shape {getattr(input, 'shape', None)} and target "
                             f"shape {getattr(target, 'shape', None)} differ; they must match")
        if input.dtype != target.dtype:
            raise TypeError(f"MSELoss: input dtype {input.dtype} and target dtype {target.dtype} "
                            "differ; cast one of them")
        if get_array_module(target) is not get_array_module(input):
            raise TypeError(f"MSELoss: input is on {backend_name(input)}, target on "
                            f"{backend_name(target)}; move one of them")
        loss, self._cache = F.mse_loss(input, target)
        return loss

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        return F.mse_backward(self._pop_cache(grad_output), grad_output)
