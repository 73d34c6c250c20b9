"""Classical denoisers to hold the networks against, each ``f(noisy, sigma) -> image``.

    out = BASELINES["nl-means"](noisy, 25 / 255)       # (H, W) host float image, sigma on [0, 1]

- ``nl-means``: scikit-image's non-local means, 5x5 patches within 13x13, h = 0.8 sigma (the
  setting of scikit-image's own example), given the true sigma;
- ``tv``: scikit-image's total-variation (Chambolle) with weight 0.8 sigma (0.6, 0.8 and 1.0
  tried on Set12 at sigma 25: 27.72 / 28.06 / 27.69 dB);
- ``wavelet``: scikit-image's wavelet shrinkage, BayesShrink, soft thresholds, the true sigma;
- ``bm3d``: BM3D from the ``bm3d`` package (an optional extra: ``pip install -e ".[baselines]"``),
  about 27 s per 256x256 image on one core.

The noise level is known to every method, as to a non-blind network.
"""
from __future__ import annotations

import importlib.util
from typing import Callable

import numpy

__all__ = ["BASELINES", "BM3D_HINT", "available", "denoise_baseline"]

BM3D_HINT = ("BM3D needs the optional 'bm3d' package: pip install -e \".[baselines]\" (or pip "
             "install bm3d)")


def _nl_means(noisy: numpy.ndarray, sigma: float) -> numpy.ndarray:
    from skimage.restoration import denoise_nl_means
    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                            fast_mode=True)


def _tv(noisy: numpy.ndarray, sigma: float) -> numpy.ndarray:
    from skimage.restoration import denoise_tv_chambolle
    return denoise_tv_chambolle(noisy, weight=0.8 * sigma)


def _wavelet(noisy: numpy.ndarray, sigma: float) -> numpy.ndarray:
    from skimage.restoration import denoise_wavelet
    return denoise_wavelet(noisy, sigma=sigma, method="BayesShrink", mode="soft",
                           rescale_sigma=True)


def _bm3d(noisy: numpy.ndarray, sigma: float) -> numpy.ndarray:
    import bm3d
    return numpy.asarray(bm3d.bm3d(noisy, sigma_psd=sigma))


BASELINES: dict[str, Callable[[numpy.ndarray, float], numpy.ndarray]] = {
    "nl-means": _nl_means, "tv": _tv, "wavelet": _wavelet, "bm3d": _bm3d}


def available(name: str) -> bool:
    """False for BM3D when its package is not installed."""
    return name != "bm3d" or importlib.util.find_spec("bm3d") is not None


def denoise_baseline(name: str, noisy: numpy.ndarray, sigma: float) -> numpy.ndarray:
    """``BASELINES[name]`` on a float64 copy of ``noisy`` (sigma on the [0, 1] scale); the
    result as float32."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    if not available(name):
        raise ValueError(BM3D_HINT)
    out = BASELINES[name](numpy.asarray(noisy, dtype=numpy.float64), float(sigma))
    return numpy.asarray(out, dtype=numpy.float32)
