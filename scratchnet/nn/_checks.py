"""Argument and input validation shared by the layers: one-line errors that name the layer."""
from __future__ import annotations

import math
import numbers
from typing import Any

from ..backend import backend_name, get_array_module


def to_pair(value: Any, name: str, layer: str, minimum: int) -> tuple[int, int]:
    """Turn an int or a pair into a pair of ints >= ``minimum``, or raise ValueError."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return pair


def positive_int(value: Any, name: str, layer: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def check_input(module: Any, x: Any, expected: str, ndim: int | None = None,
                dim: int | None = None, size: int | None = None) -> None:
    """Check rank, one axis' size, and that dtype/backend match the module's parameters.

    Args:
        module: the layer (its repr names it in the message).
        expected: the expected shape in words, e.g. "(N, 16, H, W)".
        ndim: required rank.  dim, size: ``x.shape[dim]`` must equal ``size``.
    """
    shape = getattr(x, "shape", None)
    if shape is None or not hasattr(x, "dtype"):
        raise TypeError(f"{module!r}: expected an array of shape {expected}, got {type(x).__name__}")
    bad_rank = ndim is not None and x.ndim != ndim
    bad_size = dim is not None and (x.ndim <= dim or shape[dim] != size)
    if bad_rank or bad_size:
        raise ValueError(f"{module!r}: expected input of shape {expected}, got {tuple(shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{module!r}: expected a floating-point input, got dtype {x.dtype}")
    p = next(module.parameters(), None)
    ref = p.data if p is not None else next(
        (b for b in module.buffers() if b.dtype.kind == "f"), None)   # e.g. running statistics
    if ref is not None:
        if x.dtype != ref.dtype:
            raise TypeError(f"{module!r}: input dtype {x.dtype} differs from the parameters' "
                            f"{ref.dtype}; cast the input (x.astype('{ref.dtype}')) or the model "
                            "(model.to('float32') or model.to('float64'))")
        if get_array_module(x) is not get_array_module(ref):
            raise TypeError(f"{module!r}: input is a {backend_name(x)} array but the parameters are "
                            f"on {backend_name(ref)}; move one (model.to(...) / to_backend)")


def flag(value: Any, name: str, layer: str) -> bool:
    """A bool argument (such as ``inplace``), or ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{layer}: {name} must be True or False, got {value!r}")
    return value


def is_finite_number(value: Any) -> bool:
    """True for a finite real number that is not a bool (what every numeric setting must be)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """True for an integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def real_number(value: Any, name: str, layer: str, low: float | None = None,
                high: float | None = None) -> float:
    """A finite real number in [low, high] (either bound optional) as a float, or ValueError."""
    if not is_finite_number(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = ("" if low is None and high is None else
                  f" in [{low}, {high}]" if low is not None and high is not None else
                  f" >= {low}" if low is not None else f" <= {high}")
        raise ValueError(f"{layer}: {name} must be a finite number{bounds}, got {value!r}")
    return float(value)
