#!/usr/bin/env python
"""Where a GPU training step goes: kernel launches per step and step time of scratchnet on
CuPy with the fused kernels on and off, the same step replayed as one CUDA graph, and
PyTorch CUDA eager, all timed alternately in one process.

    python benchmarks/bench_gpu.py --batches 64 256 1024

Kernel launches are counted with PyTorch's profiler (CUPTI records every kernel in the
process, CuPy's too), so that column needs PyTorch. The graph row is an experiment, not a
training mode: a captured step replays the Adam step count it was captured with.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile

from scratchnet import backend
from bench_step import scratchnet_step, torch_step
from common import alternate, machine


def with_fused(step, enabled: bool):
    def run():
        backend.use_fused_kernels(enabled)
        step()
    return run


def count_kernels(fn, sync, steps: int = 5):
    """Kernels launched per call of ``fn`` (GPU kernels, memsets and copies), via CUPTI, and
    how many of each name; (None, {}) without PyTorch."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None, {}
    fn()
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        sync()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    cats = ("kernel", "gpu_memset", "gpu_memcpy")
    names = collections.Counter(e.get("name", "?")[:60] for e in events if e.get("cat") in cats)
    return sum(names.values()) / steps, {k: v / steps for k, v in names.most_common()}


def graph_step(batch: int, model: str = "conv"):
    """The fused step captured once into a CUDA graph; returns a replay function or a reason."""
    cupy = backend.get_backend("cupy")
    backend.use_fused_kernels(True)
    step, _ = scratchnet_step(batch, "cupy", model)
    stream = cupy.cuda.Stream(non_blocking=True)
    try:
        with stream:
            for _ in range(3):            # the memory pool caches blocks per stream: warm it
                step()
            stream.synchronize()
            stream.begin_capture()
            try:
                step()
            finally:
                graph = stream.end_capture()
    except Exception as exc:              # report why capture is impossible, keep measuring
        return None, f"{type(exc).__name__}: {exc}"

    def replay():
        graph.launch(stream)
    return replay, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="conv", choices=["conv", "dense", "unet"])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--names", action="store_true", help="list the fused step's kernels by name")
    args = p.parse_args()
    cupy = backend.get_backend("cupy")
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(machine())
    print(f"model: {args.model}")
    sync = cupy.cuda.Device().synchronize
    for batch in args.batches:
        fused, _ = scratchnet_step(batch, "cupy", args.model)
        unfused, _ = scratchnet_step(batch, "cupy", args.model)
        fns = {"fused": with_fused(fused, True), "unfused": with_fused(unfused, False)}
        replay, why = graph_step(batch, args.model)
        if replay is not None:
            fns["graph"] = replay
        if have_torch:
            fns["torch"] = torch_step(batch, "cuda", args.model)
        # Time first: once PyTorch's profiler has run, its hooks slow every later launch
        # (PyTorch's and CuPy's), which made earlier versions of this script flatter the ratio.
        t = alternate(fns, args.rounds, args.per_round, xps={k: cupy for k in fns})
        counted = {k: count_kernels(fn, sync) for k, fn in fns.items() if k != "graph"}
        kernels = {k: v[0] for k, v in counted.items()}
        if args.names:
            print(f"batch {batch}, kernels per fused step by name:")
            for name, n in counted["fused"][1].items():
                print(f"  {n:6.1f}  {name}")
        print(f"batch {batch}:")
        for name, fn in fns.items():
            k = kernels.get(name)
            line = f"  {name:<8} {t[name] * 1e3:8.3f} ms/step"
            line += f"  {k:6.0f} kernels/step" if k is not None else ""
            if have_torch:
                line += f"  {t[name] / t['torch']:5.2f}x torch"
            print(line, flush=True)
        if why:
            print(f"  graph    capture failed: {why}")
    backend.use_fused_kernels(True)


if __name__ == "__main__":
    main()
