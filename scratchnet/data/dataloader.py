"""Map-style datasets and a DataLoader with PyTorch's names and semantics.

    train = TensorDataset(noisy, clean)              # arrays of one length, any backend
    loader = DataLoader(train, batch_size=64, shuffle=True, seed=0)
    for x, y in loader:                              # a tuple per batch, as the dataset's items
        ...

Batches are stacked on the arrays' backend: a dataset of CuPy arrays gives CuPy batches
and nothing crosses to the host. A ``TensorDataset`` is batched by indexing each array
once per batch (a slice without shuffling), not item by item. Shuffling draws a new
permutation every epoch from ``(seed, epoch)``, as ``BatchLoader`` does, so epoch k is the
same whether or not the run was resumed before it (``loader.epoch`` is settable).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy

from ..backend import default_rng, get_array_module
from ..random import draw_seed

Array = Any

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate"]


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, numpy.generic)


class Dataset:
    """A map-style dataset: ``dataset[i]`` is one example, ``len(dataset)`` the count.

    Subclass it and define ``__getitem__`` and ``__len__``; an item may be an array, a
    number, or a tuple, list or dict of them (``DataLoader`` batches each field).
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(self, index) "
                                  "(and __len__) to be a map-style dataset")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__(self) (and "
                                  "__getitem__) to be a map-style dataset")


class TensorDataset(Dataset):
    """Examples taken along the first axis of one or more arrays of the same length.

    Args:
        tensors: arrays (any backend) whose first dimensions are equal; item ``i`` is
            ``tuple(t[i] for t in tensors)``.

    Attributes:
        tensors: the arrays, as given (not copied).
    """

    def __init__(self, *tensors: Array):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        for i, t in enumerate(tensors):
            if not _is_array(t) or t.ndim == 0:
                raise TypeError(f"TensorDataset: argument {i} must be an array with a first "
                                f"(example) axis, got {type(t).__name__}")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: every array needs the same first dimension (one "
                             f"entry per example), got sizes {sizes}")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Array, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float], seed: int | None = None
                 ) -> list[Subset]:
    """Split a dataset into non-overlapping random subsets (PyTorch's ``random_split``).

    Args:
        dataset: the dataset to split.
        lengths: the subsets' sizes, summing to ``len(dataset)``, or fractions summing to 1
            (each gets ``floor(fraction * len)``; what is left goes one by one to the first
            subsets, as in PyTorch).
        seed: seeds the permutation; None draws one from ``scratchnet.manual_seed``'s
            generator (PyTorch uses its global generator there too).

    Returns:
        One Subset per length.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, numbers.Real) and 0 <= x <= 1 for x in lengths) \
            and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = [math.floor(n * frac) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be counts summing to the "
                         f"dataset's length {n}, or fractions summing to 1")
    order = default_rng(draw_seed() if seed is None else seed).permutation(n)
    out, start = [], 0
    for size in lengths:
        out.append(Subset(dataset, order[start:start + size].tolist()))
        start += size
    return out


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of examples into a batch, field by field.

    Arrays are stacked on their backend (``xp.stack``) into a new leading axis; Python or
    NumPy numbers become a NumPy array (int64, float64, bool); strings stay a list; tuples,
    lists and dicts are batched field by field (a tuple of batches for tuple examples).

    Raises:
        TypeError: an example of a type that cannot be batched (pass ``collate_fn``).
    """
    elem = batch[0]
    if _is_array(elem):
        return get_array_module(elem).stack(batch)
    if isinstance(elem, (bool, numbers.Number, numpy.generic)):
        return numpy.asarray(batch)
    if isinstance(elem, str):
        return list(batch)
    if isinstance(elem, dict):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, (tuple, list)):
        if any(len(e) != len(elem) for e in batch):
            raise ValueError("default_collate: the examples of a batch have different numbers "
                             "of fields")
        fields = [default_collate(list(samples)) for samples in zip(*batch)]
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: cannot batch examples of type {type(elem).__name__}; "
                    "return arrays, numbers or tuples of them from __getitem__, or pass "
                    "collate_fn=")


