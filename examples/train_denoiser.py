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
from scratchnet.experiment import PRESETS, Config, TrainingStopped, train
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


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="hyperparameter table: 'table-b' = batch 64, lr 0.001, weight decay "
                        "1e-5, 10 epochs (the defaults); 'table-a' = batch 32, lr 0.001, no "
                        "weight decay, 10 epochs. Explicit flags override it")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset, help="dataset")
    p.add_argument("--model", choices=sorted(MODELS), default=d.model,
                   help="'conv': the convolutional autoencoder; 'dense': Linear layers 784-256-64")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=d.backend,
                   help="array backend: 'numpy' (CPU) or 'cupy' (NVIDIA GPU, needs scratchnet[gpu])")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype, help="float precision")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"number of epochs (total, also when resuming) [default: {d.epochs}]")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"images per training batch [default: {d.batch_size}]")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"Adam learning rate [default: {d.lr}]")
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
                        "only --epochs, --backend, --data-dir and --out apply. Writes a new run "
                        "directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def make_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    if args.resume:
        try:
            saved = load_checkpoint(args.resume)["config"]
        except (CheckpointError, KeyError) as exc:
            parser.error(str(exc) if isinstance(exc, CheckpointError) else
                         f"checkpoint {args.resume} has no run configuration")
        config = Config(**{k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
        return dataclasses.replace(config, backend=args.backend, data_dir=args.data_dir,
                                   epochs=args.epochs or config.epochs)
    values = dict(PRESETS[args.preset or "table-b"])
    for key in ("epochs", "batch_size", "lr", "weight_decay"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.noise == "salt-pepper" and args.noise_factor > 1:
        parser.error(f"argument --noise-factor: salt-pepper takes a fraction <= 1, got {args.noise_factor}")
    return Config(dataset=args.dataset, model=args.model, backend=args.backend, dtype=args.dtype,
                  noise=args.noise, noise_factor=args.noise_factor, clip=not args.no_clip,
                  seed=args.seed, limit_train=args.limit_train, limit_test=args.limit_test,
                  data_dir=args.data_dir, download=not args.no_download, **values)


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
    config = make_config(args, parser)
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
