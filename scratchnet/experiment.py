"""Train, evaluate and report a denoising autoencoder: the engine of examples/train_denoiser.py.

One run writes into one directory (never an existing one): figures, ``metrics.json``,
``history.csv`` and ``checkpoint.npz`` (after every epoch, atomically). Every random stream is
derived from the seed: the shuffle of epoch e from (seed, e), the noise of batch b in epoch e
from (seed, e, b), the fixed noisy test set from ``test_seed`` on the host. So a run resumed
from a checkpoint continues exactly as if it had never stopped.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy
from tqdm.auto import tqdm

from . import __version__, cli, nn, optim, plotting
from .backend import (default_rng, get_backend, manual_seed, retain_freed_host_memory,
                      synchronize, to_numpy)
from .checkpoint import load_checkpoint, save_checkpoint
from .data import DATASETS, BatchLoader, add_noise, images_to_array, load_dataset
from .evaluation import EVAL_BATCH, mean_ssim, predict, psnr, score_model
from .fileio import WriteError, atomic_write_text
from .models import build_model, summary

__all__ = ["Config", "TrainingStopped", "TrainingInterrupted", "train", "evaluate", "psnr",
           "PRESETS", "LR_SCHEDULES"]

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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) during training: the checkpoint was written first.
    ``str(exc)`` says where the run stopped and how to continue it; ``exit_status`` is 130 for
    Ctrl-C, 128 + the signal's number otherwise (143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum, self.exit_status = signum, 128 + signum


def evaluate(model: nn.Module, clean: Any, noisy: Any, batch_size: int = EVAL_BATCH) -> float:
    """MSE of ``model(noisy)`` against ``clean`` over all pixels of the set (eval mode)."""
    return score_model(model, clean, noisy, batch_size, ssim=False)["mse"]


def _versions(backend: str) -> dict[str, str]:
    v = {"python": platform.python_version(), "numpy": numpy.__version__,
         "scratchnet": __version__, "platform": platform.platform()}
    if backend == "cupy":
        xp = get_backend("cupy")
        v["cupy"] = xp.__version__
        v["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return v


class _StopFlag:
    """The first Ctrl-C, SIGTERM or SIGHUP asks the loop to stop after the current step (the
    loop then writes the checkpoint and says how to resume); a second one aborts at once.

    ``requested`` is False, or the number of the signal that asked.
    """

    def __init__(self) -> None:
        self.requested: int | bool = False

    def __enter__(self) -> "_StopFlag":
        self._old = {s: signal.signal(s, self._handle) for s in cli.STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt if signum == signal.SIGINT else cli.Terminated(signum)
        self.requested = signum

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _draw(name: str, args: tuple, path: Path) -> None:
    """Draw ``plotting.<name>(*args)`` into ``path`` (runs in the figure process too)."""
    plotting.save_figure(getattr(plotting, name)(*args), path)


def _ignore_stop_signals() -> None:
    for s in cli.STOP_SIGNALS:        # Ctrl-C, SIGTERM, SIGHUP are the training process's to handle
        signal.signal(s, signal.SIG_IGN)


class _Figures:
    """Draws a run's figures: in place on NumPy, in a helper process on CuPy.

    A figure takes about 0.2 s of host time to draw. On NumPy the host's cores are busy
    training, so figures are drawn where they are asked for. On CuPy the host mostly waits
    for the GPU, and drawing three figures after every epoch stalled the training loop (6 s of
    a 35 s run), so one helper process (``spawn``ed: CUDA does not survive ``fork``) draws
    them while training goes on; :meth:`close` waits for the last one, and an error while
    writing (disk full) is raised by the next call, as :class:`WriteError`, naming the file.
    """

    def __init__(self, background: bool):
        self._pool = (concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_stop_signals)
            if background else None)
        self._pending: list[concurrent.futures.Future] = []

    def draw(self, name: str, args: tuple, path: Path) -> None:
        if self._pool is None:
            _draw(name, args, path)
            return
        self._raise_failures(wait=False)
        # The helper process is started by the first submit; the stop signals are blocked
        # meanwhile so that it inherits the block: Ctrl-C (SIGTERM, SIGHUP) then reaches the
        # training process alone (the signal waits, it is not lost, and arrives here once
        # unblocked).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set(cli.STOP_SIGNALS))
        try:
            self._pending.append(self._pool.submit(_draw, name, args, path))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _raise_failures(self, wait: bool) -> None:
        done = [f for f in self._pending if wait or f.done()]
        self._pending = [f for f in self._pending if f not in done]
        for f in done:
            f.result()                           # re-raises WriteError from the helper

    def close(self) -> None:
        """Wait until every figure asked for is written (raising the first failure)."""
        if self._pool is None:
            return
        try:
            self._raise_failures(wait=True)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclasses.dataclass
class _Data:
    """A run's data: training images on the device, the fixed noisy test set on both sides."""
    train_x: Any
    samples_u8: numpy.ndarray         # the first 32 training images and labels (samples.png)
    sample_labels: numpy.ndarray
    test_clean_host: numpy.ndarray
    test_noisy_host: numpy.ndarray
    test_clean: Any
    test_noisy: Any
    noisy_mse: float


