"""Gradient clipping with PyTorch's names and semantics (``nn.utils.clip_grad_norm_``).

Call it between the backward pass and ``optimizer.step()``:

    model.backward(criterion.backward())
    total_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()

Frozen parameters (``requires_grad = False``) are neither counted nor changed. Everything
stays on the gradients' backend and in their dtype: the returned norm is a 0-d array, so
reading it (``float(total_norm)``) is the only host transfer, and only when you ask.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..backend import backend_name, get_array_module
from .module import Parameter

Array = Any

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Parameter | Iterable[Parameter], caller: str) -> list[Array]:
    """The grads of the parameters that require one, all on one backend."""
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{caller}: expected Parameters (model.parameters()), got "
                            f"{type(p).__name__}")
    grads = [p.grad for p in params if p.requires_grad]
    if grads:
        xp = get_array_module(grads[0])
        other = next((g for g in grads if get_array_module(g) is not xp), None)
        if other is not None:
            raise TypeError(f"{caller}: the gradients are on {backend_name(grads[0])} and "
                            f"{backend_name(other)}; move the model to one backend")
    return grads


def _norm(g: Array, norm_type: float) -> Array:
    """The norm of one array as a 0-d array (its backend and dtype)."""
    xp = get_array_module(g)
    v = g.reshape(-1)
    if norm_type == math.inf:
        return abs(v).max() if v.size else xp.zeros((), dtype=g.dtype)
    if norm_type == 2:
        return xp.sqrt(v @ v)
    if norm_type == 1:
        return abs(v).sum()
    return (abs(v) ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Array:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients seen as one vector (the norm
    of the per-parameter norms). Every gradient is multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``, as in PyTorch.

    Args:
        parameters: a Parameter or an iterable of them (``model.parameters()``); those with
            ``requires_grad = False`` are skipped.
        max_norm: the largest allowed norm.
        norm_type: 2 (default), 1, any p > 0, or ``math.inf`` (the largest absolute value).
        error_if_nonfinite: raise when the total norm is NaN or infinite (and leave the
            gradients as they are); otherwise such a norm turns the gradients into NaN, as
            in PyTorch.
        foreach: accepted for PyTorch code and ignored.

    Returns:
        The total norm before clipping, a 0-d array on the gradients' backend.

    Raises:
        RuntimeError: the total norm is not finite and ``error_if_nonfinite`` is set.
        ValueError: max_norm or norm_type is not a number > 0 (max_norm may be 0).
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0 or math.isnan(norm_type) or norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0 and norm_type > 0, got "
                         f"max_norm={max_norm!r}, norm_type={norm_type!r}")
    grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        return get_array_module().zeros(())
    xp = get_array_module(grads[0])
    norms = xp.stack([_norm(g, norm_type).astype(grads[0].dtype) for g in grads])
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type:g} of the "
                           "gradients is not finite (NaN or inf), so they cannot be clipped; "
                           "a NaN or inf gradient usually means a too large learning rate or a "
                           "diverged model (error_if_nonfinite=False clips anyway)")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)     # 0-d: no transfer to the host
    for g in grads:
        g *= scale.astype(g.dtype)
    return xp.asarray(total)


def clip_grad_value_(parameters: Parameter | Iterable[Parameter], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place.

    Args:
        parameters: a Parameter or an iterable of them; those with ``requires_grad =
            False`` are skipped.
        clip_value: the bound (>= 0).
        foreach: accepted for PyTorch code and ignored.

    Raises:
        ValueError: clip_value is negative or not a number.
    """
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be a number >= 0, got {clip_value!r}")
    for g in _grads(parameters, "clip_grad_value_"):
        get_array_module(g).clip(g, -clip_value, clip_value, out=g)
