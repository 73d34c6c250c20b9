#!/usr/bin/env python
"""Train a denoiser on MNIST or Fashion-MNIST digits, or on photographs (Train400), and write
figures, metrics and a checkpoint into a new run directory.

    python examples/train_denoiser.py                       # MNIST, batch 64, 10 epochs
    python examples/train_denoiser.py --preset table-a      # batch 32, no weight decay
    python examples/train_denoiser.py --resume runs/mnist-.../checkpoint.npz --epochs 15
    python examples/train_denoiser.py --dataset train400 --model dncnn --sigma 25
    python examples/train_denoiser.py --dataset train400 --model dncnn --sigma-range 0 55

A run writes into a new folder (--out, or runs/<dataset>-<time>): figures, metrics.json,
history.csv and checkpoint.npz after every epoch. Ctrl-C (or SIGTERM) saves a checkpoint and
prints the command that continues the run; a resumed run writes beside the one it continues
(runs/NAME-resumed). Progress bars are drawn on a terminal; into a file or pipe, one line a
minute at most (--no-progress: none).
"""
from __future__ import annotations

import os
import sys

import _signal  # the signal module's C part, built in: no import time in which Ctrl-C could land

if __name__ == "__main__":   # one line for Ctrl-C while loading, or a Python without the project
    _signal.signal(_signal.SIGINT, lambda *_: (sys.stderr.write(   # at once: before any import
        "interrupted while starting; nothing was written\n"), os._exit(130)))
    import _start  # noqa: F401   (SIGTERM and SIGHUP too; the project's import checked)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from scratchnet import cli  # noqa: E402
from scratchnet.backend import BackendUnavailableError, get_backend  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from scratchnet.cli import (non_negative_float, non_negative_int, positive_float,  # noqa: E402
                            positive_int, sigma_value)
from scratchnet.data import DATASETS, NOISES, DatasetError, NoiseSpec  # noqa: E402
from scratchnet.experiment import (LR_SCHEDULES, PHOTO_DATASETS, PRESETS, Config,  # noqa: E402
                                   RunState, TrainingStopped, train)
from scratchnet.models import MODELS  # noqa: E402

PRESET_NOTES = {"table-b": "the default for digits", "table-a": "the smaller-batch table",
                "unet": "the U-Net recipe chosen by measurement",
                "photo-cpu": "the default for train400: sized for 2 CPU cores",
                "dncnn-s": "the paper's DnCNN-S, for a GPU",
                "dncnn-b": "the paper's blind DnCNN-B, for a GPU"}
