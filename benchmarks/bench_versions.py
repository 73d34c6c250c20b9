#!/usr/bin/env python
"""This checkout's training step against another checkout's, alternated in one process.

    python benchmarks/bench_versions.py /path/to/other/checkout --model unet

The other checkout's ``scratchnet`` package is copied to a temporary folder as
``scratchnet_other`` (the package imports itself relatively, so the copy is a separate
library) and both train the same model (forward, MSE, backward, Adam; float32, NumPy) on the
same batch, timed A B A B ... so that drift and other jobs on the machine hit both alike. The
ratio is this checkout's median over the other's; run it twice with the two swapped to see the
noise (OPENBLAS_NUM_THREADS=1 makes it far smaller on a busy machine).
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import alternate, machine


def step(package: str, model_name: str, batch: int):
    sn = importlib.import_module(package)
    sn.manual_seed(0)
    model = importlib.import_module(f"{package}.models").build_model(model_name)
    opt = sn.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    mse = sn.nn.MSELoss()
    r = np.random.default_rng(0)
    clean = r.random((batch, 1, 28, 28), dtype=np.float32)
    noisy = np.clip(clean + 0.5 * r.standard_normal(clean.shape, dtype=np.float32), 0, 1)

    def run() -> None:
        opt.zero_grad()
        mse(model(noisy), clean)
        model.backward(mse.backward())
        opt.step()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("other", type=Path, help="a checkout holding the scratchnet/ to compare with")
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp())
    shutil.copytree(args.other / "scratchnet", folder / "scratchnet_other")
    sys.path.insert(0, str(folder))
    try:
        print(machine())
        t = alternate({"other": step("scratchnet_other", args.model, args.batch),
                       "this": step("scratchnet", args.model, args.batch)}, args.rounds, 5)
    finally:
        shutil.rmtree(folder)
    print(f"{args.model}, batch {args.batch}: other {t['other'] * 1e3:.2f} ms, this "
          f"{t['this'] * 1e3:.2f} ms, this/other {t['this'] / t['other']:.3f}")


if __name__ == "__main__":
    main()
