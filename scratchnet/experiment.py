"""Train, evaluate and report a denoiser: the engine of examples/train_denoiser.py.

Two kinds of run share one loop. On the digits (MNIST, Fashion-MNIST) a batch is a set of whole
28x28 images and the test split is scored as one set. On photographs (``dataset="train400"``)
a batch is a set of random patches of the 400 training images ([`data.PatchLoader`][scratchnet.data.PatchLoader]), the
noise is unclipped Gaussian of a fixed sigma or, blind, of a sigma drawn per patch, Set12 is
scored after every epoch (PSNR and SSIM per image, averaged) and BSD68 once at the end.

One run writes into one directory (never an existing one): figures, ``metrics.json``,
``history.csv`` and ``checkpoint.npz`` (after every epoch, atomically). Every random stream is
derived from the seed: the shuffle of epoch e from (seed, e), the patches of batch b in epoch e
from (seed, e, b, 1), its noise from (seed, e, b), the fixed noisy test set from the noise's
``test_seed`` on the host. So a run resumed from a checkpoint continues exactly as if it had
never stopped.

Course: [9. Training the denoiser](../learn/09-training.md).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import numbers
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
from .backend import (BACKEND_NAMES, default_rng, get_backend, manual_seed, retain_freed_host_memory,
                      synchronize, to_numpy)
from .blas_threads import BlasThreadTuner
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import (DATASETS, BatchLoader, DatasetError, NoiseSpec, PatchLoader, find_dataset_dir,
                   find_natural_dir, images_to_array, load_dataset, load_natural)
from .evaluation import denoise_photos, mean_ssim, predict, psnr, score_model, score_photos
from .fileio import WriteError, atomic_write_csv, atomic_write_json
from .models import MODELS, build_model, summary
from .nn._checks import is_finite_number, is_integer

__all__ = ["Config", "RunState", "TrainingStopped", "TrainingInterrupted", "train", "psnr",
           "PRESETS", "LR_SCHEDULES", "PHOTO_DATASETS"]

# A photo training set and the sets it is validated (every epoch) and tested (once) on.
PHOTO_DATASETS = {"train400": ("set12", "bsd68")}
BENCHMARK_SIGMAS = (15.0, 25.0, 50.0)         # the levels the literature reports

PRESETS = {
    # batch 64, Adam lr 1e-3 with coupled L2 weight decay 1e-5, 10 epochs (the default)
    "table-b": dict(batch_size=64, lr=1e-3, weight_decay=1e-5, epochs=10),
    # batch 32, Adam lr 1e-3, no weight decay, 10 epochs
    "table-a": dict(batch_size=32, lr=1e-3, weight_decay=0.0, epochs=10),
    # the U-Net recipe chosen by measurement (benchmarks/README.md): twice the width, twice the
    # learning rate, cosine decay to 0 over the 10 epochs
    "unet": dict(model="unet", width=32, batch_size=64, lr=2e-3, lr_schedule="cosine",
                 weight_decay=1e-5, epochs=10),
    # photographs on a 2-core CPU (docs/photos.md): DnCNN depth 10, width 32, batches of 64
    # random 40x40 patches, Adam 1e-3 with cosine decay, 4 epochs of 500 batches (2,000 steps:
    # 51 min at the 1.54 s a step measured alone, benchmarks/README.md); sigma 25 unless
    # --sigma/--sigma-range say otherwise
    "photo-cpu": dict(dataset="train400", model="dncnn", depth=10, width=32, batch_size=64,
                      patch_size=40, patches_per_image=80, lr=1e-3, lr_schedule="cosine",
                      weight_decay=0.0, epochs=4, noise=NoiseSpec.from_sigma(25)),
    # the paper's DnCNN-S (one model per sigma) for a GPU: depth 17, width 64, batch 128 of
    # 40x40 patches, 128 x 1,600 patches per epoch, 50 epochs (Adam 1e-3, cosine); patches
    # also from the images at 0.9, 0.8 and 0.7 of their size, as the authors' code cuts them
    "dncnn-s": dict(dataset="train400", model="dncnn", depth=17, width=64, batch_size=128,
                    patch_size=40, patches_per_image=512, lr=1e-3, lr_schedule="cosine",
                    weight_decay=0.0, epochs=50, patch_scales=[1, 0.9, 0.8, 0.7]),
    # the paper's DnCNN-B (blind, sigma in [0, 55]) for a GPU: 50x50 patches, 128 x 3,000 per epoch
    "dncnn-b": dict(dataset="train400", model="dncnn", depth=17, width=64, batch_size=128,
                    patch_size=50, patches_per_image=960, lr=1e-3, lr_schedule="cosine",
                    weight_decay=0.0, epochs=50, noise=NoiseSpec.from_sigma(sigma_range=(0, 55)),
                    patch_scales=[1, 0.9, 0.8, 0.7]),
}
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass
class Config:
    """Everything that defines a run (saved in metrics.json and the checkpoint)."""
    dataset: str = "mnist"            # "mnist", "fashion-mnist" or "train400" (photographs)
    model: str = "conv"
    width: int | None = None          # the U-Net's / DnCNN's width (None: the model's default)
    depth: int | None = None          # DnCNN's number of convolutions (None: 17)
    backend: str = "numpy"
    dtype: str = "float32"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"     # or "cosine": decay to 0 over all batches of the run
    weight_decay: float = 1e-5
    noise: NoiseSpec = dataclasses.field(default_factory=NoiseSpec)
    patch_size: int = 40              # photos: the side of a training patch
    patches_per_image: int = 128      # photos: an epoch draws this many patches per image
    patch_scales: list[float] = dataclasses.field(default_factory=lambda: [1.0])
                                      # photos: the images are resized by these factors too
    test_sigmas: list[float] | None = None   # photos: the sigmas (0-255) Set12 and BSD68 are
                                      # scored at (None: the run's sigma; blind: 15, 25, 50)
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    data_dir: str | None = None
    download: bool = True
    log_every: int | None = None      # host reads of the loss: 1 on NumPy, 20 on CuPy

    @property
    def photos(self) -> bool:
        return self.dataset in PHOTO_DATASETS

    def sigmas(self) -> list[float]:
        """Photos: the sigmas the test sets are scored at."""
        if self.test_sigmas:
            return [float(s) for s in self.test_sigmas]
        return list(BENCHMARK_SIGMAS) if self.noise.blind else [round(self.noise.sigma, 6)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "Config":
        """The config a checkpoint or metrics.json holds (also the flat noise keys of older
        checkpoints: noise, noise_factor, clip, test_seed), validated.

        Raises:
            ValueError: a value of the wrong type, outside its choices or range (one line
                naming the field).
        """
        if not isinstance(saved, dict):
            raise ValueError(f"the run configuration is a {type(saved).__name__}, expected a mapping")
        for key in ("dataset", "model"):
            if key not in saved:
                raise ValueError(f"the run configuration has no {key!r}")
        values = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
        try:
            values["noise"] = NoiseSpec.from_config(saved)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"the run configuration's noise {saved.get('noise')!r} is not a "
                             f"noise specification ({exc})") from None
        for key in ("test_sigmas", "patch_scales"):
            if isinstance(values.get(key), tuple):
                values[key] = list(values[key])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every field's type, choice and range (what a hand-edited or hostile
        checkpoint, or a caller of `train`, may get wrong).

        Raises:
            ValueError: one line naming the field, its value and what was expected.
        """
        def fail(name: str, expected: str) -> None:
            raise ValueError(f"config {name} is {getattr(self, name)!r}; expected {expected}")

        choices = {"dataset": sorted([*DATASETS, *PHOTO_DATASETS]), "model": sorted(MODELS),
                   "backend": sorted(BACKEND_NAMES), "dtype": ["float32", "float64"],
                   "lr_schedule": list(LR_SCHEDULES)}
        for name, allowed in choices.items():
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                fail(name, f"one of {allowed}")
        for name in ("epochs", "batch_size", "patch_size", "patches_per_image"):
            if not is_integer(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "an integer >= 1")
        for name in ("width", "depth", "limit_train", "limit_test", "log_every"):
            v = getattr(self, name)
            if v is not None and (not is_integer(v) or v < 1):
                fail(name, "an integer >= 1 or null")
        if not is_integer(self.seed) or self.seed < 0:
            fail("seed", "an integer >= 0")
        for name, low in (("lr", "> 0"), ("weight_decay", ">= 0")):
            v = getattr(self, name)
            if not is_finite_number(v) or (v <= 0 if low == "> 0" else v < 0):
                fail(name, f"a finite number {low}")
        if not isinstance(self.noise, NoiseSpec):
            fail("noise", "a noise specification")
        if self.test_sigmas is not None and (not isinstance(self.test_sigmas, list) or not all(
                is_finite_number(s) and s >= 0 for s in self.test_sigmas)):
            fail("test_sigmas", "a list of finite sigmas >= 0 or null")
        if (not isinstance(self.patch_scales, list) or not self.patch_scales or not all(
                is_finite_number(s) and 0 < s for s in self.patch_scales)
                or len(set(self.patch_scales)) != len(self.patch_scales)):
            fail("patch_scales", "a list of different factors > 0")
        if not isinstance(self.download, bool):
            fail("download", "true or false")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            fail("data_dir", "a folder name or null")


