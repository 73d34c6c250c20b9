#!/usr/bin/env python
"""Where one training batch's time goes (host side): the per-batch pipeline of
``scratchnet.experiment.train`` (batch gather, seeded noise, forward, MSE, backward, Adam),
split into its parts and then profiled with cProfile.

    python benchmarks/profile_batch.py --backend cupy --batches 300
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import numpy as np

import scratchnet as sn
from scratchnet import backend, nn, optim
from scratchnet.data import BatchLoader, add_noise
from scratchnet.models import conv_autoencoder
from common import machine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    xp = backend.get_backend(args.backend)
    print(machine(with_torch=False))
    sn.manual_seed(0)
    model = conv_autoencoder().to(args.backend)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    mse = nn.MSELoss()
    images = xp.asarray(np.random.default_rng(0).random((args.batches * args.batch_size, 1, 28, 28),
                                                        dtype=np.float32))
    loader = BatchLoader(images, args.batch_size, shuffle=True, seed=0)
    sync = lambda: backend.synchronize(xp)  # noqa: E731

    parts: dict[str, list[float]] = {"gather": [], "rng": [], "noise": [], "forward+loss": [],
                                      "backward": [], "adam": []}

    def timed(name, fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        parts[name].append(time.perf_counter() - t)
        return out

    def batch(b, clean, split):
        if not split:
            noisy = add_noise("gaussian", clean, 0.5, True, backend.default_rng((0, 0, b), xp))
            opt.zero_grad()
            mse(model(noisy), clean)
            model.backward(mse.backward())
            opt.step()
            return
        rng = timed("rng", lambda: backend.default_rng((0, 0, b), xp))
        noisy = timed("noise", lambda: add_noise("gaussian", clean, 0.5, True, rng))
        opt.zero_grad()
        timed("forward+loss", lambda: mse(model(noisy), clean))
        timed("backward", lambda: model.backward(mse.backward()))
        timed("adam", opt.step)

    it = iter(loader)
    for b in range(20):                                         # warm-up (kernel compiles)
        batch(b, next(it), split=True)
    for v in parts.values():
        v.clear()
    it = iter(loader)
    for b in range(args.batches // 2):
        clean = timed("gather", lambda: next(it))
        batch(b, clean, split=True)
    print(f"per batch, synchronised after each part (batch {args.batch_size}, {args.backend}), "
          "median ms:")
    for name, v in parts.items():
        print(f"  {name:<14}{statistics.median(v) * 1e3:8.3f}")
    print(f"  {'sum':<14}{sum(statistics.median(v) for v in parts.values()) * 1e3:8.3f}")

    rest = list(iter(loader))[args.batches // 2:]
    sync()
    t = time.perf_counter()
    for b, clean in enumerate(rest):
        batch(b, clean, split=False)
    sync()
    print(f"unsynchronised, as in training: {(time.perf_counter() - t) / len(rest) * 1e3:.3f} "
          "ms per batch")
    for name, fn in (("seeded generator alone", lambda b: backend.default_rng((0, 0, b), xp)),
                     ("gather alone", lambda b: images[loader_order[b * 64:(b + 1) * 64]])):
        loader_order = xp.arange(len(images))
        sync()
        t = time.perf_counter()
        for b in range(100):
            fn(b)
        sync()
        print(f"  {name}: {(time.perf_counter() - t) * 10:.3f} ms per batch (unsynchronised)")
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for b, clean in enumerate(rest):
        batch(b, clean, split=False)
    sync()
    prof.disable()
    print(f"unsynchronised, as in training: {(time.perf_counter() - t) / len(rest) * 1e3:.3f} "
          f"ms per batch under cProfile; top {args.top} by own time:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
