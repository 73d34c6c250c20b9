#!/usr/bin/env python
"""Inference: a denoiser's forward pass in eval mode without caches (``scratchnet.no_grad()``)
against the same model in PyTorch under ``torch.no_grad()``, timed alternately, medians.

    python benchmarks/bench_inference.py --model unet --batches 100
    python benchmarks/bench_inference.py --model conv --batches 100 1000
    python benchmarks/bench_inference.py --backend cupy --model unet --batches 100 1000
"""
from __future__ import annotations

import argparse

import numpy as np

import scratchnet as sn
from scratchnet.backend import get_backend
from scratchnet.models import build_model
from common import alternate, machine


def scratchnet_forward(batch: int, model_name: str, backend: str = "numpy"):
    sn.manual_seed(0)
    model = build_model(model_name).to(backend).eval()
    x = get_backend(backend).asarray(np.random.default_rng(0).random((batch, 1, 28, 28),
                                                                     dtype=np.float32))

    def forward():
        with sn.no_grad():
            model(x)
    return forward


def torch_forward(batch: int, model_name: str, device: str = "cpu"):
    import torch
    from torch_models import MODELS
    torch.manual_seed(0)
    model = MODELS[model_name]().to(device).eval()
    x = torch.rand(batch, 1, 28, 28, device=device)

    def forward():
        with torch.no_grad():
            model(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return forward


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--model", default="unet", choices=["conv", "dense", "unet"])
    p.add_argument("--batches", type=int, nargs="+", default=[100])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=3)
    args = p.parse_args()
    xp = get_backend(args.backend)                # imports CuPy first, so machine() names the GPU
    device = "cuda" if args.backend == "cupy" else "cpu"
    print(machine())
    print(f"model: {args.model}, eval mode, no_grad, {args.backend} vs torch {device}")
    print(f"{'batch':>6} {'scratchnet ms':>14} {'torch ms':>10} {'ratio':>6}")
    for batch in args.batches:
        t = alternate({"ours": scratchnet_forward(batch, args.model, args.backend),
                       "torch": torch_forward(batch, args.model, device)}, args.rounds,
                      args.per_round, xps={"ours": xp})
        print(f"{batch:>6} {t['ours'] * 1e3:>14.2f} {t['torch'] * 1e3:>10.2f} "
              f"{t['ours'] / t['torch']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
