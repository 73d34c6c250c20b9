#!/usr/bin/env python
"""Per-layer forward and backward time of the reference autoencoder (float32), with the
achieved GFLOP/s next to this machine's measured GEMM roof: where the step's time goes.

    python benchmarks/bench_layers.py --batch 64
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

import scratchnet as sn
from scratchnet import nn
from scratchnet.backend import get_backend
from scratchnet.models import conv_autoencoder
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
    args = p.parse_args()
    xp = get_backend(args.backend)
    sn.manual_seed(0)
    model = conv_autoencoder().to(args.backend)
    layers = list(model.encoder) + list(model.decoder)
    x = xp.asarray(np.random.default_rng(0).random((args.batch, 1, 28, 28), dtype=np.float32))
    print(machine())
    print(f"float32 GEMM roof on {args.backend} (1024x1024 matmul): {gemm_roof(xp=xp):.0f} GFLOP/s")
    # Record each layer's real input and upstream gradient from one training step, so every
    # layer is timed on the arrays (and memory layouts) it sees in training.
    inputs, grads = [], []
    for layer in layers:
        inputs.append(x)
        x = layer(x)
    mse = nn.MSELoss()
    mse(x, inputs[0])
    g = mse.backward()
    for layer in reversed(layers):
        grads.append(g)
        g = layer.backward(g)
    grads.reverse()
    print(f"{'layer':<10}{'type':<17}{'fwd ms':>8}{'bwd ms':>8}{'fwd GF/s':>10}{'bwd GF/s':>10}")
    tot_f = tot_b = 0.0
    n_enc = len(model.encoder)
    for i, (layer, x, g) in enumerate(zip(layers, inputs, grads)):
        def fwd():
            layer(x)

        def fb():
            layer(x)
            layer.backward(g)
        tf = statistics.median(time_call(fwd, args.repeat, xp))
        tb = max(statistics.median(time_call(fb, args.repeat, xp)) - tf, 0.0)
        tot_f, tot_b = tot_f + tf, tot_b + tb
        name = f"encoder.{i}" if i < n_enc else f"decoder.{i - n_enc}"
        line = f"{name:<10}{type(layer).__name__:<17}{tf * 1e3:>8.3f}{tb * 1e3:>8.3f}"
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            f = conv_flops(layer, x.shape, g.shape)
            line += f"{f / tf / 1e9:>10.1f}{2 * f / tb / 1e9 if tb else 0:>10.1f}"
        print(line)
    print(f"{'total':<27}{tot_f * 1e3:>8.3f}{tot_b * 1e3:>8.3f}")


if __name__ == "__main__":
    main()
