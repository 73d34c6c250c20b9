#!/usr/bin/env python
"""What training-health diagnostics cost: the conv autoencoder at batch 64, Adam, with
``diagnostics.watch(model, every=k)`` attached.

Two measures: the time spent inside the diagnostics' hooks and ``diag.step()`` as a share
of the rest of the step (robust to a busy machine; on NumPy only, where no call waits for
the device), and whole steps with and without diagnostics timed alternately (A B A B ...).

    python benchmarks/bench_diagnostics.py                   # NumPy
    python benchmarks/bench_diagnostics.py --backend cupy    # alternation only
"""
from __future__ import annotations

import argparse
import functools
import time

import numpy as np

import scratchnet as sn
from scratchnet import diagnostics, nn, optim
from scratchnet.backend import get_backend
from scratchnet.diagnostics import Diagnostics
from scratchnet.models import conv_autoencoder
from common import alternate, machine

HOOKS = ("_on_model_forward", "_on_forward", "_on_backward", "_on_model_backward", "step")


def trainer(xp, every: int | None):
    sn.manual_seed(0)
    model = conv_autoencoder().to(xp.__name__)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    mse = nn.MSELoss()
    x = xp.asarray(np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32))
    diag = diagnostics.watch(model, every=every) if every else None

    def step() -> None:
        opt.zero_grad()
        mse(model(x), x)
        model.backward(mse.backward())
        opt.step()
        if diag is not None:
            diag.step()
    return step


def hook_share(every: int, steps: int = 40) -> tuple[float, float]:
    """(share of the training work spent in the diagnostics, ms of it per step), NumPy."""
    spent = [0.0]
    originals = {name: getattr(Diagnostics, name) for name in HOOKS}

    def timed(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t
        return run

    try:
        for name, fn in originals.items():
            setattr(Diagnostics, name, timed(fn))
        step = trainer(np, every)
        step()
        spent[0] = 0.0
        t = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - t
    finally:
        for name, fn in originals.items():
            setattr(Diagnostics, name, fn)
    return spent[0] / (total - spent[0]), spent[0] / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    args = parser.parse_args()
    xp = get_backend(args.backend)
    print(machine(with_torch=False))
    if xp is np:
        for every in (1, 10):
            share, ms = hook_share(every)
            print(f"every={every:<3} inside the diagnostics: {100 * share:5.1f}% of the training "
                  f"work ({ms:.1f} ms per step)")
    times = alternate({f"every={k}" if k else "without": trainer(xp, k) for k in (None, 1, 10)},
                      rounds=5, per_round=4, warmup=2, xps={k: xp for k in ("without", "every=1",
                                                                           "every=10")})
    base = times["without"]
    for name, t in times.items():
        print(f"{name:<10} {t * 1e3:8.1f} ms per step  ({t / base:.3f} x)")


if __name__ == "__main__":
    main()
