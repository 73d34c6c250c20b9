"""Mini-batches of images that already live on the device (moved there once)."""
from __future__ import annotations

import math
from typing import Any, Iterator

from ..backend import default_rng, get_array_module

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