@dataclasses.dataclass
class RunState:
    """Where a run stands: what a checkpoint carries besides weights, optimizer and config."""
    epoch: int = 0                    # completed epochs
    batch: int = 0                    # batches done in the current epoch
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)   # one per epoch
    iteration_losses: list[float] = dataclasses.field(default_factory=list)
    partial_loss: float = 0.0         # sum of loss * images over the current epoch so far
    partial_images: int = 0
    train_seconds: float = 0.0
    blas_threads: int | None = None   # the BLAS thread count in use (CPU runs; see blas_threads)

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "RunState":
        """The state a checkpoint's meta holds, checked (ValueError: one line naming the field)."""
        values = {k: meta[k] for k in cls.__dataclass_fields__ if k in meta}
        if "partial" in meta:                             # older checkpoints: [sum, count]
            if not isinstance(meta["partial"], list) or len(meta["partial"]) != 2:
                raise ValueError(f"checkpoint field partial is {meta['partial']!r}; expected [sum, count]")
            values["partial_loss"], values["partial_images"] = meta["partial"]
        state = cls(**values)

        def number(v: Any, integral: bool = False) -> bool:
            return (is_integer(v) if integral else is_finite_number(v)) and v >= 0

        for name, integral in (("epoch", True), ("batch", True), ("partial_images", True),
                               ("partial_loss", False), ("train_seconds", False)):
            if not number(getattr(state, name), integral):
                raise ValueError(f"checkpoint field {name} is {getattr(state, name)!r}; expected "
                                 f"{'an integer' if integral else 'a finite number'} >= 0")
        if not isinstance(state.history, list) or not all(isinstance(h, dict) for h in state.history):
            raise ValueError("checkpoint field history is not a list of epochs")
        if not isinstance(state.iteration_losses, list) or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in state.iteration_losses):
            raise ValueError("checkpoint field iteration_losses is not a list of numbers")
        if state.blas_threads is not None and (not number(state.blas_threads, True)
                                               or state.blas_threads < 1):
            raise ValueError(f"checkpoint field blas_threads is {state.blas_threads!r}; expected "
                             "an integer >= 1")
        return state

    def end_epoch(self) -> None:
        self.epoch, self.batch, self.partial_loss, self.partial_images = self.epoch + 1, 0, 0.0, 0


