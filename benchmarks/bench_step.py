#!/usr/bin/env python
"""Full training step (forward, MSE, backward, Adam) of a denoiser, float32: scratchnet
(NumPy or CuPy) vs the same model in PyTorch (when installed), timed alternately, medians.

    python benchmarks/bench_step.py                    # batches 32, 64, 256 on the CPU
    python benchmarks/bench_step.py --model unet --batches 64
    python benchmarks/bench_step.py --model dncnn --batches 64     # 40x40 patches, depth 10, width 32
    python benchmarks/bench_step.py --backend cupy --batches 64 256 1024

The digit models take 28x28 images (noise 0.5, clipped); DnCNN takes --patch x --patch patches
with unclipped noise of sigma 25 (the photo training step), at --depth and --width.

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


def _batch(batch: int, model_name: str, patch: int):
    """(clean, noisy) host batches: 28x28 digits-like, or photo patches with sigma 25."""
    r = np.random.default_rng(0)
    side = patch if model_name == "dncnn" else 28
    clean = r.random((batch, 1, side, side), dtype=np.float32)
    if model_name == "dncnn":
        return clean, clean + np.float32(25 / 255) * r.standard_normal(clean.shape, dtype=np.float32)
    return clean, np.clip(clean + 0.5 * r.standard_normal(clean.shape, dtype=np.float32), 0, 1)


def _options(model_name: str, width: int, depth: int) -> dict:
    return dict(width=width, depth=depth) if model_name == "dncnn" else {}


def scratchnet_step(batch: int, backend: str, model_name: str = "conv", patch: int = 40,
                    width: int = 32, depth: int = 10):
    xp = get_backend(backend)
    sn.manual_seed(0)
    model = build_model(model_name, **_options(model_name, width, depth)).to(backend)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    mse = nn.MSELoss()
    clean_host, noisy_host = _batch(batch, model_name, patch)
    clean, noisy = xp.asarray(clean_host), xp.asarray(noisy_host)

    def step():
        opt.zero_grad()
        mse(model(noisy), clean)
        model.backward(mse.backward())
        opt.step()
    return step, xp


def torch_step(batch: int, device: str, model_name: str = "conv", patch: int = 40,
               width: int = 32, depth: int = 10):
    import torch
    import torch.nn as tnn
    from torch_models import MODELS            # tests/torch_models.py: the same models in PyTorch
    torch.manual_seed(0)
    model = MODELS[model_name](**_options(model_name, width, depth)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    lossf = tnn.MSELoss()
    clean_host, noisy_host = _batch(batch, model_name, patch)
    clean, noisy = torch.tensor(clean_host, device=device), torch.tensor(noisy_host, device=device)

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
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet", "dncnn"])
    p.add_argument("--patch", type=int, default=40, help="dncnn: side of the patches")
    p.add_argument("--width", type=int, default=32, help="dncnn: width")
    p.add_argument("--depth", type=int, default=10, help="dncnn: depth")
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
    shape = (f", depth {args.depth}, width {args.width}, {args.patch}x{args.patch} patches"
             if args.model == "dncnn" else "")
    print(f"model: {args.model}{shape}")
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i.get('internal_api')} {i.get('architecture')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        print("BLAS: " + ", ".join(blas))
    except ImportError:
        pass
    ours = [args.backend] + (["numpy"] if args.backend == "cupy" and not args.no_host else [])
    device = "cuda" if args.backend == "cupy" else "cpu"
    names = ours + ([f"torch-{device}"] if have_torch else [])
    print(f"{'batch':>6}" + "".join(f" {n + ' ms':>13}" for n in names)
          + (f" {'ratio':>6}" if have_torch else "") + f" {args.backend + ' img/s':>12}")
    for batch in args.batches:
        fns, xps = {}, {}
        for name in ours:
            fns[name], xps[name] = scratchnet_step(batch, name, args.model, args.patch, args.width,
                                                   args.depth)
        if have_torch:
            fns[f"torch-{device}"] = torch_step(batch, device, args.model, args.patch, args.width,
                                                args.depth)
        t = alternate(fns, args.rounds, args.per_round, xps=xps)
        line = f"{batch:>6}" + "".join(f" {t[n] * 1e3:>13.2f}" for n in names)
        if have_torch:
            line += f" {t[args.backend] / t[f'torch-{device}']:>6.2f}"
        print(line + f" {batch / t[args.backend]:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
