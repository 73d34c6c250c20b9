"""Faster body of `add_scaled_noise` on CuPy (`scratchnet.data.noise`): the three passes of
``x + factor * noise``, clipped, in one."""
from __future__ import annotations

from typing import Any

from ..ops import register_faster
from . import ElementwiseOp, on_gpu

Array = Any

_GAUSSIAN = ElementwiseOp(
    "T x, T noise, T factor, bool clip", "T y",
    "const T v = x + factor * noise; y = !clip ? v : (v < 0 ? (T)0 : (v > 1 ? (T)1 : v))",
    "scratchnet_gaussian_noise")


@register_faster("add_scaled_noise", on_gpu)
def add_scaled_noise(x: Array, noise: Array, factor: float, clip: bool) -> Array:
    return _GAUSSIAN(x, noise, factor, clip)
