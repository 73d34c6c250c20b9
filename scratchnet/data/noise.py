"""Seeded corruption of images in [0, 1], on any backend, and `NoiseSpec`: the one
description of a run's noise that its config and checkpoint carry and every program reads back.

    noisy = add_gaussian_noise(x, 0.5, rng=default_rng(0, "numpy"))   # x + 0.5*N(0,1), clipped
    spec = NoiseSpec.from_sigma(25)                # photos: sigma 25 of 255, not clipped

Clipping to [0, 1] is on by default for the digits (the convention of the original projects)
and off for photographs (the denoising benchmark's protocol); it changes every metric, so it is
stated wherever a result is reported.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy

from ..backend import backend_name, default_rng, get_array_module
from ..nn._checks import is_finite_number, is_integer
from ..ops import op

Array = Any

__all__ = ["add_gaussian_noise", "add_salt_and_pepper_noise", "add_speckle_noise", "add_noise",
           "NOISES", "NoiseSpec"]


def _rng_for(x: Array, rng: Any) -> Any:
    return default_rng(None, backend_name(x)) if rng is None else rng


def _check_factor(factor: float, name: str) -> None:
    if not factor >= 0:
        raise ValueError(f"{name} must be >= 0, got {factor!r}")


def add_gaussian_noise(x: Array, factor: float, clip: bool = True, rng: Any = None) -> Array:
    """``x + factor * N(0, 1)``, clipped to [0, 1] when ``clip``; same shape, dtype, backend."""
    _check_factor(factor, "noise factor")
    noise = _rng_for(x, rng).standard_normal(x.shape, dtype=x.dtype)
    return add_scaled_noise(x, noise, factor, clip)


@op
def add_scaled_noise(x: Array, noise: Array, factor: float, clip: bool) -> Array:
    """``x + factor * noise``, clipped to [0, 1] when ``clip`` (one kernel on CuPy)."""
    y = x + factor * noise
    return get_array_module(x).clip(y, 0, 1) if clip else y


def add_speckle_noise(x: Array, factor: float, clip: bool = True, rng: Any = None) -> Array:
    """Multiplicative noise ``x * (1 + factor * N(0, 1))``, clipped to [0, 1] when ``clip``."""
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


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """The noise of a run: what training adds to every batch and what the fixed test set holds.

    Args:
        kind: "gaussian", "salt-pepper" or "speckle" (see NOISES).
        factor: the strength on the images' [0, 1] scale: Gaussian noise's standard deviation
            (a photo's sigma on the 0-255 scale is ``255 * factor``), speckle's factor,
            salt-and-pepper's fraction of pixels.
        factor_range: ``(low, high)`` for blind training: every training image gets its own
            factor drawn uniformly from the range (Gaussian only); ``factor`` is then the
            level a single-level report uses.
        clip: clip noisy images to [0, 1] (the digits' convention; photos are not clipped).
        test_seed: the fixed noisy test set's seed.
    """
    kind: str = "gaussian"
    factor: float = 0.5
    factor_range: tuple[float, float] | None = None
    clip: bool = True
    test_seed: int = 1234

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in NOISES:
            raise ValueError(f"unknown noise {self.kind!r}; expected one of {sorted(NOISES)}")
        if not is_finite_number(self.factor):
            raise ValueError(f"noise factor must be a finite number >= 0, got {self.factor!r}")
        _check_factor(self.factor, "noise factor")
        if self.kind == "salt-pepper" and self.factor > 1:
            raise ValueError(f"salt-pepper takes a fraction <= 1 (of the pixels), got {self.factor!r}")
        if not isinstance(self.clip, bool):
            raise ValueError(f"noise clip must be true or false, got {self.clip!r}")
        if not is_integer(self.test_seed) or self.test_seed < 0:
            raise ValueError(f"noise test_seed must be an integer >= 0, got {self.test_seed!r}")
        if self.factor_range is not None:
            if (not isinstance(self.factor_range, (tuple, list)) or len(self.factor_range) != 2
                    or not all(is_finite_number(v) for v in self.factor_range)):
                raise ValueError(f"noise range must be two finite numbers, got {self.factor_range!r}")
            lo, hi = self.factor_range
            if self.kind != "gaussian":
                raise ValueError(f"a noise range is for Gaussian noise only, not {self.kind!r}")
            if not 0 <= lo <= hi:
                raise ValueError(f"noise range must satisfy 0 <= low <= high, got ({lo}, {hi})")
            object.__setattr__(self, "factor_range", (float(lo), float(hi)))

    @classmethod
    def from_sigma(cls, sigma: float | None = None, sigma_range: Sequence[float] | None = None,
                   test_seed: int = 1234) -> "NoiseSpec":
        """Unclipped Gaussian noise of ``sigma`` on the 0-255 scale, or blind over
        ``sigma_range`` (reported at the range's middle unless ``sigma`` is given)."""
        if sigma_range is not None:
            lo, hi = sigma_range
            level = (lo + hi) / 2 if sigma is None else sigma
            return cls("gaussian", level / 255, (lo / 255, hi / 255), False, test_seed)
        return cls("gaussian", (25 if sigma is None else sigma) / 255, None, False, test_seed)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "NoiseSpec":
        """The spec a saved run configuration holds: ``config["noise"]`` as a dict, or the flat
        ``noise``, ``noise_factor``, ``clip``, ``test_seed`` keys of older checkpoints."""
        noise = config.get("noise", "gaussian")
        if isinstance(noise, dict):
            values = {k: noise[k] for k in noise if k in cls.__dataclass_fields__}
            if values.get("factor_range") is not None:
                values["factor_range"] = tuple(values["factor_range"])
            return cls(**values)
        return cls(noise, float(config.get("noise_factor", 0.5)), None,
                   bool(config.get("clip", True)), int(config.get("test_seed", 1234)))

    @property
    def blind(self) -> bool:
        return self.factor_range is not None

    @property
    def sigma(self) -> float:
        """The (report) level on the 0-255 scale of 8-bit photos."""
        return 255 * self.factor

    def at(self, factor: float) -> "NoiseSpec":
        """The same noise at one fixed level (how a test set at that level is drawn)."""
        return dataclasses.replace(self, factor=float(factor), factor_range=None)

    def describe(self, scale: str = "factor") -> str:
        """In words, e.g. "gaussian x0.5 (clipped to [0, 1])" or, with scale="sigma",
        "gaussian sigma 0-55 (blind; unclipped)"."""
        if scale == "sigma":
            level = (f"sigma {255 * self.factor_range[0]:g}-{255 * self.factor_range[1]:g} (blind"
                     if self.blind else f"sigma {self.sigma:g} (")
        else:
            level = (f"x{self.factor_range[0]:g}-{self.factor_range[1]:g} (blind"
                     if self.blind else f"x{self.factor:g} (")
        sep = "; " if self.blind else ""
        return f"{self.kind} {level}{sep}{'clipped to [0, 1]' if self.clip else 'unclipped'})"

    def apply(self, x: Array, rng: Any) -> Array:
        """Training noise for the batch ``x`` (N, C, H, W) from ``rng`` (a generator on x's
        backend). Blind: one factor per image, uniform over the range, drawn first."""
        if not self.blind:
            return add_noise(self.kind, x, self.factor, self.clip, rng)
        lo, hi = self.factor_range
        factors = rng.uniform(lo, hi, (len(x),) + (1,) * (x.ndim - 1)).astype(x.dtype)
        y = x + factors * rng.standard_normal(x.shape, dtype=x.dtype)
        return get_array_module(x).clip(y, 0, 1) if self.clip else y

    def test_batch(self, clean: numpy.ndarray) -> numpy.ndarray:
        """The fixed noisy test set of equally sized images (the digits): one host stream
        from ``test_seed`` for the whole array, at the spec's fixed level."""
        return add_noise(self.kind, clean, self.factor, self.clip, default_rng(self.test_seed, "numpy"))

    def test_image(self, clean: numpy.ndarray, index: int) -> numpy.ndarray:
        """The fixed noisy version of test image ``index`` (a photo, any size, on the host):
        its own stream ``(test_seed, index)``, so every image's noise is the same whichever
        others are scored with it, and a level only scales the same draws (Gaussian)."""
        clean = numpy.asarray(clean)
        rng = default_rng((self.test_seed, index), "numpy")
        if self.kind == "gaussian":
            noise = (self.factor * rng.standard_normal(clean.shape)).astype(clean.dtype)
            y = clean + noise
            return numpy.clip(y, 0, 1) if self.clip else y
        return add_noise(self.kind, clean, self.factor, self.clip, rng)
