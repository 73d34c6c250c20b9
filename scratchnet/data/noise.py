"""Seeded corruption of images in [0, 1], on any backend.

    noisy = add_gaussian_noise(x, 0.5, rng=default_rng(0, "numpy"))   # x + 0.5*N(0,1), clipped

Clipping to [0, 1] is on by default (the convention of the original projects) and changes
every metric, so it is stated wherever a result is reported.
"""
from __future__ import annotations

from typing import Any, Callable

from ..backend import backend_name, default_rng, get_array_module
from ..ops import op

Array = Any

__all__ = ["add_gaussian_noise", "add_salt_and_pepper_noise", "add_speckle_noise", "add_noise",
           "NOISES"]


def _rng_for(x: Array, rng: Any) -> Any:
    return default_rng(None, backend_name(x)) if rng is None else rng


def _check_factor(factor: float, name: str) -> None:
    if not factor >= 0:
        raise ValueError(f"{name} must be >= 0, got {factor!r}")


def add_gaussian_noise(x: Array, factor: float, clip: bool = True, rng: Any = None) -> Array:
    """x + factor * N(0, 1), clipped to [0, 1] when ``clip``; same shape, dtype, backend."""
    _check_factor(factor, "noise factor")
    noise = _rng_for(x, rng).standard_normal(x.shape, dtype=x.dtype)
    return add_scaled_noise(x, noise, factor, clip)


@op
def add_scaled_noise(x: Array, noise: Array, factor: float, clip: bool) -> Array:
    """``x + factor * noise``, clipped to [0, 1] when ``clip`` (one kernel on CuPy)."""
    y = x + factor * noise
    return get_array_module(x).clip(y, 0, 1) if clip else y


def add_speckle_noise(x: Array, factor: float, clip: bool = True, rng: Any = None) -> Array:
    """Multiplicative noise x * (1 + factor * N(0, 1)), clipped to [0, 1] when ``clip``."""
    _check_factor(factor, "noise factor")
    noise = _rng_for(x, rng).standard_normal(x.shape, dtype=x.dtype)
    y = x + x * (factor * noise)
    return get_array_module(x).clip(y, 0, 1) if clip else y


def add_salt_and_pepper_noise(x: Array, amount: float, clip: bool = True, rng: Any = None) -> Array:
    """Set a fraction ``amount`` of pixels to 0 or 1 (half each). ``clip`` is accepted for a
    uniform signature; the result is always inside [0, 1] when x is."""
    _check_factor(amount, "salt-and-pepper amount")
    if amount > 1:
        raise ValueError(f"salt-and-pepper amount must be <= 1, got {amount!r}")
    xp = get_array_module(x)
    u = _rng_for(x, rng).random(x.shape, dtype=x.dtype)
    y = xp.where(u < amount / 2, 0, x)
    return xp.where((u >= amount / 2) & (u < amount), 1, y).astype(x.dtype, copy=False)


NOISES: dict[str, Callable[..., Array]] = {
    "gaussian": add_gaussian_noise,
    "salt-pepper": add_salt_and_pepper_noise,
    "speckle": add_speckle_noise,
}


def add_noise(kind: str, x: Array, factor: float, clip: bool = True, rng: Any = None) -> Array:
    """Dispatch on ``kind`` in NOISES ("gaussian", "salt-pepper", "speckle")."""
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r}; expected one of {sorted(NOISES)}")
    return NOISES[kind](x, factor, clip=clip, rng=rng)
