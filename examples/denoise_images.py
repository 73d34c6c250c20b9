#!/usr/bin/env python
"""Denoise your own images with a trained checkpoint; writes side-by-side PNGs.

Each input (a PNG/JPEG file, or every image in a folder) is converted to grayscale (mean of
R, G, B), resized to 28x28 (Pillow, bilinear with antialiasing) and scaled to [0, 1]. MNIST
digits are light on a dark background; inputs that are mostly light (mean > 0.5) are
inverted first unless --no-invert is given.

    python examples/denoise_images.py --checkpoint runs/mnist-.../checkpoint.npz my_digits/
    python examples/denoise_images.py --checkpoint ... --noise-factor 0.5 digit.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from scratchnet import plotting
from scratchnet.backend import default_rng, get_backend, to_numpy
from scratchnet.checkpoint import CheckpointError, load_model
from scratchnet.data import add_noise
from scratchnet.fileio import WriteError

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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by train_denoiser.py")
    p.add_argument("--out", default="denoised", help="folder for the side-by-side PNGs")
    p.add_argument("--noise-factor", type=float, default=0.0,
                   help="add this much noise (the run's noise kind) before denoising, to demonstrate")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    p.add_argument("--no-invert", action="store_true", help="never invert light images")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = p.parse_args(argv)
    if args.noise_factor < 0:
        p.error(f"argument --noise-factor: expected a number >= 0, got {args.noise_factor}")

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

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"argument --out: {out} exists and is not a folder")
    try:
        model, meta = load_model(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = meta["config"]
    readable, images, failed = [], [], []
    for f in files:                                   # every unreadable file is named, once
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
    shown = add_noise(config["noise"], x, args.noise_factor, True, default_rng(args.seed, args.backend)) \
        if args.noise_factor > 0 else x
    denoised = to_numpy(model(shown))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for f, clean, noisy, den in zip(readable, to_numpy(x), to_numpy(shown), denoised):
            fig = plotting.plot_results(clean[None], noisy[None], den[None],
                                        f"{f.name}" + (f" + noise x{args.noise_factor:g}" if args.noise_factor else ""))
            target = out / f"{f.stem}_denoised.png"
            plotting.save_figure(fig, target)
            print(target)
    except (OSError, WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if failed:
        print(f"{len(failed)} of {len(files)} inputs could not be read; the other "
              f"{len(readable)} were denoised into {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
