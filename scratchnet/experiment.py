"""Train, evaluate and report a denoising autoencoder: the engine of examples/train_denoiser.py.

One run writes into one directory (never an existing one): figures, ``metrics.json``,
``history.csv`` and ``checkpoint.npz`` (after every epoch, atomically). Every random stream is
derived from the seed: the shuffle of epoch e from (seed, e), the noise of batch b in epoch e
from (seed, e, b), the fixed noisy test set from ``test_seed`` on the host. So a run resumed
from a checkpoint continues exactly as if it had never stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy
from tqdm.auto import tqdm

from . import __version__, nn, optim, plotting
from .backend import (default_rng, get_backend, manual_seed, retain_freed_host_memory,
                      synchronize, to_numpy)
from .checkpoint import load_checkpoint, save_checkpoint
from .data import DATASETS, BatchLoader, add_noise, images_to_array, load_dataset
from .fileio import atomic_write_text
from .models import build_model, summary

__all__ = ["Config", "TrainingStopped", "train", "evaluate", "psnr", "PRESETS", "LR_SCHEDULES"]

PRESETS = {
    # batch 64, Adam lr 1e-3 with coupled L2 weight decay 1e-5, 10 epochs (the default)
    "table-b": dict(batch_size=64, lr=1e-3, weight_decay=1e-5, epochs=10),
    # batch 32, Adam lr 1e-3, no weight decay, 10 epochs
    "table-a": dict(batch_size=32, lr=1e-3, weight_decay=0.0, epochs=10),
    # the U-Net recipe chosen by measurement (benchmarks/README.md): twice the width, twice the
    # learning rate, cosine decay to 0 over the 10 epochs
    "unet": dict(model="unet", width=32, batch_size=64, lr=2e-3, lr_schedule="cosine",
                 weight_decay=1e-5, epochs=10),
}
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass
class Config:
    """Everything that defines a run (saved in metrics.json and the checkpoint)."""
    dataset: str = "mnist"
    model: str = "conv"
    width: int | None = None          # the U-Net's base width (None: the model's default, 16)
    backend: str = "numpy"
    dtype: str = "float32"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"     # or "cosine": decay to 0 over all batches of the run
    weight_decay: float = 1e-5
    noise: str = "gaussian"
    noise_factor: float = 0.5
    clip: bool = True
    seed: int = 0
    test_seed: int = 1234
    limit_train: int | None = None
    limit_test: int | None = None
    data_dir: str | None = None
    download: bool = True
    log_every: int | None = None      # host reads of the loss: 1 on NumPy, 20 on CuPy


class TrainingStopped(Exception):
    """Training stopped early (non-finite loss); the last good checkpoint is kept."""


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: 10*log10(1/MSE)."""
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def evaluate(model: nn.Module, clean: Any, noisy: Any, batch_size: int = 500) -> float:
    """MSE of ``model(noisy)`` against ``clean`` over all pixels of the set."""
    model.eval()
    total = 0.0
    for lo in range(0, len(clean), batch_size):
        d = model(noisy[lo:lo + batch_size]) - clean[lo:lo + batch_size]
        total += float((d * d).sum())
    model.train()
    return total / clean.size


