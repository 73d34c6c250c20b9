#!/usr/bin/env python
"""Train the denoising autoencoder on MNIST or Fashion-MNIST and write figures, metrics and a
checkpoint into a new run directory.

    python examples/train_denoiser.py                       # MNIST, batch 64, 10 epochs
    python examples/train_denoiser.py --preset table-a      # batch 32, no weight decay
    python examples/train_denoiser.py --resume runs/mnist-.../checkpoint.npz --epochs 15
"""
from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":   # Ctrl-C while the libraries load: one line, exit 130, no traceback
    signal.signal(signal.SIGINT, lambda *_: (sys.stderr.write(
        "interrupted while starting; nothing was written\n"), os._exit(130)))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from scratchnet import cli  # noqa: E402
from scratchnet.backend import BackendUnavailableError, get_backend  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from scratchnet.cli import non_negative_float, positive_float, positive_int  # noqa: E402
from scratchnet.data import DATASETS, NOISES, DatasetError  # noqa: E402
from scratchnet.experiment import (LR_SCHEDULES, PRESETS, Config, TrainingStopped,  # noqa: E402
                                   train)
from scratchnet.models import MODELS  # noqa: E402

PRESET_NOTES = {"table-b": "the default", "table-a": "the smaller-batch table",
                "unet": "the U-Net recipe chosen by measurement"}


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = cli.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=cli.OneDefaultFormatter)
    presets = "; ".join(f"'{name}' ({PRESET_NOTES.get(name, '')}): " + ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in values.items()) for name, values in PRESETS.items())
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"a named set of settings; 'table-b' is the default and 'table-a' the "
                        f"other of the two hyperparameter tables the project started from: "
                        f"{presets}. Explicit flags override it")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset, help="dataset")
    p.add_argument("--model", choices=sorted(MODELS), default=d.model,
                   help="'conv': the convolutional autoencoder; 'dense': Linear layers "
                        "784-256-64; 'unet': a U-Net with batch norm and skip connections")
    p.add_argument("--width", type=positive_int, default=None,
                   help="the U-Net's base width (channels of its first level) [default: 16]")
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
    p.add_argument("--noise", choices=sorted(NOISES), default=d.noise,
                   help="corruption: gaussian (x + f*N(0,1)), salt-pepper (fraction f of pixels "
                        "set to 0/1), speckle (x + x*f*N(0,1))")
    p.add_argument("--noise-factor", type=non_negative_float, default=d.noise_factor,
                   help="noise strength f (for salt-pepper: the fraction of pixels, <= 1)")
    p.add_argument("--no-clip", action="store_true",
                   help="do not clip noisy images to [0, 1] (clipping is the default)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed for weights, shuffling and training noise")
    p.add_argument("--data-dir", default=None,
                   help="folder with mnist/ and fashion-mnist/ (searched first; otherwise "
                        "$SCRATCHNET_DATA, /usr/share/datasets, ~/.cache/scratchnet)")
    p.add_argument("--no-download", action="store_true", help="never download missing data")
    p.add_argument("--out", default=None,
                   help="run directory to create (must not exist) [default: runs/<dataset>-<time>]")
    p.add_argument("--limit-train", type=positive_int, default=None,
                   help="use only the first N training images (quick runs)")
    p.add_argument("--limit-test", type=positive_int, default=None,
                   help="use only the first N test images (quick runs)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz with its own configuration; "
                        "only --epochs, --backend, --data-dir, --no-download, --out and "
                        "--no-progress apply (any other option is refused). Writes a new run "
                        "directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# Options that still apply when a run is resumed (everything else is the checkpoint's own).
RESUME_OPTIONS = {"resume", "epochs", "backend", "data_dir", "no_download", "out", "no_progress"}
CONFIG_OPTIONS = {"dataset", "model", "width", "backend", "dtype", "epochs", "batch_size", "lr",
                  "lr_schedule", "weight_decay", "noise", "noise_factor", "seed", "data_dir",
                  "limit_train", "limit_test"}


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
        config = Config(**{k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
        epochs = args.epochs or config.epochs
        done = int(meta.get("epoch", 0))
        if epochs <= done:
            flag = "--epochs" if args.epochs else "--resume"
            parser.error(f"argument {flag}: checkpoint {args.resume} already holds {done} "
                         f"completed epoch{'s' if done != 1 else ''} of {config.epochs}, so there "
                         f"is nothing to train; give --epochs N with N > {done} to continue")
        return dataclasses.replace(config, backend=args.backend, data_dir=args.data_dir,
                                   epochs=epochs, download=config.download and not args.no_download)
    values = dict(PRESETS[args.preset or "table-b"])
    values.update({k: getattr(args, k) for k in CONFIG_OPTIONS if k in explicit})
    config = Config(**{**values, "clip": not args.no_clip, "download": not args.no_download})
    if config.model != "unet" and "width" not in explicit:
        config.width = None                      # e.g. --preset unet --model conv
    if config.width is not None and config.model != "unet":
        parser.error(f"argument --width: only --model unet has a width, not --model {config.model}")
    if config.noise == "salt-pepper" and config.noise_factor > 1:
        parser.error(f"argument --noise-factor: salt-pepper takes a fraction <= 1, got {config.noise_factor}")
    return config


def make_out_dir(out: Path, parser: argparse.ArgumentParser) -> None:
    """Create (and so reserve) the run folder; two runs started at once cannot share it."""
    if out.exists():
        parser.error(f"argument --out: {out} already exists; runs are never overwritten, "
                     "choose a new directory")
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        parser.error(f"argument --out: cannot create {out} ({exc.strerror or exc})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = make_config(args, parser, explicit_options(argv))
    try:
        get_backend(config.backend)
    except BackendUnavailableError as exc:
        parser.error(f"argument --backend: {exc}")
    out = Path(args.out or f"runs/{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    # From here on Ctrl-C ends the program in one line, after removing the run folder if it is
    # still empty; inside the training loop it first writes a checkpoint (experiment.train).
    made: list[Path] = []                              # the folder, once this run created it
    with cli.interrupts_exit(lambda: "nothing was written" if not out.exists() or not made
                             else f"what was written so far is in {out}",
                             cleanup=lambda: made and cli.remove_if_empty(out)):
        make_out_dir(out, parser)
        made.append(out)
        print(f"run directory: {out}")
        try:
            metrics = train(config, out, resume=args.resume, progress=not args.no_progress)
        except (DatasetError, CheckpointError, TrainingStopped) as exc:
            cli.remove_if_empty(out)
            print(f"error: {exc}", file=sys.stderr)
            return 1
    final = metrics["final"]
    if final:
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
