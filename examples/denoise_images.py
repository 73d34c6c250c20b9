#!/usr/bin/env python
"""Denoise your own images with a trained checkpoint; writes one PNG per image, its rows
stacked: the input, the input with the added noise (with --noise-factor), the denoised output.

Each input (a PNG/JPEG file, or every image in a folder) is converted to grayscale (mean of
R, G, B), resized to 28x28 (Pillow, bilinear with antialiasing) and scaled to [0, 1]. MNIST
digits are light on a dark background; inputs that are mostly light (mean > 0.5) are
inverted first unless --no-invert is given.

    python examples/denoise_images.py --checkpoint runs/mnist-.../checkpoint.npz my_digits/
    python examples/denoise_images.py --checkpoint ... --noise-factor 0.5 digit.png
"""
from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":   # Ctrl-C while the libraries load: one line, exit 130, no traceback
    signal.signal(signal.SIGINT, lambda *_: (sys.stderr.write(
        "interrupted while starting; nothing was written\n"), os._exit(130)))

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from scratchnet import cli, no_grad, plotting  # noqa: E402
from scratchnet.backend import default_rng, get_backend, to_numpy  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_model  # noqa: E402
from scratchnet.data import add_noise  # noqa: E402
from scratchnet.fileio import WriteError  # noqa: E402

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_image(path: Path, invert: bool) -> np.ndarray:
    """Grayscale 28x28 float32 in [0, 1] (inverted if mostly light and ``invert``)."""
    try:
        with Image.open(path) as im:
            gray = im.convert("RGB").resize((28, 28), Image.BILINEAR, reducing_gap=None)
    except Exception as exc:       # Pillow's decoders raise many kinds on damaged files
        raise ValueError(f"{path}: not a readable image ({type(exc).__name__}: {exc})"
                         .replace("\n", " ")) from None
    x = np.asarray(gray, dtype=np.float32).mean(axis=2) / 255
    return 1 - x if invert and x.mean() > 0.5 else x


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                           formatter_class=cli.OneDefaultFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by train_denoiser.py")
    p.add_argument("--out", default=None,
                   help="folder to create for the PNGs (must not exist) [default: runs/denoised-<time>]")
    p.add_argument("--noise-factor", type=cli.non_negative_float, default=0.0,
                   help="add this much noise (the run's noise kind) before denoising, to demonstrate")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    p.add_argument("--no-invert", action="store_true", help="never invert light images")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy", help="array backend")
    args = p.parse_args(argv)

    files = []
    for item in map(Path, args.inputs):
        if item.is_dir():
            files += sorted(f for f in item.iterdir() if f.suffix.lower() in EXTENSIONS)
        elif item.is_file():
            files.append(item)
        else:
            p.error(f"input {item} does not exist")
    if not files:
        p.error("no images found in the given inputs")

    out = Path(args.out or f"runs/denoised-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        p.error(f"argument --out: {out} already exists; outputs are never overwritten, "
                "choose a new folder")
    try:
        model, meta = load_model(args.checkpoint)
    except CheckpointError as exc:
        p.error(f"argument --checkpoint: {exc}")
    config = meta["config"]
    written: list[Path] = []
    with cli.interrupts_exit(lambda: f"{_count(len(written), 'image')} denoised into {out}"
                             if written else "nothing was written",
                             cleanup=lambda: cli.remove_if_empty(out)):
        readable, images, failed = [], [], []
        for f in files:                               # every unreadable file is named, once
            try:
                images.append(load_image(f, not args.no_invert))
                readable.append(f)
            except ValueError as exc:
                failed.append(f)
                print(f"error: {exc}", file=sys.stderr)
        if not readable:
            return 1
        xp = get_backend(args.backend)
        model.to(args.backend).eval()
        x = xp.asarray(np.stack(images)[:, None])
        noisy = add_noise(config["noise"], x, args.noise_factor, True,
                          default_rng(args.seed, args.backend)) if args.noise_factor > 0 else None
        with no_grad():
            denoised = to_numpy(model(x if noisy is None else noisy))
        noisy_host = [None] * len(readable) if noisy is None else to_numpy(noisy)
        noise_label = f"+ {config['noise']} noise x{args.noise_factor:g}"
        try:
            out.mkdir(parents=True)
            for f, clean, shown, den in zip(readable, to_numpy(x), noisy_host, denoised):
                fig = plotting.plot_results(
                    clean[None], None if shown is None else shown[None], den[None],
                    f.name, labels=("input", noise_label, "denoised"))
                target = out / f"{f.stem}_denoised.png"
                plotting.save_figure(fig, target)
                written.append(target)
                print(target)
        except (OSError, WriteError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if failed:
        print(f"{len(failed)} of {_count(len(files), 'input')} could not be read; "
              f"{_count(len(readable), 'image')} denoised into {out}", file=sys.stderr)
        return 1
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


if __name__ == "__main__":
    sys.exit(main())
