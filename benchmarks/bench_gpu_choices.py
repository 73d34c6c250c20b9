#!/usr/bin/env python
"""Micro-timings behind two GPU design choices (each median of many calls, synchronised):
the cost of a seeded generator per batch for each of CuPy's bit generators, and three ways
to sum a bias gradient over batch and positions.

    python benchmarks/bench_gpu_choices.py
"""
from __future__ import annotations

import statistics

from scratchnet import backend
from common import machine, time_call


def main() -> None:
    cp = backend.get_backend("cupy")
    print(machine(with_torch=False))
    shape = (64, 1, 28, 28)
    print("seeded generator + one batch of noise (64x1x28x28 float32), ms:")
    for name in ("XORWOW", "MRG32k3a", "Philox4x3210"):
        bitgen = getattr(cp.random, name)

        def draw():
            cp.random.Generator(bitgen(12345)).standard_normal(shape, dtype=cp.float32)
        t = statistics.median(time_call(draw, 200, cp))
        print(f"  {name:<14}{t * 1e3:8.3f}")
    print("bias gradient of a (N, OC, OH, OW) batch-last view, ms (synchronised / host only):")
    for N, OC, OH in ((64, 16, 14), (256, 32, 7)):
        gy = cp.random.random((OC, OH, OH, N), dtype=cp.float32).transpose(3, 0, 1, 2)
        m = gy.transpose(1, 2, 3, 0).reshape(OC, -1)
        ones = cp.ones(m.shape[1], dtype=cp.float32)
        for label, fn in (("sum(axis=(0,2,3))", lambda: gy.sum(axis=(0, 2, 3))),
                          ("matrix.sum(axis=1)", lambda: m.sum(axis=1)),
                          ("matrix @ ones", lambda: m @ ones)):
            synced = statistics.median(time_call(fn, 200, cp))
            host = statistics.median(time_call(lambda: [fn() for _ in range(20)], 20)) / 20
            print(f"  N={N:<4} OC={OC:<3} {label:<20}{synced * 1e3:8.3f} {host * 1e3:8.3f}")


if __name__ == "__main__":
    main()
