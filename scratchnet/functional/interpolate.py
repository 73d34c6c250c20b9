"""Resizing (N, C, H, W) images: nearest-neighbour and bilinear interpolation, PyTorch's
`F.interpolate`, and its backward pass.

Both modes are linear maps that act on each axis separately: an output row is a fixed
combination of input rows, and the same for columns. Written as matrices, ``A_H`` of shape
(OH, H) and ``A_W`` of shape (OW, W), one image plane is resized as

    y = A_H @ x @ A_W.T            and so its backward is the adjoint    dx = A_H.T @ gy @ A_W

A row of ``A`` holds one 1 (nearest: the source pixel ``floor(o * scale)``) or two weights
``1 - l`` and ``l`` (bilinear: the two pixels around the source position ``src`` of output
index o, ``l = src - floor(src)``), where PyTorch's source positions are

    align_corners=False:  src = max((o + 0.5) * scale - 0.5, 0),  scale = H / OH  (1 / scale_factor when given)
    align_corners=True:   src = o * (H - 1) / (OH - 1)            (the corner pixels' centres line up)

The matrices cost ``O(H)`` multiply-adds per output entry and axis, against 2 for a gather:
fine for the feature maps of the models here; a NaN or an infinity in x spreads along its
row and column (0 times NaN is NaN), where PyTorch's gather keeps it local. Nearest
upsampling by integer factors runs `upsample_nearest` (a block repeat) instead.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from ..backend import get_array_module
from ..ops import op
from .pool import upsample_nearest, upsample_nearest_backward

Array = Any
Pair = tuple[int, int]

__all__ = ["interpolate", "interpolate_backward", "interpolate_args", "interpolate_output_size",
           "interpolation_matrix", "MODES"]

MODES = ("nearest", "bilinear")


def interpolate_args(size: Any, scale_factor: Any, mode: str, align_corners: bool | None,
                     who: str = "interpolate"
                     ) -> tuple[Pair | None, tuple[float, float] | None, bool]:
    """Check `interpolate`'s arguments; return them as pairs, and align_corners as a bool.

    Raises:
        ValueError: an unknown mode, both or neither of size and scale_factor, a size or a
            scale factor that is not positive, or align_corners given for 'nearest'.
    """
    if mode not in MODES:
        raise ValueError(f"{who}: mode {mode!r} is not supported; expected one of "
                         + ", ".join(repr(m) for m in MODES))
    if align_corners is not None and not isinstance(align_corners, bool):
        raise ValueError(f"{who}: align_corners must be None, True or False, got {align_corners!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{who}: align_corners can only be set with mode 'bilinear' "
                         f"(mode 'nearest' has no corners to align); leave it None")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{who}: give exactly one of size and scale_factor, got "
                         f"size={size!r} and scale_factor={scale_factor!r}")
    if size is not None:
        pair = (size, size) if isinstance(size, int) else tuple(size)
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                     for v in pair):
            raise ValueError(f"{who}: size must be a positive int or a pair of positive ints "
                             f"(OH, OW), got {size!r}")
        return pair, None, bool(align_corners)
    is_number = isinstance(scale_factor, numbers.Real) and not isinstance(scale_factor, bool)
    scale = (scale_factor, scale_factor) if is_number else tuple(scale_factor)
    if len(scale) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                  and math.isfinite(v) and v > 0 for v in scale):
        raise ValueError(f"{who}: scale_factor must be a positive number or a pair of positive "
                         f"numbers, got {scale_factor!r}")
    return None, (float(scale[0]), float(scale[1])), bool(align_corners)


def interpolate_output_size(in_size: Pair, size: Pair | None, scale: tuple[float, float] | None,
                            who: str = "interpolate") -> Pair:
    """(OH, OW): ``size``, or ``floor(H * scale_h), floor(W * scale_w)`` as in PyTorch.

    Raises:
        ValueError: the output would be empty.
    """
    if size is not None:
        return size
    out = (math.floor(in_size[0] * scale[0]), math.floor(in_size[1] * scale[1]))
    if min(out) < 1:
        raise ValueError(f"{who}: scale_factor {scale} turns the input size {tuple(in_size)} "
                         f"into {out}; the output must be at least 1 x 1")
    return out


def _integer_factors(in_size: Pair, out_size: Pair, scale: tuple[float, float] | None
                     ) -> Pair | None:
    """(SH, SW) when nearest resizing is a block repeat by those integers, else None."""
    factors = tuple(o // i for i, o in zip(in_size, out_size))
    if any(o != f * i for i, o, f in zip(in_size, out_size, factors)):
        return None
    if scale is not None and tuple(scale) != tuple(float(f) for f in factors):
        return None                     # e.g. 2 -> 4 pixels at scale 2.4: floor(o / 2.4)
    return factors


def interpolation_matrix(n_in: int, n_out: int, mode: str, align_corners: bool,
                         scale: float | None, like: Array) -> Array:
    """The (n_out, n_in) matrix ``A`` of one axis (module docstring), in like's dtype and
    on its backend.

    Args:
        n_in: the input's length along the axis.
        n_out: the output's.
        mode: 'nearest' or 'bilinear'.
        align_corners: see the module docstring (bilinear only).
        scale: the scale factor given for this axis, or None (then ``n_in / n_out`` is used).
        like: an array whose dtype and backend the matrix takes.
    """
    xp = get_array_module(like)
    columns = xp.arange(n_in)[None, :]
    if mode == "nearest":
        # PyTorch computes the source index in float32, whatever the input's dtype
        step = xp.float32(1.0 / scale) if scale is not None else xp.float32(n_in) / xp.float32(n_out)
        src = (xp.arange(n_out, dtype=xp.float32) * step).astype(xp.int64)   # >= 0: floor
        return (columns == xp.minimum(src, n_in - 1)[:, None]).astype(like.dtype)
    o = xp.arange(n_out, dtype=like.dtype)
    if align_corners:
        src = o * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        step = 1.0 / scale if scale is not None else n_in / n_out
        src = xp.maximum((o + 0.5) * step - 0.5, 0)
    i0 = xp.minimum(src.astype(xp.int64), n_in - 1)                      # src >= 0: floor
    i1 = xp.minimum(i0 + 1, n_in - 1)
    frac = xp.clip(src - i0.astype(like.dtype), 0, 1)[:, None]      # int64 would upcast
    return (1 - frac) * (columns == i0[:, None]) + frac * (columns == i1[:, None])


def _matrices(in_size: Pair, out_size: Pair, scale: tuple[float, float] | None, mode: str,
              align_corners: bool, like: Array) -> tuple[Array, Array]:
    scales = (None, None) if scale is None else scale
    return tuple(interpolation_matrix(i, o, mode, align_corners, s, like)
                 for i, o, s in zip(in_size, out_size, scales))


@op
def interpolate(x: Array, size: int | Pair | None = None,
                scale_factor: float | tuple[float, float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None) -> Array:
    """Resize images to ``size`` or by ``scale_factor`` (PyTorch's ``F.interpolate``).

    Args:
        x: (N, C, H, W).
        size: (OH, OW), or one int for both.
        scale_factor: a number or a pair; then ``OH = floor(H * scale_h)``, and the source
            positions use this factor, as in PyTorch. Give size or scale_factor, not both.
        mode: 'nearest' (PyTorch's 'nearest': source index ``floor(o * H / OH)``) or
            'bilinear'.
        align_corners: bilinear only; None means False.

    Returns:
        y, (N, C, OH, OW).

    Raises:
        ValueError: x is not 4-D, or an argument is invalid (`interpolate_args`).
    """
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"interpolate: expected input of shape (N, C, H, W), got "
                         f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
    size, scale, align_corners = interpolate_args(size, scale_factor, mode, align_corners)
    in_size = tuple(x.shape[2:])
    out_size = interpolate_output_size(in_size, size, scale)
    factors = _integer_factors(in_size, out_size, scale) if mode == "nearest" else None
    if factors is not None:
        return upsample_nearest(x, factors)
    a_h, a_w = _matrices(in_size, out_size, scale, mode, align_corners, x)
    N, C, H, W = x.shape
    rows = (x.reshape(-1, W) @ a_w.T).reshape(N, C, H, out_size[1])     # x @ A_W.T
    return a_h @ rows                                                   # A_H @ x @ A_W.T


@op
def interpolate_backward(gy: Array, input_size: Pair,
                         scale_factor: float | tuple[float, float] | None = None,
                         mode: str = "nearest", align_corners: bool | None = None) -> Array:
    """dL/dx of `interpolate`, the adjoint of its resizing.

    Args:
        gy: (N, C, OH, OW), the upstream gradient.
        input_size: (H, W) of the forward pass's input.
        scale_factor: the forward pass's (None when it was given a size).
        mode: its mode.
        align_corners: its align_corners.

    Returns:
        dx, (N, C, H, W).

    Math: ``y = A_H @ x @ A_W.T`` per image plane, linear in x, so
    ``dx = A_H.T @ gy @ A_W``: each output's gradient goes back to the input pixels it was
    made of, with the same weights, and adds up where they are shared.
    """
    _, scale, align_corners = interpolate_args(None if scale_factor is not None else
                                               tuple(gy.shape[2:]), scale_factor, mode,
                                               align_corners)
    in_size, out_size = tuple(input_size), tuple(gy.shape[2:])
    factors = _integer_factors(in_size, out_size, scale) if mode == "nearest" else None
    if factors is not None:
        return upsample_nearest_backward(gy, factors)
    a_h, a_w = _matrices(in_size, out_size, scale, mode, align_corners, gy)
    N, C, H, W = gy.shape[:2] + in_size
    cols = a_h.T @ gy                                                    # A_H.T @ gy
    return (cols.reshape(-1, out_size[1]) @ a_w).reshape(N, C, H, W)     # ... @ A_W
