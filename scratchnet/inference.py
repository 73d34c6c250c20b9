"""Denoising whole images of any size with a fully convolutional model, tile by tile.

    out = denoise_image(model, noisy)                  # (H, W) host array in, (H, W) out
    out = denoise_color(model, noisy_rgb, "channels")  # (H, W, 3): each channel on its own

A model says what it can take ([`scratchnet.models`](models.md)): ``receptive_radius`` (an output
pixel depends on the inputs at most that many pixels away) and ``size_multiple``. An image
whose sides are not multiples of ``size_multiple`` (the U-Net's 4) is reflect-padded at the
bottom and right and the output cropped back. A large image goes through in tiles: each tile
is read with a margin of at least the receptive radius around the part of it that is kept, so
every kept output pixel saw exactly what it would have seen in one pass over the whole image
(tiled and untiled agree to float rounding, tested to 1e-5), while memory stays that of one
tile. Tile corners and margins are multiples of ``size_multiple``, so the U-Net's pooling grid
is the same in every tile.
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from .backend import get_array_module, get_backend, to_numpy
from .nn import Module, eval_mode, no_grad

Array = Any

__all__ = ["TILE", "MIN_SIDE", "ImageTooSmall", "check_fits", "pad_to_multiple", "denoise_image",
           "denoise_color", "COLOR_MODES", "luminance_weights"]

TILE = 512           # side of the kept part of a tile (pixels): about 40 MB of activations per
                     # layer for a width-32 DnCNN; images up to 512x512 go through in one pass
MIN_SIDE = 8         # images smaller than this on either side are refused
COLOR_MODES = ("channels", "luminance")


class ImageTooSmall(ValueError):
    """The image is smaller than a model can take."""


def check_fits(model: Module, shape: tuple[int, ...]) -> None:
    """Raise ValueError (one line) unless ``model`` can denoise an image of ``shape``
    ((H, W) or (H, W, C)) at its own size."""
    if model_radius(model) is None:
        raise ValueError(f"the model '{type(model).__name__}' takes 28x28 digits only, not "
                         "images at their own size")
    H, W = shape[:2]
    if min(H, W) < MIN_SIDE:
        raise ImageTooSmall(f"the image is {W}x{H} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    want = getattr(model, "channels", 1)
    have = shape[2] if len(shape) == 3 else 1
    if want != 1 and want != have:
        raise ValueError(f"the model takes {want}-channel images, this one has {have} "
                         f"channel{'s' if have != 1 else ''}")


def model_radius(model: Module) -> int | None:
    return getattr(model, "receptive_radius", None)


def pad_to_multiple(x: Array, multiple: int) -> Array:
    """Reflect-pad the last two axes of ``x`` at the bottom and right up to multiples of
    ``multiple`` (unchanged when they are already)."""
    xp = get_array_module(x)
    H, W = x.shape[-2:]
    ph, pw = -H % multiple, -W % multiple
    if not ph and not pw:
        return x
    return xp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="reflect")


def _spans(size: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(read_start, read_stop, keep_start, keep_stop) along one axis."""
    return [(max(0, lo - margin), min(size, lo + tile + margin), lo, min(size, lo + tile))
            for lo in range(0, size, tile)]


def denoise_image(model: Module, image: Array, tile: int = TILE) -> numpy.ndarray:
    """``model`` applied to one image at its own size, in eval mode and under no_grad.

    Args:
        model: a fully convolutional model taking (N, C, H, W) (``receptive_radius`` set).
        image: (H, W) or (C, H, W) array on the host or the model's device, values in [0, 1]
            (noisy images may stray outside).
        tile: the side of the part of each tile that is kept (rounded up to the model's
            ``size_multiple``); images no larger than ``tile`` x ``tile`` go in one pass.

    Returns:
        The denoised image, same shape, as a float32 (the model's dtype) host array.
    """
    radius = model_radius(model)
    if radius is None:
        raise ValueError(f"denoise_image: the model '{type(model).__name__}' is not fully "
                         "convolutional (it takes 28x28 digits only)")
    xp = get_backend(model.backend)
    x = xp.asarray(image).astype(model.dtype, copy=False)
    squeeze = x.ndim == 2
    x = x[None] if squeeze else x
    C, H, W = x.shape
    m = model.size_multiple
    x = pad_to_multiple(x, m)
    Hp, Wp = x.shape[-2:]
    tile = math.ceil(max(tile, 1) / m) * m
    margin = math.ceil(radius / m) * m
    out = xp.empty_like(x)
    with eval_mode(model), no_grad():
        if Hp <= tile and Wp <= tile:
            out = model(x[None])[0]
        else:
            for r0, r1, k0, k1 in _spans(Hp, tile, margin):
                for c0, c1, l0, l1 in _spans(Wp, tile, margin):
                    y = model(xp.ascontiguousarray(x[None, :, r0:r1, c0:c1]))[0]
                    out[:, k0:k1, l0:l1] = y[:, k0 - r0:k1 - r0, l0 - c0:l1 - c0]
    out = to_numpy(out[:, :H, :W])
    return out[0] if squeeze else out


def luminance_weights() -> numpy.ndarray:
    """ITU-R BT.601 luma weights of R, G, B (those of JPEG's YCbCr)."""
    return numpy.array([0.299, 0.587, 0.114])


def denoise_color(model: Module, image: numpy.ndarray, mode: str = "channels",
                  tile: int = TILE) -> numpy.ndarray:
    """Denoise an (H, W, C) host image with a grayscale model.

    Args:
        mode: "channels": every channel denoised on its own; "luminance": only the luma
            ``Y = 0.299 R + 0.587 G + 0.114 B`` is denoised and the change in it added to every
            channel (the colour differences R - Y, B - Y are kept as they are).
    """
    if mode not in COLOR_MODES:
        raise ValueError(f"unknown colour mode {mode!r}; expected one of {COLOR_MODES}")
    image = numpy.asarray(image)
    if mode == "channels":
        return numpy.stack([denoise_image(model, image[..., c], tile)
                            for c in range(image.shape[-1])], axis=-1)
    rgb = image[..., :3]
    y = (rgb @ luminance_weights()).astype(image.dtype)
    dy = denoise_image(model, y, tile) - y
    out = image.copy()
    out[..., :3] += dy[..., None]
    return out
