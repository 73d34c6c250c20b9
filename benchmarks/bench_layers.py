#!/usr/bin/env python
"""Per-layer forward and backward time of a denoiser (float32), with the achieved GFLOP/s
next to this machine's measured GEMM roof: where the step's time goes.

    python benchmarks/bench_layers.py --batch 64
    python benchmarks/bench_layers.py --model unet --batch 64 --repeat 10
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

import scratchnet as sn
from scratchnet import nn
from scratchnet.backend import get_backend
from scratchnet.models import build_model
from common import gemm_roof, machine, time_call


def conv_flops(layer, x_shape, y_shape) -> float:
    """Multiply-adds x2 of the layer's one GEMM (forward); backward does two such GEMMs."""
    KH, KW = layer.kernel_size
    if isinstance(layer, nn.Conv2d):
        N, C, _, _ = x_shape
        return 2 * N * layer.out_channels * C * KH * KW * y_shape[2] * y_shape[3]
    N, _, H, W = x_shape
    return 2 * N * layer.in_channels * layer.out_channels * KH * KW * H * W


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet"])
    args = p.parse_args()
    xp = get_backend(args.backend)
    sn.manual_seed(0)
    model = build_model(args.model).to(args.backend)
    x = xp.asarray(np.random.default_rng(0).random((args.batch, 1, 28, 28), dtype=np.float32))
    print(machine())
    print(f"float32 GEMM roof on {args.backend} (1024x1024 matmul): {gemm_roof(xp=xp):.0f} GFLOP/s")
    # Record each leaf layer's real input and upstream gradient from one training step (by
    # wrapping its forward and backward), so every layer is timed on the arrays (and memory
    # layouts) it sees in training, whatever the model's shape.
    leaves = [(n, m) for n, m in model.named_modules() if n and not m._modules]
    seen: dict[str, dict] = {n: {} for n, _ in leaves}
    for name, m in leaves:
        def record(fn, key, name=name):
            def wrapped(a):
                seen[name][key] = a
                return fn(a)
            return wrapped
        m.forward, m.backward = record(m.forward, "x"), record(m.backward, "g")
    mse = nn.MSELoss()
    mse(model(x), x)
    model.backward(mse.backward())
    for _, m in leaves:
        del m.__dict__["forward"], m.__dict__["backward"]
    layers = [(n, m, seen[n]["x"], seen[n]["g"]) for n, m in leaves]
    width = max(len(n) for n, *_ in layers) + 2
    print(f"{'layer':<{width}}{'type':<17}{'fwd ms':>8}{'bwd ms':>8}{'fwd GF/s':>10}{'bwd GF/s':>10}")
    tot_f = tot_b = 0.0
    for name, layer, x, g in layers:
        def fwd():
            layer(x)

        def fb():
            layer(x)
            layer.backward(g)
        tf = statistics.median(time_call(fwd, args.repeat, xp))
        tb = max(statistics.median(time_call(fb, args.repeat, xp)) - tf, 0.0)
        tot_f, tot_b = tot_f + tf, tot_b + tb
        line = f"{name:<{width}}{type(layer).__name__:<17}{tf * 1e3:>8.3f}{tb * 1e3:>8.3f}"
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            f = conv_flops(layer, x.shape, g.shape)
            line += f"{f / tf / 1e9:>10.1f}{2 * f / tb / 1e9 if tb else 0:>10.1f}"
        print(line)
    print(f"{'total':<{width + 17}}{tot_f * 1e3:>8.3f}{tot_b * 1e3:>8.3f}")


if __name__ == "__main__":
    main()