def _load_data(config: Config) -> _Data:
    """Load both splits once, move the training images to the device once, and draw the noisy
    test set from its own seed on the host (the same noisy images for every run)."""
    xp = get_backend(config.backend)
    train_u8, train_labels = load_dataset(config.dataset, "train", config.data_dir, config.download)
    test_u8, _ = load_dataset(config.dataset, "test", config.data_dir, config.download)
    train_u8, train_labels = train_u8[:config.limit_train], train_labels[:config.limit_train]
    clean = images_to_array(test_u8[:config.limit_test], "numpy", config.dtype)
    noisy = add_noise(config.noise, clean, config.noise_factor, config.clip,
                      default_rng(config.test_seed, "numpy"))
    # Only samples.png needs the uint8 images once they are floats on the device: keep 32.
    return _Data(images_to_array(train_u8, config.backend, config.dtype), train_u8[:32].copy(),
                 train_labels[:32].copy(),
                 clean, noisy, xp.asarray(clean), xp.asarray(noisy),
                 float(((noisy - clean) ** 2).mean(dtype="float64")))


class _Run:
    """One training run: model, optimizer, schedule and the state a checkpoint carries.

    ``train()`` drives it: ``epoch()`` trains one epoch, ``evaluate()`` scores the test set,
    ``checkpoint()`` and ``write_outputs()`` write the run directory.
    """

    def __init__(self, config: Config, out: Path, data: _Data, resume: str | Path | None,
                 log: Callable[[str], None], progress: bool):
        self.config, self.out, self.data, self.log, self.progress = config, out, data, log, progress
        self.xp = get_backend(config.backend)
        self.t_start = time.perf_counter()
        manual_seed(config.seed)
        self.model = build_model(config.model, config.width).to(config.backend, config.dtype)
        self.opt = optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.mse = nn.MSELoss()
        self.state = {"epoch": 0, "batch": 0, "history": [], "iteration_losses": [],
                      "partial": [0.0, 0], "train_seconds": 0.0}
        self.last_checkpoint: tuple[Path, int] | None = None     # (file, epoch) to resume from
        if resume is not None:
            meta = load_checkpoint(resume, self.model, self.opt)
            self.state.update({k: meta[k] for k in self.state if k in meta})
            self.last_checkpoint = (Path(resume), self.state["epoch"])
            log(f"resumed from {resume}: {_position(self.state['epoch'], self.state['batch'])}")
        self.loader = BatchLoader(data.train_x, config.batch_size, shuffle=True, seed=config.seed)
        self.scheduler = None
        if config.lr_schedule == "cosine":   # per batch; a function of the step count only
            self.scheduler = optim.CosineAnnealingLR(
                self.opt, T_max=config.epochs * len(self.loader),
                last_epoch=self.state["epoch"] * len(self.loader) + self.state["batch"])
        self.log_every = config.log_every or (1 if config.backend == "numpy" else 20)
        self.title = f"{config.dataset}, {config.noise} noise x{config.noise_factor:g}"
        self.versions = _versions(config.backend)
        self.figures = _Figures(background=config.backend == "cupy")

    def step(self, clean: Any, epoch: int, b: int) -> Any:
        """One training step on a clean batch (fresh noise from (seed, epoch, batch))."""
        c = self.config
        noisy = add_noise(c.noise, clean, c.noise_factor, c.clip, default_rng((c.seed, epoch, b), c.backend))
        self.opt.zero_grad()
        loss = self.mse(self.model(noisy), clean)
        self.model.backward(self.mse.backward())
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss

    def epoch(self, epoch: int, stop: "_StopFlag") -> tuple[int, float]:
        """Train one epoch (from ``state["batch"]`` when resumed mid-epoch); returns (images
        seen, seconds). Reads the losses back every ``log_every`` batches."""
        state, cfg = self.state, self.config
        self.loader.epoch = epoch
        bar = tqdm(total=len(self.loader), initial=state["batch"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        pending: list[tuple[Any, int]] = []
        t0, seen = time.perf_counter(), 0
        for b, clean in enumerate(self.loader):
            if b < state["batch"]:
                continue                          # resumed mid-epoch: same order, skip done ones
            pending.append((self.step(clean, epoch, b), len(clean)))
            seen += len(clean)
            state["batch"] = b + 1
            if len(pending) >= self.log_every or b + 1 == len(self.loader) or stop.requested:
                values = to_numpy(self.xp.stack([p[0] for p in pending])).astype(float)
                if not numpy.isfinite(values).all():
                    bar.close()
                    self.write_outputs("stopped: non-finite loss")
                    raise TrainingStopped(
                        f"loss became {values[~numpy.isfinite(values)][0]} in epoch {epoch + 1}, "
                        f"batch {b + 1}; stopped: {self.checkpoint_note()}; try a smaller --lr")
                state["iteration_losses"] += values.tolist()
                state["partial"][0] += float(sum(v * n for v, (_, n) in zip(values, pending)))
                state["partial"][1] += sum(n for _, n in pending)
                pending.clear()
                bar.update(len(values))
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{state['partial'][0] / state['partial'][1]:.5f}",
                                img_s=f"{rate:,.0f}", refresh=False)      # tqdm rate-limits
            if stop.requested:
                break
        synchronize(self.xp)
        bar.close()
        return seen, time.perf_counter() - t0

    def evaluate(self, epoch: int, seen: int, seconds: float, final: bool) -> None:
        """Score the fixed noisy test set and append the epoch to the history (SSIM after the
        last epoch only: about 1.1 s per 10,000 test images on the CPU, against a 6 s epoch of
        the reference model)."""
        d, state = self.data, self.state
        scores = score_model(self.model, d.test_clean, d.test_noisy, ssim=final)
        total, count = state["partial"]
        state["history"].append({
            "epoch": epoch + 1, "train_mse": total / count, "test_mse": scores["mse"],
            "test_psnr": scores["psnr"], "noisy_mse": d.noisy_mse, "noisy_psnr": psnr(d.noisy_mse),
            "seconds": seconds, "images": count, "images_per_s": seen / seconds,
            **({"test_ssim": scores["ssim"], "noisy_ssim": mean_ssim(d.test_clean_host, d.test_noisy_host)}
               if final else {})})
        state.update(epoch=epoch + 1, batch=0, partial=[0.0, 0])

    def checkpoint(self) -> None:
        save_checkpoint(self.out / "checkpoint.npz", self.model, self.opt,
                        config=dataclasses.asdict(self.config), **self.state)
        self.last_checkpoint = (self.out / "checkpoint.npz", self.state["epoch"])

    def checkpoint_note(self) -> str:
        """What a user can resume from, in words (for the messages of a stopped run)."""
        if self.last_checkpoint is None:
            return "no checkpoint was written yet, so this run cannot be resumed"
        path, epoch = self.last_checkpoint
        return f"the last good checkpoint (epoch {epoch}) is {path}"

    def write_start_figures(self) -> None:
        """samples.png and noise.png (also for a resumed run: it has a new directory)."""
        cfg, d = self.config, self.data
        self.figures.draw("plot_samples", (d.samples_u8 / 255, d.sample_labels,
                                           DATASETS[cfg.dataset].classes,
                                           f"{cfg.dataset}: training images"), self.out / "samples.png")
        factors = [0, 0.1, 0.25, 0.5, 0.75, 1.0]
        one = d.test_clean_host[:1]
        self.figures.draw("plot_noise_levels", (
            [add_noise(cfg.noise, one, f, cfg.clip, default_rng(0, "numpy"))[0] for f in factors],
            factors, f"{cfg.noise} noise at several factors"), self.out / "noise.png")

    def write_outputs(self, status: str) -> dict[str, Any]:
        """metrics.json, history.csv and the loss and results figures, atomically."""
        hist, d, cfg = self.state["history"], self.data, self.config
        metrics = {
            "status": status, "config": dataclasses.asdict(cfg),
            "noisy_baseline": {"mse": d.noisy_mse, "psnr": psnr(d.noisy_mse)},
            "epochs": hist, "final": hist[-1] if hist else None,
            "wall_time_s": time.perf_counter() - self.t_start,
            "train_seconds": self.state["train_seconds"],
            "train_images_per_s": (sum(h["images"] for h in hist) / self.state["train_seconds"]
                                   if hist and self.state["train_seconds"] else None),
            "backend": cfg.backend, "versions": self.versions}
        atomic_write_text(self.out / "metrics.json", json.dumps(metrics, indent=2))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(hist)
        atomic_write_text(self.out / "history.csv", buf.getvalue())
        if self.state["iteration_losses"]:
            self.figures.draw("plot_iteration_loss", (
                list(self.state["iteration_losses"]), len(self.loader),
                f"{self.title}: training loss"), self.out / "loss_iterations.png")
        if hist:
            self.figures.draw("plot_epoch_loss", (
                [h["epoch"] for h in hist], [h["train_mse"] for h in hist],
                [h["test_mse"] for h in hist], d.noisy_mse, f"{self.title}: loss per epoch"),
                self.out / "loss_epochs.png")
            n = min(10, len(d.test_clean))
            last = hist[-1]
            ssim = f", SSIM {last['test_ssim']:.3f}" if "test_ssim" in last else ""
            noisy_ssim = f" (SSIM {last['noisy_ssim']:.3f})" if "noisy_ssim" in last else ""
            self.figures.draw("plot_results", (
                d.test_clean_host[:n], d.test_noisy_host[:n], predict(self.model, d.test_noisy[:n]),
                f"{self.title}; epoch {last['epoch']}: test MSE {last['test_mse']:.4f} "
                f"({last['test_psnr']:.1f} dB{ssim}), noisy {d.noisy_mse:.4f}{noisy_ssim}"),
                self.out / "results.png")
        return metrics


def _position(done_epochs: int, batch: int) -> str:
    """Where a run stands, in the progress bar's terms (epochs count from 1)."""
    if batch:
        return f"in epoch {done_epochs + 1} after batch {batch}"
    return f"after epoch {done_epochs}" if done_epochs else "before the first epoch"


HISTORY_FIELDS = ["epoch", "train_mse", "test_mse", "test_psnr", "test_ssim", "noisy_mse",
                  "noisy_psnr", "noisy_ssim", "seconds", "images_per_s"]


def train(config: Config, out_dir: str | Path, resume: str | Path | None = None,
          log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) training and write every output into ``out_dir``.

    Returns:
        The metrics dict also written to ``metrics.json``.
    Raises:
        TrainingStopped: the loss became NaN/inf, or an output could not be written (disk
            full, ...); the message says which checkpoint a resume can start from.
        TrainingInterrupted: after Ctrl-C, once the checkpoint was written (a
            KeyboardInterrupt whose message says where the run stopped and how to resume).
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; expected one of {LR_SCHEDULES}")
    get_backend(config.backend)
    retain_freed_host_memory()        # reuse the step's large temporaries (see its docstring)
    data = _load_data(config)
    run = _Run(config, Path(out_dir), data, resume, log, progress)
    try:
        try:
            return _train(run, log)
        finally:
            run.figures.close()             # every figure asked for is on disk (or failed)
    except WriteError as exc:            # disk full, no permission: one line, what survives
        raise TrainingStopped(f"{exc}; stopped: {run.checkpoint_note()}") from None


def _train(run: _Run, log: Callable[[str], None]) -> dict[str, Any]:
    """The epoch loop of :func:`train`: train, evaluate, checkpoint, write, log."""
    config, data = run.config, run.data
    log(f"model '{config.model}' on {config.backend}/{config.dtype}:\n"
        + summary(run.model, (1, 1, 28, 28), config.dtype))
    log(f"data: {config.dataset}, {len(data.train_x)} train / {len(data.test_clean)} test images; "
        f"noise {config.noise} x{config.noise_factor} "
        f"({'clipped to [0, 1]' if config.clip else 'unclipped'}); noisy-input test MSE "
        f"{data.noisy_mse:.5f} ({psnr(data.noisy_mse):.2f} dB)")
    run.write_start_figures()
    metrics = None
    # Floating-point warnings (overflow, invalid values) would print raw NumPy lines from inside
    # the layers; a diverging run is caught once, by the non-finite loss check.
    with _StopFlag() as stop, numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(run.state["epoch"], config.epochs):
            seen, seconds = run.epoch(epoch, stop)
            run.state["train_seconds"] += seconds
            if stop.requested:
                run.checkpoint()
                run.write_outputs("interrupted")
                raise TrainingInterrupted(
                    f"{cli.stopped_by(stop.requested)} {_position(epoch, run.state['batch'])}; "
                    f"checkpoint saved: continue with --resume {run.out / 'checkpoint.npz'}",
                    stop.requested)
            run.evaluate(epoch, seen, seconds, final=epoch + 1 == config.epochs)
            run.checkpoint()
            metrics = run.write_outputs("running" if epoch + 1 < config.epochs else "finished")
            if stop.requested:                    # asked during the evaluation: stop here
                done = epoch + 1 == config.epochs
                raise TrainingInterrupted(
                    f"{cli.stopped_by(stop.requested)} after epoch {epoch + 1}; " +
                    (f"the run had finished: outputs in {run.out}" if done else
                     f"checkpoint saved: continue with --resume {run.out / 'checkpoint.npz'}"),
                    stop.requested)
            h = run.state["history"][-1]
            log(f"epoch {epoch + 1}: train MSE {h['train_mse']:.5f}, test MSE {h['test_mse']:.5f} "
                f"({h['test_psnr']:.2f} dB)" + (f", SSIM {h['test_ssim']:.3f}" if "test_ssim" in h else "")
                + f" vs noisy {data.noisy_mse:.5f} ({psnr(data.noisy_mse):.2f} dB"
                + (f", SSIM {h['noisy_ssim']:.3f}" if "noisy_ssim" in h else "")
                + f"), {seen / seconds:,.0f} images/s")
    return metrics if metrics is not None else run.write_outputs("finished")
