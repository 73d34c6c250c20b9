"""Weight initialisation (PyTorch's defaults and ``torch.nn.init``'s functions), drawn on the
host from the seeded generator.

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from ..backend import get_array_module, init_rng
from .module import Parameter


def uniform(shape: tuple[int, ...], bound: float, dtype: str = "float32") -> Any:
    """U(-bound, bound) samples as a host array, from ``scratchnet.manual_seed``'s generator."""
    return init_rng().uniform(-bound, bound, size=shape).astype(dtype)


def default_bound(fan_in: int) -> float:
    """PyTorch's default bound for Linear/Conv weights and biases: 1/sqrt(fan_in).

    (kaiming_uniform with ``a=sqrt(5)`` gives ``gain*sqrt(3/fan_in) = 1/sqrt(fan_in)``.)
    """
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


# --- PyTorch's torch.nn.init: in-place initialisers of a Parameter or an array -------------
# Each draws on the host (float64, from scratchnet.manual_seed's generator unless one is
# given), casts to the target's dtype and writes into it on its backend, so the same seed
# gives the same weights on NumPy and CuPy. Each returns its argument, as PyTorch's do.

Generator = Any            # a NumPy random Generator: draws are made on the host

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def _target(tensor: Any, caller: str) -> Any:
    """The array to write into: a Parameter's data, or the array itself."""
    array = tensor.data if isinstance(tensor, Parameter) else tensor
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise TypeError(f"nn.init.{caller}: expected a Parameter or an array, got "
                        f"{type(tensor).__name__}")
    if array.dtype.kind != "f":
        raise TypeError(f"nn.init.{caller}: expected a floating-point array, got dtype {array.dtype}")
    return array


def _write(tensor: Any, values: Any, caller: str) -> Any:
    """Copy host ``values`` into ``tensor`` (its shape, dtype and backend); return ``tensor``."""
    array = _target(tensor, caller)
    xp = get_array_module(array)
    array[...] = xp.asarray(values.astype(array.dtype, copy=False))   # host draws, moved once
    return tensor


def _generator(generator: Generator | None) -> Generator:
    return init_rng() if generator is None else generator


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain PyTorch recommends for a nonlinearity: 1 for linear layers and sigmoid,
    5/3 for tanh, sqrt(2) for relu, ``sqrt(2 / (1 + negative_slope**2))`` for leaky_relu
    (``param`` is the slope, default 0.01), 3/4 for selu.

    Raises:
        ValueError: an unknown nonlinearity, or a slope that is not a number.
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR)}, tanh, relu, leaky_relu, selu")


def _calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """PyTorch's fans: fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive
    field, the receptive field being the product of shape[2:] (so ConvTranspose2d's
    (C_in, C_out, KH, KW) weight has fan_in = C_out*KH*KW, as in PyTorch)."""
    shape = tuple(_target(tensor, "fan").shape)
    if len(shape) < 2:
        raise ValueError(f"nn.init: fan in and fan out cannot be computed for a tensor with fewer "
                         f"than 2 dimensions (shape {shape}); use uniform_, normal_ or constant_")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Any, mode: str, caller: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init.{caller}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0,
             generator: Generator | None = None) -> Any:
    """Fill with draws from U(a, b)."""
    shape = _target(tensor, "uniform_").shape
    return _write(tensor, _generator(generator).uniform(a, b, size=shape), "uniform_")


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0,
            generator: Generator | None = None) -> Any:
    """Fill with draws from ``N(mean, std**2)``."""
    shape = _target(tensor, "normal_").shape
    return _write(tensor, _generator(generator).normal(mean, std, size=shape), "normal_")


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``."""
    _target(tensor, "constant_").fill(val)
    return tensor


def ones_(tensor: Any) -> Any:
    """Fill with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Any) -> Any:
    """Fill with zeros."""
    return constant_(tensor, 0.0)


def xavier_uniform_(tensor: Any, gain: float = 1.0,
                    generator: Generator | None = None) -> Any:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Any, gain: float = 1.0,
                   generator: Generator | None = None) -> Any:
    """Glorot normal: ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str, caller: str) -> float | None:
    """``gain / sqrt(fan)``, or None (with PyTorch's warning) for a tensor with no elements."""
    if 0 in tuple(_target(tensor, caller).shape):
        warnings.warn(f"nn.init.{caller}: initializing a zero-element tensor is a no-op",
                      UserWarning, stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode, caller))


def kaiming_uniform_(tensor: Any, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Any:
    """He uniform: U(-bound, bound) with ``bound = gain * sqrt(3 / fan)``.

    Args:
        tensor: a Parameter or an array with at least 2 dimensions.
        a: the negative slope of the leaky_relu that follows (PyTorch's layers use
            ``a = sqrt(5)``, which gives their default bound ``1 / sqrt(fan_in)``).
        mode: "fan_in" (preserves the forward pass's variance) or "fan_out" (the backward's).
        nonlinearity: the activation that follows, for `calculate_gain`.
        generator: a NumPy Generator; scratchnet's seeded one by default.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Any, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Any:
    """He normal: ``N(0, std**2)`` with ``std = gain / sqrt(fan)``; arguments as in
    `kaiming_uniform_`."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)