class TrainingStopped(Exception):
    """Training stopped early (non-finite loss); the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) during training: the checkpoint was written first.
    ``str(exc)`` says where the run stopped and how to continue it; ``exit_status`` is 130 for
    Ctrl-C, 128 + the signal's number otherwise (143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum, self.exit_status = signum, 128 + signum


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
    them while training goes on; `close` waits for the last one, and an error while
    writing (disk full) is raised by the next call, as `WriteError`, naming the file.
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
    folder: Path                      # where the dataset was found (printed, in metrics.json)


@dataclasses.dataclass
class _PhotoSet:
    """A test set of photographs (host, float in [0, 1]) and its fixed noisy copies per sigma."""
    name: str
    clean: list[numpy.ndarray]
    noisy: dict[float, list[numpy.ndarray]]
    noisy_scores: dict[float, dict[str, Any]]


def _photo_set(name: str, config: Config) -> _PhotoSet:
    images, _ = load_natural(name, config.data_dir, config.download, config.limit_test)
    clean = [u8.astype(config.dtype) / numpy.asarray(255, config.dtype) for u8 in images]
    noisy = {s: [config.noise.at(s / 255).test_image(c, i) for i, c in enumerate(clean)]
             for s in config.sigmas()}
    return _PhotoSet(name, clean, noisy,
                     {s: score_photos(clean, n, clip=False) for s, n in noisy.items()})


@dataclasses.dataclass
class _PhotoData:
    """Photographs: training images on the device, the validation set loaded at the start."""
    train_x: Any
    val: _PhotoSet
    folder: Path                      # where the training set was found


def _load_data(config: Config) -> _Data | _PhotoData:
    """Load the data once, move the training images to the device once, and draw the noisy
    test set(s) from the noise's test seed on the host (the same noisy images for every run)."""
    xp = get_backend(config.backend)
    if config.photos:
        images, _ = load_natural(config.dataset, config.data_dir, config.download, config.limit_train)
        train_x = xp.asarray(numpy.stack(images)).astype(config.dtype)
        train_x /= 255
        return _PhotoData(train_x, _photo_set(PHOTO_DATASETS[config.dataset][0], config),
                          find_natural_dir(config.dataset, config.data_dir))
    train_u8, train_labels = load_dataset(config.dataset, "train", config.data_dir, config.download)
    test_u8, _ = load_dataset(config.dataset, "test", config.data_dir, config.download)
    train_u8, train_labels = train_u8[:config.limit_train], train_labels[:config.limit_train]
    clean = images_to_array(test_u8[:config.limit_test], "numpy", config.dtype)
    noisy = config.noise.test_batch(clean)
    # Only samples.png needs the uint8 images once they are floats on the device: keep 32.
    return _Data(images_to_array(train_u8, config.backend, config.dtype), train_u8[:32].copy(),
                 train_labels[:32].copy(),
                 clean, noisy, xp.asarray(clean), xp.asarray(noisy),
                 float(((noisy - clean) ** 2).mean(dtype="float64")),
                 find_dataset_dir(config.dataset, "train", config.data_dir))