class DataLoader:
    """Iterate over a map-style dataset in batches (PyTorch's arguments, in its order).

    Args:
        dataset: a `Dataset` (anything with ``__getitem__`` and ``__len__``).
        batch_size: examples per batch.
        shuffle: a new random order every epoch, from ``(seed, epoch)``.
        sampler: instead of ``shuffle``: an iterable of indices giving the order (iterated
            again each epoch).
        batch_sampler: instead of ``batch_size``, ``shuffle``, ``sampler`` and
            ``drop_last``: an iterable of index lists, one per batch.
        num_workers: accepted for PyTorch code and ignored: batches are built in the
            calling process (the arrays are already in memory, on their device).
        collate_fn: turns a list of examples into a batch (default `default_collate`).
        pin_memory: accepted for PyTorch code and ignored.
        drop_last: skip a final batch smaller than ``batch_size``.
        seed: the shuffling seed; None draws one from scratchnet's generator when the
            loader is made, so a script that calls ``scratchnet.manual_seed`` shuffles the
            same way every run (PyTorch's ``generator=`` becomes ``seed=``).

    ``len(loader)`` is the number of batches per epoch; ``loader.epoch`` (settable) picks
    the next epoch's permutation, and each iteration advances it by one.
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool = False,
                 sampler: Iterable[int] | None = None,
                 batch_sampler: Iterable[Sequence[int]] | None = None, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, *, seed: int | None = None):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader: the dataset must be map-style (define __getitem__ "
                            f"and __len__), got {type(dataset).__name__}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler excludes batch_size, shuffle, "
                                 "sampler and drop_last")
            batch_size = None
        elif not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler excludes shuffle (the sampler sets the order)")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.collate_fn = collate_fn
        if seed is None:
            seed = draw_seed() if self.shuffle else 0     # draw only when it is used
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> numpy.ndarray | None:
        """This epoch's order of the examples (None: 0, 1, 2, ...)."""
        if self.sampler is not None:
            return numpy.asarray(list(self.sampler), dtype=numpy.int64)
        if self.shuffle:
            return default_rng((self.seed, self.epoch), "numpy").permutation(len(self.dataset))
        return None

    def __iter__(self) -> Iterator[Any]:
        """Draw this epoch's order (and advance ``epoch``) now; yield its batches."""
        if self.batch_sampler is not None:
            order = None
            batches = [numpy.asarray(list(b), dtype=numpy.int64) for b in self.batch_sampler]
        else:
            order = self._order()
            n = len(self.dataset) if order is None else len(order)
            stop = n - n % self.batch_size if self.drop_last else n
            batches = [slice(lo, min(lo + self.batch_size, n))
                       for lo in range(0, stop, self.batch_size)]
        self.epoch += 1
        return self._generate(order, batches)

    def _generate(self, order: numpy.ndarray | None, batches: list[Any]) -> Iterator[Any]:
        if isinstance(self.dataset, TensorDataset) and self.collate_fn is None:
            tensors = self.dataset.tensors          # one gather per array, on its backend
            on_device = {}
            if order is not None:                   # the order crosses to each backend once
                for t in tensors:
                    xp = get_array_module(t)
                    on_device.setdefault(xp.__name__, xp.asarray(order))
            for b in batches:
                if order is None and isinstance(b, slice):
                    yield tuple(t[b] for t in tensors)
                elif order is None:
                    yield tuple(t[get_array_module(t).asarray(b)] for t in tensors)
                else:
                    yield tuple(t[on_device[get_array_module(t).__name__][b]] for t in tensors)
            return
        collate = self.collate_fn or default_collate
        for b in batches:
            positions = b if order is None else order[b]
            if isinstance(positions, slice):
                positions = range(positions.start, positions.stop)
            yield collate([self.dataset[int(i)] for i in positions])
