"""Seeded random streams: the generator that initialises weights, and per-purpose generators
on either backend (noise, shuffling, gradcheck's draws).

    scratchnet.manual_seed(0)                  # the weights of every layer built next
    rng = default_rng((seed, epoch), "cupy")   # one independent stream per (seed, epoch)

Weights are always drawn on the host from one NumPy generator and then moved, so the same
seed gives bit-identical initial weights on CPU and GPU.

(Inside the package this module is ``scratchnet.random``; it is always imported by that
full name or relatively, never as a bare ``random``, which is Python's own module.)
"""
from __future__ import annotations

import types
from typing import Any

import numpy

from .backend import get_backend

__all__ = ["manual_seed", "init_rng", "default_rng", "draw_seed"]

_init_rng = numpy.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises new layers' weights (like ``torch.manual_seed``)."""
    global _init_rng
    _init_rng = numpy.random.default_rng(seed)


def init_rng() -> numpy.random.Generator:
    """The host generator used for weight initialisation."""
    return _init_rng


def draw_seed() -> int:
    """A seed for a stream of its own (a loader's shuffling, a dropout layer's masks), drawn
    from the host generator, so that ``manual_seed`` fixes it too."""
    return int(_init_rng.integers(2 ** 63))


def default_rng(seed: int | tuple[int, ...] | None = None,
                backend: str | types.ModuleType = "numpy") -> Any:
    """A seeded ``Generator`` that draws directly on the given backend (noise, shuffling).

    ``seed`` may be a tuple such as ``(seed, epoch)``: it is mixed into one integer by
    NumPy's SeedSequence, so each (seed, epoch) pair gets its own independent stream.

    On CuPy the bit generator is Philox4x32-10 rather than CuPy's default XORWOW: training
    seeds a fresh generator for every batch, and XORWOW's cuRAND state set-up costs about
    0.66 ms of GPU time per generator against 0.08 ms for Philox (seed plus one batch of
    noise, measured on an H100; ``benchmarks/bench_gpu_choices.py``).
    """
    if isinstance(seed, (tuple, list)):
        seed = int(numpy.random.SeedSequence(list(seed)).generate_state(1, numpy.uint64)[0] >> 1)
    xp = get_backend(backend)
    if xp is numpy:
        return numpy.random.default_rng(seed)
    return xp.random.Generator(xp.random.Philox4x3210(seed))