DIGIT_NOISE_OPTIONS = {"noise", "noise_factor", "no_clip"}
PHOTO_NOISE_OPTIONS = {"sigma", "sigma_range"}


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = cli.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + "\n\n".join(__doc__.split("\n\n")[1:]).replace("\n    ", "\n  ")[2:],
        formatter_class=cli.OneDefaultFormatter)
    presets = "; ".join(f"'{name}' ({PRESET_NOTES.get(name, '')}): " + ", ".join(
        f"{k.replace('_', '-')} {_show(v)}" for k, v in values.items())
        for name, values in PRESETS.items())
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"a named set of settings; 'table-b' is the default for digits and "
                        f"'photo-cpu' for --dataset train400: {presets}. Explicit flags override it")
    p.add_argument("--dataset", choices=sorted([*DATASETS, *PHOTO_DATASETS]), default=d.dataset,
                   help="mnist or fashion-mnist (28x28 digits), or train400 (400 photographs "
                        "of 180x180, validated on set12 every epoch and tested on bsd68 at the end)")
    p.add_argument("--model", choices=sorted(MODELS), default=d.model,
                   help="'conv': the convolutional autoencoder; 'dense': Linear layers "
                        "784-256-64; 'unet': a U-Net with batch norm and skip connections; "
                        "'dncnn': DnCNN, a residual stack of 3x3 convolutions (photographs) "
                        "[default: conv for digits, dncnn for train400]")
    p.add_argument("--width", type=positive_int, default=None,
                   help="the U-Net's base width (channels of its first level) [default: 16] or "
                        "DnCNN's number of channels [default: 64]")
    p.add_argument("--depth", type=positive_int, default=None,
                   help="DnCNN's number of convolutions, >= 2 [default: 17]")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=d.backend,
                   help="array backend: 'numpy' (CPU) or 'cupy' (NVIDIA GPU, needs the gpu-cuda12 or gpu-cuda13 extra)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype, help="float precision")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"number of epochs (total, also when resuming) [default: {d.epochs}]")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"images per training batch [default: {d.batch_size}]")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"Adam learning rate [default: {d.lr}]")
    p.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default=None,
                   help="'constant', or 'cosine': the learning rate decays from --lr to 0 along "
                        "a half cosine over all batches of the run (stepped every batch) "
                        f"[default: {d.lr_schedule}]")
    p.add_argument("--weight-decay", type=non_negative_float, default=None,
                   help=f"Adam L2 weight decay, added to the gradient [default: {d.weight_decay}]")
    p.add_argument("--noise", choices=sorted(NOISES), default=d.noise.kind,
                   help="digits: corruption: gaussian (x + f*N(0,1)), salt-pepper (fraction f of "
                        "pixels set to 0/1), speckle (x + x*f*N(0,1))")
    p.add_argument("--noise-factor", type=non_negative_float, default=d.noise.factor,
                   help="digits: noise strength f (for salt-pepper: the fraction of pixels, <= 1)")
    p.add_argument("--no-clip", action="store_true",
                   help="digits: do not clip noisy images to [0, 1] (clipping is the default)")
    p.add_argument("--sigma", type=sigma_value, default=None,
                   help="photos: Gaussian noise of this standard deviation on the 0-255 scale, "
                        "not clipped [default: 25]")
    p.add_argument("--sigma-range", type=sigma_value, nargs=2, metavar=("LOW", "HIGH"),
                   default=None,
                   help="photos, blind: every training patch gets its own sigma, uniform in "
                        "[LOW, HIGH] (DnCNN-B: 0 55); scored at sigma 15, 25 and 50")
    p.add_argument("--test-sigmas", type=sigma_value, nargs="+", default=None, metavar="SIGMA",
                   help="photos: the sigmas set12 and bsd68 are scored at [default: --sigma, or "
                        "15 25 50 with --sigma-range]")
    p.add_argument("--patch-size", type=positive_int, default=None,
                   help=f"photos: side of the random training patches [default: {d.patch_size}]")
    p.add_argument("--patches-per-image", type=positive_int, default=None,
                   help="photos: an epoch draws this many patches per training image "
                        f"[default: {PRESETS['photo-cpu']['patches_per_image']}]")
    p.add_argument("--patch-scales", type=positive_float, nargs="+", default=None,
                   metavar="SCALE",
                   help="photos: also cut patches from the training images resized by these "
                        "factors (bicubic; the DnCNN authors' code: 1 0.9 0.8 0.7) "
                        f"[default: {' '.join(f'{x:g}' for x in d.patch_scales)}]")
    p.add_argument("--seed", type=non_negative_int, default=d.seed,
                   help="seed for weights, shuffling and training noise")
    p.add_argument("--data-dir", default=None,
                   help="folder with mnist/, fashion-mnist/ and natural/: the only place "
                        "looked in when given (downloads go there); otherwise $SCRATCHNET_DATA, "
                        "/usr/share/datasets, ~/.cache/scratchnet")
    p.add_argument("--no-download", action="store_true", help="never download missing data")
    p.add_argument("--out", default=None,
                   help="run directory to create (must not exist) [default: runs/<dataset>-<time>]")
    p.add_argument("--limit-train", type=positive_int, default=None,
                   help="use only the first N training images (quick runs)")
    p.add_argument("--limit-test", type=positive_int, default=None,
                   help="use only the first N test images (quick runs; photos: of set12 and bsd68)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz with its own configuration; "
                        "only --epochs, --backend, --data-dir, --no-download, --out and "
                        "--no-progress apply (any other option is refused). Writes a new run "
                        "directory beside the one it continues, NAME-resumed (or --out)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are drawn on a terminal; into a file or pipe, "
                        "one line a minute at most)")
    return p


def _show(value: object) -> str:
    return value.describe("sigma") if isinstance(value, NoiseSpec) else str(value)


