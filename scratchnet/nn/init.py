"""Weight initialisation (PyTorch's defaults), drawn on the host from the seeded generator."""
from __future__ import annotations

import math
from typing import Any

from ..backend import init_rng


def uniform(shape: tuple[int, ...], bound: float, dtype: str = "float32") -> Any:
    """U(-bound, bound) samples as a host array, from ``scratchnet.manual_seed``'s generator."""
    return init_rng().uniform(-bound, bound, size=shape).astype(dtype)


def default_bound(fan_in: int) -> float:
    """PyTorch's default bound for Linear/Conv weights and biases: 1/sqrt(fan_in).

    (kaiming_uniform with a=sqrt(5) gives gain*sqrt(3/fan_in) = 1/sqrt(fan_in).)
    """
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
