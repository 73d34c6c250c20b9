"""Padding of an image's borders (zeros, reflected, replicated or circular) and its adjoint.

A padded image is a *gather*: every pixel of it is a copy of one pixel of the input, or a
zero. Along one axis of length n, padded position p (``-before <= p < n + after``, 0 the
first input pixel) copies input pixel `source_index` ``(p, n, mode)``:

    reflect     p < 0: -p          p >= n: 2*(n - 1) - p      (the edge pixel is not repeated)
    replicate   p < 0: 0           p >= n: n - 1
    circular    p mod n
    zeros       no source: the pixel is 0

Its gradient is the adjoint, a *scatter-add*: each padded pixel's gradient goes back onto
the pixel it was copied from, so the gradient of a border folds back onto the pixels near
the edge (reflect), onto the edge pixel (replicate) or onto the opposite side (circular):

    dx = gy[inner part]        then, for every border position p:  dx[source(p)] += gy[p]

Both are separable: one axis after the other. The argument ``padding`` is
``(left, right, top, bottom)``, the order of ``torch.nn.functional.pad`` for the last two axes.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op

Array = Any
Pads = tuple[int, int, int, int]

__all__ = ["pad", "pad_backward", "source_index", "padding_problem", "PADDING_MODES"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def source_index(p: int, n: int, mode: str) -> int:
    """The input pixel (0 .. n - 1) that padded position ``p`` copies, along an axis of n."""
    if 0 <= p < n:
        return p
    if mode == "reflect":
        return -p if p < 0 else 2 * (n - 1) - p
    if mode == "replicate":
        return 0 if p < 0 else n - 1
    return p % n                                                        # circular


def padding_problem(size: tuple[int, int], padding: Pads, mode: str) -> str | None:
    """What is wrong with padding an (H, W) image by ``padding`` in ``mode``, or None.

    As in PyTorch: reflect padding must be smaller than the size it reflects, circular
    padding at most that size (one wrap), and the mode one of `PADDING_MODES`.
    """
    if mode not in PADDING_MODES:
        return (f"mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
                f"got {mode!r}")
    if len(padding) != 4 or any(not isinstance(p, int) or p < 0 for p in padding):
        return f"padding must be 4 ints >= 0 (left, right, top, bottom), got {padding!r}"
    (H, W), (left, right, top, bottom) = size, padding
    if mode == "reflect" and (max(left, right) >= W or max(top, bottom) >= H):
        return (f"reflect padding {padding} must be smaller than the input size ({H}, {W}) "
                "on each side")
    if mode == "circular" and (max(left, right) > W or max(top, bottom) > H):
        return (f"circular padding {padding} must be at most the input size ({H}, {W}) "
                "on each side")
    return None


def _check(x: Array, padding: Pads, mode: str, name: str) -> None:
    problem = padding_problem(tuple(x.shape[-2:]), tuple(padding), mode)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")


def _sources(n: int, before: int, after: int, mode: str) -> list[int]:
    return [source_index(p, n, mode) for p in range(-before, n + after)]


@op
def pad(x: Array, padding: Pads, mode: str = "zeros") -> Array:
    """Pad the last two axes of ``x``.

    Args:
        x: (N, C, H, W).
        padding: (left, right, top, bottom), ints >= 0.
        mode: 'zeros', 'reflect', 'replicate' or 'circular' (see the module docstring).

    Returns:
        (N, C, H + top + bottom, W + left + right), x's dtype.

    Raises:
        ValueError: an unknown mode, or a reflect (circular) padding of at least (more than)
            the input's size.
    """
    _check(x, padding, mode, "pad")
    xp = get_array_module(x)
    N, C, H, W = x.shape
    left, right, top, bottom = padding
    if mode == "zeros":
        y = xp.zeros((N, C, H + top + bottom, W + left + right), dtype=x.dtype)
        y[:, :, top:top + H, left:left + W] = x
        return y
    rows = xp.asarray(_sources(H, top, bottom, mode))
    cols = xp.asarray(_sources(W, left, right, mode))
    return x[:, :, rows][:, :, :, cols]                      # y[..., p, q] = x[..., src(p), src(q)]


def _fold(g: Array, axis: int, n: int, before: int, after: int, mode: str) -> Array:
    """The adjoint of padding one axis: ``g``'s inner n positions, plus every border position
    added onto its source pixel."""
    def at(k: int | slice) -> tuple[Any, ...]:
        return (slice(None),) * axis + (k,)
    out = g[at(slice(before, before + n))].copy()
    for p in [*range(-before, 0), *range(n, n + after)]:
        out[at(source_index(p, n, mode))] += g[at(p + before)]
    return out


@op
def pad_backward(gy: Array, padding: Pads, mode: str = "zeros") -> Array:
    """Gradient of `pad`: dL/dx from dL/dy.

    Args:
        gy: (N, C, H + top + bottom, W + left + right), the upstream gradient.
        padding: (left, right, top, bottom), as given to `pad`.
        mode: as given to `pad`.

    Returns:
        dx, (N, C, H, W): for zeros the inner part of gy; otherwise that plus every border
        pixel's gradient added onto the pixel it copied (one axis, then the other).
    """
    left, right, top, bottom = padding
    H, W = gy.shape[2] - top - bottom, gy.shape[3] - left - right
    if mode == "zeros":
        return gy[:, :, top:top + H, left:left + W]
    return _fold(_fold(gy, 3, W, left, right, mode), 2, H, top, bottom, mode)