# Options that still apply when a run is resumed (everything else is the checkpoint's own).
RESUME_OPTIONS = {"resume", "epochs", "backend", "data_dir", "no_download", "out", "no_progress"}
CONFIG_OPTIONS = {"dataset", "model", "width", "depth", "backend", "dtype", "epochs", "batch_size",
                  "lr", "lr_schedule", "weight_decay", "seed", "data_dir", "limit_train",
                  "limit_test", "patch_size", "patches_per_image", "patch_scales", "test_sigmas"}


def explicit_options(argv: list[str] | None) -> set[str]:
    """The options given on the command line (as argparse dests), defaults not counted."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def make_config(args: argparse.Namespace, parser: argparse.ArgumentParser,
                explicit: set[str]) -> Config:
    if args.resume:
        ignored = sorted(explicit - RESUME_OPTIONS)
        if ignored:
            names = ", ".join("--" + name.replace("_", "-") for name in ignored)
            parser.error(f"argument --resume: a resumed run keeps its checkpoint's settings, so "
                         f"{names} cannot be changed; only --epochs, --backend, --data-dir, "
                         "--no-download, --out and --no-progress apply")
        try:
            meta = load_checkpoint(args.resume)
            saved = meta["config"]
        except (CheckpointError, KeyError) as exc:
            parser.error(str(exc) if isinstance(exc, CheckpointError) else
                         f"checkpoint {args.resume} has no run configuration")
        try:                   # a hand-edited or foreign checkpoint: one line, before any folder
            config = Config.from_dict(saved)
            RunState.from_meta(meta)
        except ValueError as exc:
            parser.error(f"argument --resume: checkpoint {args.resume}: {exc}")
        epochs = args.epochs or config.epochs
        done = int(meta.get("epoch", 0))
        if epochs <= done:
            flag = "--epochs" if args.epochs else "--resume"
            parser.error(f"argument {flag}: checkpoint {args.resume} already holds {done} "
                         f"completed epoch{'s' if done != 1 else ''} of {config.epochs}, so there "
                         f"is nothing to train; give --epochs N with N > {done} to continue")
        return dataclasses.replace(config, backend=args.backend, data_dir=args.data_dir,
                                   epochs=epochs, download=config.download and not args.no_download)
    dataset = args.dataset if "dataset" in explicit else PRESETS.get(args.preset or "", {}).get(
        "dataset", args.dataset)
    photos = dataset in PHOTO_DATASETS
    values = dict(PRESETS[args.preset or ("photo-cpu" if photos else "table-b")])
    values.update({k: getattr(args, k) for k in CONFIG_OPTIONS if k in explicit})
    if photos:
        wrong = sorted(DIGIT_NOISE_OPTIONS & explicit)
        if wrong:
            parser.error(f"argument --{wrong[0].replace('_', '-')}: photographs take unclipped "
                         "Gaussian noise set by --sigma or --sigma-range")
        if args.sigma_range is not None and args.sigma_range[0] > args.sigma_range[1]:
            parser.error(f"argument --sigma-range: LOW must be <= HIGH, got {args.sigma_range[0]:g} "
                         f"{args.sigma_range[1]:g}")
        if args.sigma is not None or args.sigma_range is not None:
            values["noise"] = NoiseSpec.from_sigma(args.sigma, args.sigma_range)
    else:
        wrong = sorted((PHOTO_NOISE_OPTIONS | {"test_sigmas", "patch_size", "patches_per_image",
                                               "patch_scales"})
                       & explicit)
        if wrong:
            parser.error(f"argument --{wrong[0].replace('_', '-')}: only for photographs "
                         "(--dataset train400); digits take --noise, --noise-factor, --no-clip")
        try:
            values["noise"] = NoiseSpec(args.noise, args.noise_factor, None, not args.no_clip)
        except ValueError as exc:
            parser.error(f"argument --noise-factor: {exc}")
    values.pop("dataset", None)
    config = Config(**{**values, "dataset": dataset, "download": not args.no_download})
    if photos and config.model not in ("dncnn", "unet"):
        parser.error(f"argument --model: {config.model} takes 28x28 digits only; photographs "
                     "need --model dncnn or unet")
    if config.model not in ("unet", "dncnn") and "width" not in explicit:
        config.width = None                      # e.g. --preset unet --model conv
    if config.model != "dncnn" and "depth" not in explicit:
        config.depth = None
    if config.width is not None and config.model not in ("unet", "dncnn"):
        parser.error(f"argument --width: only --model unet and dncnn have a width, not --model {config.model}")
    if config.depth is not None and config.model != "dncnn":
        parser.error(f"argument --depth: only --model dncnn has a depth, not --model {config.model}")
    if config.depth is not None and config.depth < 2:
        parser.error(f"argument --depth: DnCNN needs at least 2 convolutions, got {config.depth}")
    if len(set(config.patch_scales)) != len(config.patch_scales):
        parser.error("argument --patch-scales: the factors must differ from each other, got "
                     + " ".join(f"{x:g}" for x in config.patch_scales))
    return config


def resumed_dir(checkpoint: str) -> Path:
    """Where a resumed run goes unless --out says: beside the run it continues, under its
    name (runs/exp -> runs/exp-resumed, then runs/exp-resumed-2, ...; never an existing one)."""
    run = Path(checkpoint).parent
    if not run.name:                                   # checkpoint.npz in the current folder
        run = run.resolve()
    base = re.sub(r"-resumed(-\d+)?$", "", run.name)
    for i in itertools.count(1):
        out = run.with_name(f"{base}-resumed" + (f"-{i}" if i > 1 else ""))
        if not out.exists():
            return out
    raise AssertionError("unreachable")


def resume_command(checkpoint: Path) -> str:
    """The command that continues a run from ``checkpoint`` (for the Ctrl-C message)."""
    return f"python {shlex.quote(sys.argv[0])} --resume {shlex.quote(str(checkpoint))}"


def make_out_dir(out: Path, parser: argparse.ArgumentParser, chosen: bool = True) -> Path:
    """Create (and so reserve) the run folder; two runs started at once cannot share it. A
    folder the user named must be new; a default name that is taken (two runs started in the
    same second, a second resume) gets the next free suffix: NAME-2, NAME-3, ..."""
    for i in itertools.count(1):
        candidate = out if i == 1 else out.with_name(f"{out.name}-{i}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            if chosen:
                parser.error(f"argument --out: {out} already exists; runs are never "
                             "overwritten, choose a new directory")
        except OSError as exc:
            parser.error(f"argument --out: cannot create {candidate} ({exc.strerror or exc})")
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = make_config(args, parser, explicit_options(argv))
    try:
        get_backend(config.backend)
    except BackendUnavailableError as exc:
        parser.error(f"argument --backend: {exc}")
    out = Path(args.out or (resumed_dir(args.resume) if args.resume else
                            f"runs/{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"))
    # From here on Ctrl-C ends the program in one line, after removing the run folder if it is
    # still empty; inside the training loop it first writes a checkpoint (experiment.train).
    made: list[Path] = []                              # the folder, once this run created it
    with cli.interrupts_exit(lambda: "nothing was written" if not out.exists() or not made
                             else f"what was written so far is in {out}",
                             cleanup=lambda: made and cli.remove_if_empty(out)):
        out = make_out_dir(out, parser, chosen=args.out is not None)
        made.append(out)
        print(f"run directory: {out}")
        try:
            metrics = train(config, out, resume=args.resume, progress=not args.no_progress,
                            resume_command=resume_command)
        except (DatasetError, CheckpointError, TrainingStopped) as exc:
            cli.remove_if_empty(out)
            print(f"error: {exc}", file=sys.stderr)
            return 1
    final = metrics["final"]
    if final and "test" in metrics:
        scores = ", ".join(f"sigma {k}: {v['psnr']:.2f} dB (noisy {v['noisy_psnr']:.2f})"
                           for k, v in metrics["test"]["sigmas"].items())
        print(f"done: {metrics['test']['set']} {scores}; outputs in {out}")
    elif final:
        noisy = metrics["noisy_baseline"]["mse"]
        print(f"done: test MSE {final['test_mse']:.5f} ({final['test_psnr']:.2f} dB), noisy input "
              f"{noisy:.5f}; outputs in {out}")
        if final["test_mse"] >= noisy:
            print(f"note: the model's output is no better than its noisy input (test MSE "
                  f"{final['test_mse']:.4f} >= {noisy:.4f}): too few training steps for this "
                  "model; train on more images (--limit-train) or for more epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
