#!/usr/bin/env python
"""Train the denoising autoencoder on MNIST or Fashion-MNIST and write figures, metrics and a
checkpoint into a new run directory.

    python examples/train_denoiser.py                       # MNIST, batch 64, 10 epochs
    python examples/train_denoiser.py --preset table-a      # batch 32, no weight decay
    python examples/train_denoiser.py --resume runs/mnist-.../checkpoint.npz --epochs 15
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from scratchnet.backend import BackendUnavailableError, get_backend
from scratchnet.checkpoint import CheckpointError, load_checkpoint
from scratchnet.data import DATASETS, NOISES, DatasetError
from scratchnet.experiment import LR_SCHEDULES, PRESETS, Config, TrainingStopped, train
from scratchnet.models import MODELS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = non_negative_float(text)
    except argparse.ArgumentTypeError:
        value = 0.0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


class OneDefaultFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's real default once: not for flags, not where the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "[default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=OneDefaultFormatter)
    presets = "; ".join(f"'{name}': " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in values.items())
                        for name, values in PRESETS.items())
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"a set of settings ('table-b' is the default): {presets}. Explicit "
                        "flags override it")
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
            saved = load_checkpoint(args.resume)["config"]
        except (CheckpointError, KeyError) as exc:
            parser.error(str(exc) if isinstance(exc, CheckpointError) else
                         f"checkpoint {args.resume} has no run configuration")
        config = Config(**{k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
        return dataclasses.replace(config, backend=args.backend, data_dir=args.data_dir,
                                   epochs=args.epochs or config.epochs,
                                   download=config.download and not args.no_download)
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


def make_out_dir(args: argparse.Namespace, config: Config, parser: argparse.ArgumentParser) -> Path:
    out = Path(args.out or f"runs/{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        parser.error(f"argument --out: {out} already exists; runs are never overwritten, "
                     "choose a new directory")
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        parser.error(f"argument --out: cannot create {out} ({exc.strerror or exc})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = make_config(args, parser, explicit_options(argv))
    try:
        get_backend(config.backend)
    except BackendUnavailableError as exc:
        parser.error(f"argument --backend: {exc}")
    out = make_out_dir(args, config, parser)
    print(f"run directory: {out}")
    try:
        metrics = train(config, out, resume=args.resume, progress=not args.no_progress)
    except (DatasetError, CheckpointError, TrainingStopped) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    final = metrics["final"]
    if final:
        print(f"done: test MSE {final['test_mse']:.5f} ({final['test_psnr']:.2f} dB), noisy input "
              f"{metrics['noisy_baseline']['mse']:.5f}; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
