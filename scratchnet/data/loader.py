"""Mini-batches of images that already live on the device (moved there once): whole images
(`BatchLoader`) or random patches of them (`PatchLoader`)."""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy
from PIL import Image

from ..backend import default_rng, get_array_module, to_numpy

Array = Any


class BatchLoader:
    """Iterate over ``images`` in batches, optionally shuffled.

    Args:
        images: (N, ...) array on any backend; batches are slices/gathers of it on the same
            device, so no data crosses the host-device boundary per batch.
        batch_size: images per batch (the last one may be smaller unless ``drop_last``).
        shuffle: a new permutation every epoch, drawn from ``(seed, epoch)``, so epoch k of
            a run is the same whether or not the run was resumed before it.
        seed: the shuffling seed.  drop_last: skip a final incomplete batch.

    ``loader.epoch`` (settable) selects the permutation; iterating advances it by one.
    """

    def __init__(self, images: Array, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.images, self.batch_size = images, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.images) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def __iter__(self) -> Iterator[Array]:
        xp = get_array_module(self.images)
        n = len(self.images)
        order = None
        if self.shuffle:
            order = xp.asarray(default_rng((self.seed, self.epoch), "numpy").permutation(n))
        self.epoch += 1
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            yield self.images[lo:hi] if order is None else self.images[order[lo:hi]]


