#!/usr/bin/env python
"""One training epoch through the real pipeline (data on device, fresh noise per batch, Adam,
evaluation): images/s and the process's peak memory.

    SCRATCHNET_DATA=... python benchmarks/bench_epoch.py --epochs 1
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile

from scratchnet.backend import get_backend
from scratchnet.experiment import Config, train
from common import machine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet"])
    p.add_argument("--limit-train", type=int, default=None, help="first N training images only")
    args = p.parse_args()
    get_backend(args.backend)                     # imports CuPy, so machine() names the GPU
    print(machine(with_torch=False))     # PyTorch would inflate the peak memory
    with tempfile.TemporaryDirectory() as tmp:
        m = train(Config(dataset=args.dataset, model=args.model, backend=args.backend,
                         epochs=args.epochs, batch_size=args.batch_size,
                         limit_train=args.limit_train), f"{tmp}/run", progress=False,
                  log=lambda s: None)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.model}: {args.epochs} epoch(s) of {args.dataset}, batch {args.batch_size}, {args.backend}: "
          f"{m['train_images_per_s']:,.0f} training images/s, wall {m['wall_time_s']:.1f} s "
          f"(incl. data loading, evaluation, figures), peak RSS {peak_mb:,.0f} MiB, "
          f"final test MSE {m['final']['test_mse']:.5f}", file=sys.stdout)


if __name__ == "__main__":
    main()
