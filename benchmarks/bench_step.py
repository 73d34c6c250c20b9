#!/usr/bin/env python
"""Full training step (forward, MSE, backward, Adam) of a denoiser, float32: scratchnet
(NumPy or CuPy) vs the same model in PyTorch (when installed), timed alternately, medians.

    python benchmarks/bench_step.py                    # batches 32, 64, 256 on the CPU
    python benchmarks/bench_step.py --model unet --batches 64
    python benchmarks/bench_step.py --backend cupy --batches 64 256 1024

With ``--backend cupy`` three steps are timed in one process: scratchnet on CuPy, scratchnet
on NumPy (the host CPU) and PyTorch CUDA eager; the ratio is CuPy / PyTorch CUDA.
"""
from __future__ import annotations

import argparse

import numpy as np

import scratchnet as sn
from scratchnet import nn, optim
from scratchnet.backend import get_backend
from scratchnet.models import build_model
from common import alternate, machine


def scratchnet_step(batch: int, backend: str, model_name: str = "conv"):
    xp = get_backend(backend)
    sn.manual_seed(0)
    model = build_model(model_name).to(backend)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    mse = nn.MSELoss()
    r = np.random.default_rng(0)
    clean_host = r.random((batch, 1, 28, 28), dtype=np.float32)
    noisy_host = np.clip(clean_host + 0.5 * r.standard_normal(clean_host.shape, dtype=np.float32), 0, 1)
    clean, noisy = xp.asarray(clean_host), xp.asarray(noisy_host)

    def step():
        opt.zero_grad()
        mse(model(noisy), clean)
        model.backward(mse.backward())
        opt.step()
    return step, xp


def torch_step(batch: int, device: str, model_name: str = "conv"):
    import torch
    import torch.nn as tnn
    from torch_models import MODELS            # tests/torch_models.py: the same models in PyTorch
    torch.manual_seed(0)
    model = MODELS[model_name]().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    lossf = tnn.MSELoss()
    clean = torch.rand(batch, 1, 28, 28, device=device)
    noisy = (clean + 0.5 * torch.randn_like(clean)).clamp(0, 1)

    def step():
        opt.zero_grad()
        lossf(model(noisy), clean).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet"])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 256])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--no-host", action="store_true",
                   help="with --backend cupy: leave out the NumPy column (its BLAS threads keep "
                        "the host's cores busy between the GPU timings)")
    args = p.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    get_backend(args.backend)                     # imports CuPy, so machine() names the GPU
    print(machine())
    print(f"model: {args.model}")
    ours = [args.backend] + (["numpy"] if args.backend == "cupy" and not args.no_host else [])
    device = "cuda" if args.backend == "cupy" else "cpu"
    names = ours + ([f"torch-{device}"] if have_torch else [])
    print(f"{'batch':>6}" + "".join(f" {n + ' ms':>13}" for n in names)
          + (f" {'ratio':>6}" if have_torch else "") + f" {args.backend + ' img/s':>12}")
    for batch in args.batches:
        fns, xps = {}, {}
        for name in ours:
            fns[name], xps[name] = scratchnet_step(batch, name, args.model)
        if have_torch:
            fns[f"torch-{device}"] = torch_step(batch, device, args.model)
        t = alternate(fns, args.rounds, args.per_round, xps=xps)
        line = f"{batch:>6}" + "".join(f" {t[n] * 1e3:>13.2f}" for n in names)
        if have_torch:
            line += f" {t[args.backend] / t[f'torch-{device}']:>6.2f}"
        print(line + f" {batch / t[args.backend]:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