class PatchLoader:
    """Random square patches of a set of equally sized images, each under one of the 8 flips
    and rotations of the square, drawn afresh for every batch (DnCNN's training data).

    Args:
        images: (N, H, W) array on any backend (the training images, moved there once).
        patch_size: P, the side of a patch (DnCNN: 40).
        batch_size: patches per batch (every batch is full).
        patches_per_image: an epoch is ``ceil(N * patches_per_image / batch_size)`` batches.
        seed: batch b of epoch e draws its image indices, corners and transforms from the
            host stream ``(seed, e, b, 1)``, so it is the same batch whether the run was
            resumed or not, on NumPy and CuPy alike.
        scales: the images are also offered resized by each of these factors (Pillow's
            bicubic, clipped to [0, 1]; 1.0 is the images themselves), as the DnCNN
            authors' training code cuts patches at scales 1, 0.9, 0.8 and 0.7. A patch picks
            its scale with a probability proportional to the number of patch positions
            there, so every (scale, position) pair is equally likely. With the default
            ``(1.0,)`` no scale is drawn and the batches are those of a loader without it.

    A patch is one gather from a (P, P) grid of source coordinates: the crop transposed when
    bit 0 of the transform is set, then flipped top-bottom for bit 1 and left-right for bit 2
    (those three generate all 8 symmetries of the square). On the grid that reads backwards:
    the flips act on the output coordinates first, the transpose swaps them last.
    Batches are (B, 1, P, P); ``loader.epoch`` (settable) selects the epoch, iterating
    advances it by one.
    """

    def __init__(self, images: Array, patch_size: int, batch_size: int, patches_per_image: int,
                 seed: int = 0, scales: Sequence[float] = (1.0,)):
        for name, value in (("patch_size", patch_size), ("batch_size", batch_size),
                            ("patches_per_image", patches_per_image)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if getattr(images, "ndim", 0) != 3:
            raise ValueError(f"PatchLoader: images must be one (N, H, W) array, got shape "
                             f"{getattr(images, 'shape', None)}")
        N, H, W = images.shape
        if patch_size > min(H, W):
            raise ValueError(f"patch_size {patch_size} is larger than the images ({H}x{W})")
        self.scales = _check_scales(scales, patch_size, H, W)
        self.images, self.patch_size, self.batch_size = images, patch_size, batch_size
        self.patches_per_image, self.seed = patches_per_image, seed
        self.epoch = 0
        # one flat buffer of every scale's (N, Hs, Ws) stack, and where each one starts
        self.sizes = numpy.array([_scaled(H, W, s) for s in self.scales])      # (S, 2)
        self._flat, self._start = _stack_scales(images, self.scales, self.sizes)
        positions = numpy.prod(self.sizes - patch_size + 1, axis=1)
        self._weights = positions / positions.sum()

    def __len__(self) -> int:
        return math.ceil(len(self.images) * self.patches_per_image / self.batch_size)

    def indices(self, epoch: int, b: int) -> tuple:
        """(image index, top, left, transform, scale index) of each patch of batch ``b`` of
        ``epoch`` (host arrays of length batch_size; top and left on the patch's scale)."""
        N = len(self.images)
        P, B = self.patch_size, self.batch_size
        r = default_rng((self.seed, epoch, b, 1), "numpy")
        if len(self.scales) == 1:          # the draws of a loader without scales
            scale = numpy.zeros(B, dtype=numpy.int64)
            (H, W), size = self.sizes[0], B
        else:
            scale = r.choice(len(self.scales), B, p=self._weights)
            H, W, size = self.sizes[scale, 0], self.sizes[scale, 1], None
        return (r.integers(0, N, B), r.integers(0, H - P + 1, size), r.integers(0, W - P + 1, size),
                r.integers(0, 8, B), scale)

    def batch(self, epoch: int, b: int) -> Array:
        """Batch ``b`` of ``epoch`` as (B, 1, P, P) on the images' backend."""
        xp = get_array_module(self.images)
        P = self.patch_size
        image, top, left, mode, scale = self.indices(epoch, b)
        H, W = (self.sizes[scale, k][:, None, None] for k in (0, 1))
        rr, cc = numpy.meshgrid(numpy.arange(P), numpy.arange(P), indexing="ij")
        bit = [((mode >> k) & 1).astype(bool)[:, None, None] for k in range(3)]
        rr = numpy.where(bit[1], P - 1 - rr, rr)                 # flip top-bottom
        cc = numpy.where(bit[2], P - 1 - cc, cc)                 # flip left-right
        rr, cc = numpy.where(bit[0], cc, rr), numpy.where(bit[0], rr, cc)    # transpose
        image, top, left, start = (v[:, None, None] for v in (image, top, left, self._start[scale]))
        flat = start + (image * H + top + rr) * W + left + cc
        return self._flat[xp.asarray(flat)][:, None]

    def __iter__(self) -> Iterator[Array]:
        epoch = self.epoch
        self.epoch += 1
        for b in range(len(self)):
            yield self.batch(epoch, b)


def _scaled(H: int, W: int, scale: float) -> tuple[int, int]:
    return round(H * scale), round(W * scale)


def _check_scales(scales: Sequence[float], P: int, H: int, W: int) -> tuple[float, ...]:
    try:
        scales = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of numbers, got {scales!r}") from None
    if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
        raise ValueError(f"scales must be one or more positive factors, got {scales!r}")
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales must differ from each other, got {scales!r}")
    for s in scales:
        h, w = _scaled(H, W, s)
        if min(h, w) < P:
            raise ValueError(f"scale {s:g} makes the {H}x{W} images {h}x{w}, smaller than "
                             f"the {P}x{P} patches")
    return scales


def _stack_scales(images: Array, scales: tuple[float, ...], sizes: numpy.ndarray) -> tuple:
    """Every scale's resized stack, flattened into one buffer on the images' backend, and
    each stack's start in it (host int64)."""
    xp = get_array_module(images)
    if scales == (1.0,):
        return images.reshape(-1), numpy.zeros(1, dtype=numpy.int64)
    host = numpy.asarray(to_numpy(images), dtype=numpy.float32)      # Pillow resizes float32
    parts = []
    for s, (h, w) in zip(scales, sizes):
        if s == 1:
            parts.append(images.reshape(-1))
            continue
        resized = numpy.stack([numpy.asarray(Image.fromarray(x, mode="F").resize(
            (int(w), int(h)), Image.BICUBIC)) for x in host])
        parts.append(xp.asarray(numpy.clip(resized, 0, 1).reshape(-1)).astype(images.dtype))
    start = numpy.cumsum([0] + [p.size for p in parts[:-1]]).astype(numpy.int64)
    return xp.concatenate(parts), start