def _crop(image: numpy.ndarray, size: int = 160) -> tuple[slice, slice]:
    """The centre crop the photo figures show at full resolution."""
    H, W = image.shape[-2:]
    top, left = max(0, (H - size) // 2), max(0, (W - size) // 2)
    return slice(top, top + size), slice(left, left + size)


class _Run:
    """One training run: model, optimizer, schedule and the state a checkpoint carries.

    ``train()`` drives it: ``epoch()`` trains one epoch, ``evaluate()`` scores the test set,
    ``checkpoint()`` and ``write_outputs()`` write the run directory.
    """

    def __init__(self, config: Config, out: Path, data: _Data | _PhotoData,
                 resume: str | Path | None, log: Callable[[str], None], progress: bool):
        self.config, self.out, self.data, self.log, self.progress = config, out, data, log, progress
        self.xp = get_backend(config.backend)
        self.t_start = time.perf_counter()
        manual_seed(config.seed)
        self.model = build_model(config.model, config.width, config.depth).to(config.backend, config.dtype)
        self.opt = optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.mse = nn.MSELoss()
        self.state = RunState()
        self.last_checkpoint: tuple[Path, int] | None = None     # (file, epoch) to resume from
        if resume is not None:
            meta = load_checkpoint(resume, self.model, self.opt)
            try:
                self.state = RunState.from_meta(meta)
            except ValueError as exc:
                raise CheckpointError(f"checkpoint {resume}: {exc}") from None
            self.last_checkpoint = (Path(resume), self.state.epoch)
            log(f"resumed from {resume}: {_position(self.state.epoch, self.state.batch)}")
        if config.photos:
            try:
                self.loader: BatchLoader | PatchLoader = PatchLoader(
                    data.train_x, config.patch_size, config.batch_size, config.patches_per_image,
                    seed=config.seed, scales=config.patch_scales)
            except ValueError as exc:        # patches that do not fit these images
                raise DatasetError(f"{config.dataset}: {exc}") from None
        else:
            self.loader = BatchLoader(data.train_x, config.batch_size, shuffle=True, seed=config.seed)
        self.scheduler = None
        if config.lr_schedule == "cosine":   # per batch; a function of the step count only
            self.scheduler = optim.CosineAnnealingLR(
                self.opt, T_max=config.epochs * len(self.loader),
                last_epoch=self.state.epoch * len(self.loader) + self.state.batch)
        self.log_every = config.log_every or (1 if config.backend == "numpy" else 20)
        self.title = (f"{config.dataset}, {config.noise.describe('sigma')}" if config.photos
                      else f"{config.dataset}, {config.noise.kind} noise x{config.noise.factor:g}")
        self.versions = _versions(config.backend)
        self.figures = _Figures(background=config.backend == "cupy")
        # BLAS's thread count, timed on the steps themselves (CPU only; a GPU step is async).
        # A resumed run continues with its count and the same schedule of probes.
        step = self.state.epoch * len(self.loader) + self.state.batch
        self.blas = (BlasThreadTuner(initial=None if self.state.blas_threads is None
                                     else (step, self.state.blas_threads))
                     if config.backend == "numpy" else None)

    def step(self, clean: Any, epoch: int, b: int) -> Any:
        """One training step on a clean batch (fresh noise from (seed, epoch, batch))."""
        c = self.config
        with self.blas or contextlib.nullcontext():
            noisy = c.noise.apply(clean, default_rng((c.seed, epoch, b), c.backend))
            self.opt.zero_grad()
            loss = self.mse(self.model(noisy), clean)
            self.model.backward(self.mse.backward())
            self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.blas is not None:
            self.state.blas_threads = self.blas.threads
        return loss

    def epoch(self, epoch: int, stop: "_StopFlag") -> tuple[int, float]:
        """Train one epoch (from ``state.batch`` when resumed mid-epoch); returns (images
        seen, seconds). Reads the losses back every ``log_every`` batches."""
        state, cfg = self.state, self.config
        self.loader.epoch = epoch
        unit = "patches" if cfg.photos else "img"
        # On a terminal the bar redraws in place; into a file or pipe every redraw is kept, so
        # there it is drawn once a minute at most (a 10-epoch log: a few KB, not hundreds).
        tty = sys.stderr.isatty()
        bar = tqdm(total=len(self.loader), initial=state.batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress, file=sys.stderr, dynamic_ncols=tty,
                   mininterval=0.1 if tty else 60, maxinterval=10 if tty else 600)
        pending: list[tuple[Any, int]] = []
        t0, seen = time.perf_counter(), 0
        for b, clean in enumerate(self.loader):
            if b < state.batch:
                continue                          # resumed mid-epoch: same order, skip done ones
            pending.append((self.step(clean, epoch, b), len(clean)))
            seen += len(clean)
            state.batch = b + 1
            if len(pending) >= self.log_every or b + 1 == len(self.loader) or stop.requested:
                values = to_numpy(self.xp.stack([p[0] for p in pending])).astype(float)
                if not numpy.isfinite(values).all():
                    bar.close()
                    self.write_outputs("stopped: non-finite loss")
                    raise TrainingStopped(
                        f"loss became {values[~numpy.isfinite(values)][0]} in epoch {epoch + 1}, "
                        f"batch {b + 1}; stopped: {self.checkpoint_note()}; {self.divergence_hint()}")
                state.iteration_losses += values.tolist()
                state.partial_loss += float(sum(v * n for v, (_, n) in zip(values, pending)))
                state.partial_images += sum(n for _, n in pending)
                pending.clear()
                bar.update(len(values))
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix({"loss": f"{state.partial_loss / state.partial_images:.5f}",
                                 f"{unit}/s": f"{rate:,.0f}"}, refresh=False)    # tqdm rate-limits
            if stop.requested:
                break
        synchronize(self.xp)
        bar.close()
        return seen, time.perf_counter() - t0

    def evaluate(self, epoch: int, seen: int, seconds: float, final: bool) -> None:
        """Score the fixed noisy test set and append the epoch to the history. Digits: SSIM
        after the last epoch only (about 1.1 s per 10,000 test images on the CPU, against a
        6 s epoch of the reference model). Photos: PSNR and SSIM of the validation set at
        every sigma, every epoch."""
        state = self.state
        entry: dict[str, Any] = {"epoch": epoch + 1,
                                 "train_mse": state.partial_loss / state.partial_images}
        if self.config.photos:
            val = self.data.val
            entry["val"] = {}
            for s, noisy in val.noisy.items():
                outputs, spi = denoise_photos(self.model, noisy)
                scores = score_photos(val.clean, outputs)
                entry["val"][_key(s)] = {"psnr": scores["psnr"], "ssim": scores["ssim"],
                                         "seconds_per_image": spi}
        else:
            d = self.data
            scores = score_model(self.model, d.test_clean, d.test_noisy, ssim=final)
            entry.update({"test_mse": scores["mse"], "test_psnr": scores["psnr"],
                          "noisy_mse": d.noisy_mse, "noisy_psnr": psnr(d.noisy_mse)})
            if final:
                entry.update({"test_ssim": scores["ssim"],
                              "noisy_ssim": mean_ssim(d.test_clean_host, d.test_noisy_host)})
        entry.update({"seconds": seconds, "images": state.partial_images,
                      "images_per_s": seen / seconds})
        state.history.append(entry)
        state.end_epoch()

    def test_photos(self) -> dict[str, Any]:
        """Score the photo test set (BSD68) once, at every sigma: the run's final result."""
        cfg = self.config
        test = _photo_set(PHOTO_DATASETS[cfg.dataset][1], cfg)
        result: dict[str, Any] = {"set": test.name, "images": len(test.clean), "sigmas": {}}
        for s, noisy in test.noisy.items():
            outputs, spi = denoise_photos(self.model, noisy)
            scores = score_photos(test.clean, outputs)
            result["sigmas"][_key(s)] = {
                "psnr": scores["psnr"], "ssim": scores["ssim"],
                "noisy_psnr": test.noisy_scores[s]["psnr"], "noisy_ssim": test.noisy_scores[s]["ssim"],
                "seconds_per_image": spi, "psnr_per_image": scores["psnr_per_image"],
                "ssim_per_image": scores["ssim_per_image"]}
        return result

    def checkpoint(self, **extra: Any) -> None:
        save_checkpoint(self.out / "checkpoint.npz", self.model, self.opt,
                        config=self.config.to_dict(), **self.state.to_meta(), **extra)
        self.last_checkpoint = (self.out / "checkpoint.npz", self.state.epoch)

    def divergence_hint(self) -> str:
        """What to change after a non-finite loss: the learning rate, or an unusually large
        weight decay (the presets use 1e-5 or 0; Adam adds weight_decay * p to the gradient)."""
        wd = self.config.weight_decay
        if wd > 1e-2:
            return (f"--weight-decay {wd:g} is unusually large (the presets use 1e-5 or 0): try "
                    "a smaller one, or a smaller --lr")
        return "try a smaller --lr"

    def checkpoint_note(self) -> str:
        """What a user can resume from, in words (for the messages of a stopped run)."""
        if self.last_checkpoint is None:
            return "no checkpoint was written yet, so this run cannot be resumed"
        path, epoch = self.last_checkpoint
        return f"the last good checkpoint (epoch {epoch}) is {path}"

    def write_start_figures(self) -> None:
        """samples.png and noise.png (also for a resumed run: it has a new directory)."""
        cfg, d = self.config, self.data
        if cfg.photos:
            patches = to_numpy(self.loader.batch(0, 0))[:32, 0]
            image, _, _, mode, k = (v[:32] for v in self.loader.indices(0, 0))
            scaled = cfg.patch_scales != [1.0]                # as the data line says
            label = [f"#{i + 1} t{m}" + (f"\nx{cfg.patch_scales[s]:g}" if scaled else "")
                     for i, m, s in zip(image, mode, k)]
            self.figures.draw("plot_crops", (
                [list(zip(label[r:r + 8], patches[r:r + 8])) for r in range(0, len(patches), 8)],
                f"{cfg.dataset}: the first batch's {cfg.patch_size}x{cfg.patch_size} patches\n"
                "(training image #, transform 0-7" + (", image scale)" if scaled else ")")),
                self.out / "samples.png")
            clean = d.val.clean[0]
            crop = _crop(clean)
            levels = [0, 15, 25, 50]
            self.figures.draw("plot_crops", (
                [[(f"sigma {s}", cfg.noise.at(s / 255).test_image(clean, 0)[crop]) for s in levels]],
                f"{d.val.name} image 1: Gaussian noise at several sigmas ({'clipped' if cfg.noise.clip else 'unclipped'})"),
                self.out / "noise.png")
            return
        self.figures.draw("plot_samples", (d.samples_u8 / 255, d.sample_labels,
                                           DATASETS[cfg.dataset].classes,
                                           f"{cfg.dataset}: training images"), self.out / "samples.png")
        factors = [0, 0.1, 0.25, 0.5, 0.75, 1.0]
        one = d.test_clean_host[:1]
        self.figures.draw("plot_noise_levels", (
            [cfg.noise.at(f).test_batch(one)[0] for f in factors],
            factors, f"{cfg.noise.kind} noise at several factors"), self.out / "noise.png")

    def write_outputs(self, status: str, test: dict[str, Any] | None = None) -> dict[str, Any]:
        """metrics.json, history.csv and the loss and results figures, atomically."""
        hist, d, cfg = self.state.history, self.data, self.config
        metrics: dict[str, Any] = {"status": status, "config": cfg.to_dict(),
                                   "data_folder": str(d.folder)}
        if cfg.photos:
            metrics["validation"] = {"set": d.val.name, "images": len(d.val.clean), "noisy": {
                _key(s): {"psnr": v["psnr"], "ssim": v["ssim"]} for s, v in d.val.noisy_scores.items()}}
            if test is not None:
                metrics["test"] = test
        else:
            metrics["noisy_baseline"] = {"mse": d.noisy_mse, "psnr": psnr(d.noisy_mse)}
        metrics.update({
            "epochs": hist, "final": hist[-1] if hist else None,
            "wall_time_s": time.perf_counter() - self.t_start,
            "train_seconds": self.state.train_seconds,
            "train_images_per_s": (sum(h["images"] for h in hist) / self.state.train_seconds
                                   if hist and self.state.train_seconds else None),
            "backend": cfg.backend, "versions": self.versions})
        if self.blas is not None:
            metrics["blas_threads"] = {"threads": self.blas.threads, "probes": [
                {"step": step, "threads": n, "seconds_per_step": {str(c): t for c, t in best.items()}}
                for step, n, best in self.blas.choices]}
        atomic_write_json(self.out / "metrics.json", metrics)
        rows = [_flat(h) for h in hist]
        fields = (HISTORY_FIELDS if not cfg.photos else
                  ["epoch", "train_mse"] + [f"val_{m}_{_key(s)}" for s in cfg.sigmas()
                                            for m in ("psnr", "ssim")] + ["seconds", "images_per_s"])
        atomic_write_csv(self.out / "history.csv", fields, rows)
        if self.state.iteration_losses:
            self.figures.draw("plot_iteration_loss", (
                list(self.state.iteration_losses), len(self.loader),
                f"{self.title}: training loss"), self.out / "loss_iterations.png")
        if hist and cfg.photos:
            self._photo_figures(hist, test)
        elif hist:
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

    def _photo_figures(self, hist: list[dict[str, Any]], test: dict[str, Any] | None) -> None:
        """loss_epochs.png (validation PSNR per epoch and sigma) and results.png (a crop of
        the first validation image at full resolution: clean, noisy, denoised per sigma)."""
        val = self.data.val
        curves = {s: [h["val"][_key(s)]["psnr"] for h in hist] for s in val.noisy}
        self.figures.draw("plot_val_psnr", (
            [h["epoch"] for h in hist], {f"sigma {s:g}": c for s, c in curves.items()},
            {f"sigma {s:g}": v["psnr"] for s, v in val.noisy_scores.items()},
            f"{self.title}: {val.name} PSNR per epoch"), self.out / "loss_epochs.png")
        clean = val.clean[0]
        crop = _crop(clean)
        rows = []
        for s, noisy in val.noisy.items():
            out = numpy.clip(denoise_photos(self.model, noisy[:1])[0][0], 0, 1)
            rows.append([("clean", clean[crop]),
                         (f"noisy, sigma {s:g}: {psnr(float(((noisy[0] - clean) ** 2).mean())):.2f} dB",
                          noisy[0][crop]),
                         (f"denoised: {psnr(float(((out - clean) ** 2).mean())):.2f} dB", out[crop])])
        last = hist[-1]["val"]
        summary_line = ", ".join(f"sigma {k}: {v['psnr']:.2f} dB" for k, v in last.items())
        tested = ""
        if test is not None:
            tested = "; " + test["set"] + " " + ", ".join(
                f"sigma {k}: {v['psnr']:.2f} dB" for k, v in test["sigmas"].items())
        self.figures.draw("plot_crops", (
            rows, f"{self.title}; epoch {hist[-1]['epoch']}: {val.name} {summary_line}{tested} "
            f"(PSNR of the whole image; crop at full resolution)"), self.out / "results.png")


def _key(sigma: float) -> str:
    """A sigma as a JSON key: "25", "12.5"."""
    return f"{sigma:g}"


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry as one CSV row (photos: val_psnr_25, val_ssim_25, ...)."""
    row = {k: v for k, v in entry.items() if k != "val"}
    for s, scores in entry.get("val", {}).items():
        row[f"val_psnr_{s}"], row[f"val_ssim_{s}"] = scores["psnr"], scores["ssim"]
    return row


def _position(done_epochs: int, batch: int) -> str:
    """Where a run stands, in the progress bar's terms (epochs count from 1)."""
    if batch:
        return f"in epoch {done_epochs + 1} after batch {batch}"
    return f"after epoch {done_epochs}" if done_epochs else "before the first epoch"


HISTORY_FIELDS = ["epoch", "train_mse", "test_mse", "test_psnr", "test_ssim", "noisy_mse",
                  "noisy_psnr", "noisy_ssim", "seconds", "images_per_s"]


def train(config: Config, out_dir: str | Path, resume: str | Path | None = None,
          log: Callable[[str], None] = print, progress: bool = True,
          resume_command: Callable[[Path], str] | None = None) -> dict[str, Any]:
    """Run (or continue) training and write every output into ``out_dir``.

    Args:
        resume_command: the command that continues from a checkpoint, for the message of an
            interrupted run (a program passes its own; default ``--resume PATH``).

    Returns:
        The metrics dict also written to ``metrics.json``.
    Raises:
        TrainingStopped: the loss became NaN/inf, or an output could not be written (disk
            full, ...); the message says which checkpoint a resume can start from.
        TrainingInterrupted: after Ctrl-C, once the checkpoint was written (a
            KeyboardInterrupt whose message says where the run stopped and how to resume).
    """
    config.validate()
    if config.photos and config.model not in ("dncnn", "unet"):
        raise ValueError(f"model {config.model!r} takes 28x28 digits only; photographs need "
                         "'dncnn' or 'unet'")
    get_backend(config.backend)
    retain_freed_host_memory()        # reuse the step's large temporaries (see its docstring)
    data = _load_data(config)
    run = _Run(config, Path(out_dir), data, resume, log, progress)
    run.resume_command = resume_command or (lambda path: f"--resume {path}")
    try:
        try:
            return _train(run, log)
        finally:
            run.figures.close()             # every figure asked for is on disk (or failed)
            if run.blas is not None:
                run.blas.close()            # BLAS gets back the thread count it had
    except WriteError as exc:            # disk full, no permission: one line, what survives
        raise TrainingStopped(f"{exc}; stopped: {run.checkpoint_note()}") from None


def _describe_data(run: _Run) -> str:
    config, data = run.config, run.data
    if config.photos:
        P = config.patch_size
        noisy = ", ".join(f"sigma {s:g}: {v['psnr']:.2f} dB" for s, v in data.val.noisy_scores.items())
        return (f"data: {config.dataset} from {data.folder}, {len(data.train_x)} training images "
                f"({data.train_x.shape[1]}x{data.train_x.shape[2]}), {len(run.loader)} batches of "
                f"{config.batch_size} random {P}x{P} patches per epoch"
                + ("" if config.patch_scales == [1.0] else
                   " (image scales " + ", ".join(f"{x:g}" for x in config.patch_scales) + ")")
                + f"; validation "
                f"{data.val.name} ({len(data.val.clean)} images), test "
                f"{PHOTO_DATASETS[config.dataset][1]} at the end; noise "
                f"{config.noise.describe('sigma')}; noisy-input {data.val.name} PSNR {noisy}")
    return (f"data: {config.dataset} from {data.folder}, {len(data.train_x)} train / "
            f"{len(data.test_clean)} test images; "
            f"noise {config.noise.describe()}; noisy-input test MSE "
            f"{data.noisy_mse:.5f} ({psnr(data.noisy_mse):.2f} dB)")


def _epoch_line(run: _Run, epoch: int, seen: int, seconds: float) -> str:
    h, data = run.state.history[-1], run.data
    if run.config.photos:
        scores = ", ".join(f"sigma {k}: {v['psnr']:.2f} dB / SSIM {v['ssim']:.3f}"
                           for k, v in h["val"].items())
        return (f"epoch {epoch + 1}: train MSE {h['train_mse']:.6f}, {data.val.name} {scores}, "
                f"{seen / seconds:,.0f} patches/s")
    return (f"epoch {epoch + 1}: train MSE {h['train_mse']:.5f}, test MSE {h['test_mse']:.5f} "
            f"({h['test_psnr']:.2f} dB)" + (f", SSIM {h['test_ssim']:.3f}" if "test_ssim" in h else "")
            + f" vs noisy {data.noisy_mse:.5f} ({psnr(data.noisy_mse):.2f} dB"
            + (f", SSIM {h['noisy_ssim']:.3f}" if "noisy_ssim" in h else "")
            + f"), {seen / seconds:,.0f} images/s")


def _train(run: _Run, log: Callable[[str], None]) -> dict[str, Any]:
    """The epoch loop of `train`: train, evaluate, checkpoint, write, log."""
    config = run.config
    side = config.patch_size if config.photos else 28
    log(f"model '{config.model}' on {config.backend}/{config.dtype}:\n"
        + summary(run.model, (1, 1, side, side), config.dtype))
    log(_describe_data(run))
    run.write_start_figures()
    metrics = None
    # Floating-point warnings (overflow, invalid values) would print raw NumPy lines from inside
    # the layers; a diverging run is caught once, by the non-finite loss check.
    with _StopFlag() as stop, numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(run.state.epoch, config.epochs):
            seen, seconds = run.epoch(epoch, stop)
            run.state.train_seconds += seconds
            if stop.requested:
                run.checkpoint()
                run.write_outputs("interrupted")
                raise TrainingInterrupted(
                    f"{cli.stopped_by(stop.requested)} {_position(epoch, run.state.batch)}; "
                    f"checkpoint saved: continue with {run.resume_command(run.out / 'checkpoint.npz')}",
                    stop.requested)
            last = epoch + 1 == config.epochs
            run.evaluate(epoch, seen, seconds, final=last)
            test = run.test_photos() if last and config.photos else None
            run.checkpoint(**({"test": test} if test else {}))
            metrics = run.write_outputs("finished" if last else "running", test)
            log(_epoch_line(run, epoch, seen, seconds))
            if run.blas is not None:
                log(run.blas.summary())
            if test is not None:
                log(f"{test['set']} ({test['images']} images): " + ", ".join(
                    f"sigma {k}: {v['psnr']:.2f} dB / SSIM {v['ssim']:.3f} (noisy {v['noisy_psnr']:.2f} dB)"
                    for k, v in test["sigmas"].items()))
            if stop.requested:                    # asked during the evaluation: stop here
                raise TrainingInterrupted(
                    f"{cli.stopped_by(stop.requested)} after epoch {epoch + 1}; " +
                    (f"the run had finished: outputs in {run.out}" if last else
                     f"checkpoint saved: continue with {run.resume_command(run.out / 'checkpoint.npz')}"),
                    stop.requested)
    return metrics if metrics is not None else run.write_outputs("finished")