def _versions(backend: str) -> dict[str, str]:
    v = {"python": platform.python_version(), "numpy": numpy.__version__,
         "scratchnet": __version__, "platform": platform.platform()}
    if backend == "cupy":
        xp = get_backend("cupy")
        v["cupy"] = xp.__version__
        v["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return v


class _StopFlag:
    """First Ctrl-C asks the loop to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> "_StopFlag":
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._old)


def train(config: Config, out_dir: str | Path, resume: str | Path | None = None,
          log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) training and write every output into ``out_dir``.

    Returns:
        The metrics dict also written to ``metrics.json``.
    Raises:
        TrainingStopped: the loss became NaN/inf (outputs and last good checkpoint kept).
        KeyboardInterrupt: after Ctrl-C, once the checkpoint was written.
    """
    out = Path(out_dir)
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; expected one of {LR_SCHEDULES}")
    xp = get_backend(config.backend)
    retain_freed_host_memory()        # reuse the step's large temporaries (see its docstring)
    spec = DATASETS[config.dataset]
    t_start = time.perf_counter()

    # Data: loaded once, moved to the device once.
    train_u8, train_labels = load_dataset(config.dataset, "train", config.data_dir, config.download)
    test_u8, _ = load_dataset(config.dataset, "test", config.data_dir, config.download)
    train_u8, train_labels = train_u8[:config.limit_train], train_labels[:config.limit_train]
    test_u8 = test_u8[:config.limit_test]
    train_x = images_to_array(train_u8, config.backend, config.dtype)
    test_clean_host = images_to_array(test_u8, "numpy", config.dtype)
    test_noisy_host = add_noise(config.noise, test_clean_host, config.noise_factor, config.clip,
                                default_rng(config.test_seed, "numpy"))
    test_clean, test_noisy = xp.asarray(test_clean_host), xp.asarray(test_noisy_host)
    noisy_mse = float(((test_noisy_host - test_clean_host) ** 2).mean(dtype="float64"))

    manual_seed(config.seed)
    model = build_model(config.model, config.width).to(config.backend, config.dtype)
    opt = optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    mse = nn.MSELoss()
    state = {"epoch": 0, "batch": 0, "history": [], "iteration_losses": [], "partial": [0.0, 0],
             "train_seconds": 0.0}
    if resume is not None:
        meta = load_checkpoint(resume, model, opt)
        state.update({k: meta[k] for k in state if k in meta})
        log(f"resumed from {resume}: epoch {state['epoch']}, batch {state['batch']}")
    loader = BatchLoader(train_x, config.batch_size, shuffle=True, seed=config.seed)
    scheduler = None
    if config.lr_schedule == "cosine":       # per batch; a function of the step count only
        scheduler = optim.CosineAnnealingLR(opt, T_max=config.epochs * len(loader),
                                            last_epoch=state["epoch"] * len(loader) + state["batch"])
    log_every = config.log_every or (1 if config.backend == "numpy" else 20)
    log(f"model '{config.model}' on {config.backend}/{config.dtype}:\n"
        + summary(model, (1, 1, 28, 28), config.dtype))
    log(f"data: {config.dataset}, {len(train_x)} train / {len(test_clean)} test images; noise "
        f"{config.noise} x{config.noise_factor} ({'clipped to [0, 1]' if config.clip else 'unclipped'}); "
        f"noisy-input test MSE {noisy_mse:.5f} ({psnr(noisy_mse):.2f} dB)")

    title = f"{config.dataset}, {config.noise} noise x{config.noise_factor:g}"
    idx = numpy.arange(min(32, len(train_u8)))       # also for a resumed run: a new directory
    plotting.save_figure(plotting.plot_samples(train_u8[idx] / 255, train_labels[idx],
                                               spec.classes, f"{config.dataset}: training images"),
                         out / "samples.png")
    factors = [0, 0.1, 0.25, 0.5, 0.75, 1.0]
    one = test_clean_host[:1]
    plotting.save_figure(plotting.plot_noise_levels(
        [add_noise(config.noise, one, f, config.clip, default_rng(0, "numpy"))[0] for f in factors],
        factors, f"{config.noise} noise at several factors"), out / "noise.png")
    versions = _versions(config.backend)

    def write_outputs(status: str) -> dict[str, Any]:
        hist = state["history"]
        wall = time.perf_counter() - t_start
        metrics = {
            "status": status, "config": dataclasses.asdict(config),
            "noisy_baseline": {"mse": noisy_mse, "psnr": psnr(noisy_mse)},
            "epochs": hist, "final": hist[-1] if hist else None,
            "wall_time_s": wall, "train_seconds": state["train_seconds"],
            "train_images_per_s": (sum(h["images"] for h in hist) / state["train_seconds"]
                                   if hist and state["train_seconds"] else None),
            "backend": config.backend, "versions": versions}
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        buf = io.StringIO()
        fields = ["epoch", "train_mse", "test_mse", "test_psnr", "noisy_mse", "noisy_psnr",
                  "seconds", "images_per_s"]
        writer = csv.DictWriter(buf, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(hist)
        atomic_write_text(out / "history.csv", buf.getvalue())
        if state["iteration_losses"]:
            plotting.save_figure(plotting.plot_iteration_loss(
                state["iteration_losses"], len(loader), f"{title}: training loss"),
                out / "loss_iterations.png")
        if hist:
            plotting.save_figure(plotting.plot_epoch_loss(
                [h["epoch"] for h in hist], [h["train_mse"] for h in hist],
                [h["test_mse"] for h in hist], noisy_mse, f"{title}: loss per epoch"),
                out / "loss_epochs.png")
            n = min(10, len(test_clean))
            denoised = to_numpy(model.eval()(test_noisy[:n]))
            model.train()
            last = hist[-1]
            plotting.save_figure(plotting.plot_results(
                test_clean_host[:n], test_noisy_host[:n], denoised,
                f"{title}; epoch {last['epoch']}: test MSE {last['test_mse']:.4f} "
                f"({last['test_psnr']:.1f} dB), noisy {noisy_mse:.4f}"), out / "results.png")
        return metrics

    def checkpoint() -> None:
        save_checkpoint(out / "checkpoint.npz", model, opt, config=dataclasses.asdict(config),
                        **{k: state[k] for k in state})

    metrics = None
    with _StopFlag() as stop:
        for epoch in range(state["epoch"], config.epochs):
            loader.epoch = epoch
            bar = tqdm(total=len(loader), initial=state["batch"], desc=f"epoch {epoch + 1}/{config.epochs}",
                       unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True)
            pending: list[tuple[Any, int]] = []
            t0 = time.perf_counter()
            seen = 0
            for b, clean in enumerate(loader):
                if b < state["batch"]:
                    continue                      # resumed mid-epoch: same order, skip done ones
                noisy = add_noise(config.noise, clean, config.noise_factor, config.clip,
                                  default_rng((config.seed, epoch, b), config.backend))
                opt.zero_grad()
                loss = mse(model(noisy), clean)
                model.backward(mse.backward())
                opt.step()
                if scheduler is not None:
                    scheduler.step()
                pending.append((loss, len(clean)))
                seen += len(clean)
                state["batch"] = b + 1
                if len(pending) >= log_every or b + 1 == len(loader) or stop.requested:
                    values = to_numpy(xp.stack([p[0] for p in pending])).astype(float)
                    if not numpy.isfinite(values).all():
                        bar.close()
                        write_outputs("stopped: non-finite loss")
                        raise TrainingStopped(
                            f"loss became {values[~numpy.isfinite(values)][0]} in epoch {epoch + 1}, "
                            f"batch {b + 1}; stopped. The last good checkpoint (epoch "
                            f"{state['epoch']}) is kept in {out}; try a smaller --lr")
                    state["iteration_losses"] += values.tolist()
                    state["partial"][0] += float(sum(v * n for v, (_, n) in zip(values, pending)))
                    state["partial"][1] += sum(n for _, n in pending)
                    pending.clear()
                    bar.update(len(values))
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{state['partial'][0] / state['partial'][1]:.5f}",
                                    img_s=f"{rate:,.0f}", refresh=False)  # tqdm rate-limits
                if stop.requested:
                    break
            synchronize(xp)
            seconds = time.perf_counter() - t0
            state["train_seconds"] += seconds
            bar.close()
            if stop.requested:
                checkpoint()
                write_outputs("interrupted")
                log(f"interrupted in epoch {epoch + 1} after batch {state['batch']}; checkpoint "
                    f"saved: continue with --resume {out / 'checkpoint.npz'}")
                raise KeyboardInterrupt
            test_mse = evaluate(model, test_clean, test_noisy)
            total, count = state["partial"]
            state["history"].append({
                "epoch": epoch + 1, "train_mse": total / count, "test_mse": test_mse,
                "test_psnr": psnr(test_mse), "noisy_mse": noisy_mse, "noisy_psnr": psnr(noisy_mse),
                "seconds": seconds, "images": count, "images_per_s": seen / seconds})
            state.update(epoch=epoch + 1, batch=0, partial=[0.0, 0])
            checkpoint()
            metrics = write_outputs("running" if epoch + 1 < config.epochs else "finished")
            log(f"epoch {epoch + 1}: train MSE {total / count:.5f}, test MSE {test_mse:.5f} "
                f"({psnr(test_mse):.2f} dB) vs noisy {noisy_mse:.5f} ({psnr(noisy_mse):.2f} dB), "
                f"{seen / seconds:,.0f} images/s")
    return metrics if metrics is not None else write_outputs("finished")

