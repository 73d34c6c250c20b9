#!/usr/bin/env python
"""Inference: a denoiser's forward pass in eval mode without caches (``scratchnet.no_grad()``)
against the same model in PyTorch under ``torch.no_grad()``, timed alternately, medians.

    python benchmarks/bench_inference.py --model unet --batches 100
    python benchmarks/bench_inference.py --model conv --batches 100 1000
"""
from __future__ import annotations

import argparse

import numpy as np

import scratchnet as sn
from scratchnet.models import build_model
from common import alternate, machine


def scratchnet_forward(batch: int, model_name: str):
    sn.manual_seed(0)
    model = build_model(model_name).eval()
    x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)

    def forward():
        with sn.no_grad():
            model(x)
    return forward


def torch_forward(batch: int, model_name: str):
    import torch
    from torch_models import MODELS
    torch.manual_seed(0)
    model = MODELS[model_name]().eval()
    x = torch.rand(batch, 1, 28, 28)

    def forward():
        with torch.no_grad():
            model(x)
    return forward


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="unet", choices=["conv", "dense", "unet"])
    p.add_argument("--batches", type=int, nargs="+", default=[100])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=3)
    args = p.parse_args()
    print(machine())
    print(f"model: {args.model}, eval mode, no_grad")
    print(f"{'batch':>6} {'scratchnet ms':>14} {'torch ms':>10} {'ratio':>6}")
    for batch in args.batches:
        t = alternate({"ours": scratchnet_forward(batch, args.model),
                       "torch": torch_forward(batch, args.model)}, args.rounds, args.per_round)
        print(f"{batch:>6} {t['ours'] * 1e3:>14.2f} {t['torch'] * 1e3:>10.2f} "
              f"{t['ours'] / t['torch']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
