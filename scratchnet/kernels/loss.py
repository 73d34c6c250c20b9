"""Faster body of `mean_square` on CuPy (`scratchnet.functional.loss`)."""
from __future__ import annotations

from typing import Any

from ..ops import register_faster
from . import on_gpu
from .norm import channel_sums

Array = Any


@register_faster("mean_square", lambda a: on_gpu(a) and a.ndim > 0)
def mean_square(a: Array) -> Array:
    """One kernel (`channel_sums` of ``a`` as one row) instead of a product and CuPy's
    generic reduction; a 0-d array."""
    flat = a.reshape(1, -1)
    return channel_sums(flat, flat, scale=1.0 / a.size)[1, 0]
