#!/usr/bin/env python
"""Denoise your own images: each one written at its own size, format and bit depth.

Without --checkpoint, the blind grayscale DnCNN shipped with the package is used
(scratchnet/pretrained/dncnn-blind.npz: trained on Train400 for Gaussian noise of sigma 0 to
55 on the 0-255 scale; no data and no network needed). What happens to an image depends on the
checkpoint's training data:

  photographs (the shipped model, or any checkpoint trained with --dataset train400): the image
    is denoised at its own resolution (in tiles when it is large) and written into the --out
    folder as <name>_denoised.<ext>, in the input's format and bit depth: 8- and 16-bit
    grayscale and colour PNG, JPEG, TIFF, BMP, WebP. A colour image is denoised channel by
    channel (--color luminance: only its luma). An alpha channel, ICC profile and EXIF data are
    kept. With --sigma S, Gaussian noise of sigma S (seeded by --seed) is added first, to
    demonstrate: the noisy image is written too (<name>_noisy.<ext>) and the PSNR of both
    against the original is printed.
  digits (checkpoints trained on mnist or fashion-mnist): the image is converted to grayscale,
    shrunk to 28x28 and inverted when it is mostly light (MNIST digits are light on dark), and
    <name>_denoised.png is a figure of the input, the noisy input (--noise-factor) and the output.

Every input is checked before anything is written: a folder with no images, an unreadable or
unsupported file (palette, CMYK, animated), an image too small (under 8x8) or too large (over
--max-pixels), or one the checkpoint's model cannot take gets one line, and the program exits
with status 2, writing nothing. Inputs whose names clash (a/x.png and b/x.png) get outputs
named after their folders (a_x_denoised.png, b_x_denoised.png).

examples:
  python examples/denoise_images.py photo.jpg                     # the shipped model
  python examples/denoise_images.py --sigma 25 photo.png          # add noise, then denoise
  python examples/denoise_images.py --checkpoint runs/train400-.../checkpoint.npz photos/
  python examples/denoise_images.py --checkpoint runs/mnist-.../checkpoint.npz digit.png
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from scratchnet import cli, no_grad, plotting, pretrained  # noqa: E402
from scratchnet.backend import BackendUnavailableError, default_rng, get_backend, to_numpy  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_model  # noqa: E402
from scratchnet.data import DATASETS, NoiseSpec  # noqa: E402
from scratchnet.evaluation import psnr  # noqa: E402
from scratchnet.fileio import WriteError  # noqa: E402
from scratchnet.images import EXTENSIONS, MAX_PIXELS, ImageError, read_image, write_image  # noqa: E402
from scratchnet.inference import COLOR_MODES, TILE, check_fits, denoise_color, denoise_image  # noqa: E402


def load_digit(path: Path, invert: bool) -> np.ndarray:
    """Grayscale 28x28 float32 in [0, 1] (inverted if mostly light and ``invert``)."""
    try:
        with Image.open(path) as im:
            gray = im.convert("RGB").resize((28, 28), Image.BILINEAR, reducing_gap=None)
    except Exception as exc:       # Pillow's decoders raise many kinds on damaged files
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})"
                         .replace("\n", " ")) from None
    x = np.asarray(gray, dtype=np.float32).mean(axis=2) / 255
    return 1 - x if invert and x.mean() > 0.5 else x


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                           epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders of images "
                                             f"({', '.join(sorted(EXTENSIONS))})")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint.npz written by train_denoiser.py [default: the shipped blind "
                        "DnCNN, scratchnet/pretrained/dncnn-blind.npz]")
    p.add_argument("--out", default=None,
                   help="folder to create for the outputs (must not exist) [default: runs/denoised-<time>]")
    p.add_argument("--sigma", type=cli.sigma_value, default=None,
                   help="photographs: add Gaussian noise of this sigma (0-255 scale) first, to "
                        "demonstrate, and report PSNR against the original")
    p.add_argument("--noise-factor", type=cli.non_negative_float, default=0.0,
                   help="digits: add this much noise (the run's noise kind) before denoising")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise [default: 0]")
    p.add_argument("--color", choices=COLOR_MODES, default="channels",
                   help="colour photographs: denoise each channel ('channels', the default: "
                        "measured better, see docs/photos.md) or only the luma ('luminance')")
    p.add_argument("--tile", type=cli.positive_int, default=TILE,
                   help=f"photographs: side of the tiles large images go through [default: {TILE}]")
    p.add_argument("--max-pixels", type=cli.positive_int, default=MAX_PIXELS,
                   help=f"refuse images with more pixels than this [default: {MAX_PIXELS:,}, "
                        "Pillow's decompression-bomb limit]")
    p.add_argument("--no-invert", action="store_true", help="digits: never invert light images")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="array backend [default: numpy]")
    return p


def find_inputs(items: list[str], parser: argparse.ArgumentParser) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(f for f in item.iterdir() if f.suffix.lower() in EXTENSIONS and f.is_file())
            if not found:
                parser.error(f"input {item} is a folder with no images "
                             f"({', '.join(sorted(EXTENSIONS))})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            parser.error(f"input {item} does not exist")
    unique: dict[Path, Path] = {}
    for f in files:                                  # the same file named twice: once
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def output_names(files: list[Path], suffix: str, ext: str | None = None) -> dict[Path, str]:
    """``<stem><suffix><ext>`` per input; names that would clash (a/x.png, b/x.png; also
    case-insensitively) take their folders' names first (a_x..., b_x...), then a number."""
    def name(f: Path, parts: int) -> str:
        folders = [p for p in f.resolve().parent.parts[1:]][-parts:] if parts else []
        return "_".join([*folders, f.stem]) + suffix + (ext or f.suffix.lower())

    names = {f: name(f, 0) for f in files}
    for parts in (1, 2, 3):
        clash = _clashes(names)
        if not clash:
            break
        names.update({f: name(f, parts) for f in clash})
    taken: set[str] = set()
    for f in files:                                  # still clashing: number them
        base, n = names[f], 2
        while names[f].lower() in taken:
            stem, dot, e = base.rpartition(".")
            names[f] = f"{stem}-{n}.{e}"
            n += 1
        taken.add(names[f].lower())
    return names


def _clashes(names: dict[Path, str]) -> list[Path]:
    seen: dict[str, list[Path]] = {}
    for f, n in names.items():
        seen.setdefault(n.lower(), []).append(f)
    return [f for group in seen.values() if len(group) > 1 for f in group]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    files = find_inputs(args.inputs, parser)
    out = Path(args.out or f"runs/denoised-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        parser.error(f"argument --out: {out} already exists; outputs are never overwritten, "
                     "choose a new folder")
    try:
        get_backend(args.backend)
    except BackendUnavailableError as exc:
        parser.error(f"argument --backend: {exc}")
    try:
        checkpoint = Path(args.checkpoint) if args.checkpoint else pretrained.path()
        model, meta = load_model(checkpoint)
    except (CheckpointError, FileNotFoundError) as exc:
        parser.error(f"argument --checkpoint: {exc}")
    config = meta["config"]
    noise = NoiseSpec.from_config(config)
    digits = config.get("dataset", "mnist") in DATASETS
    if digits and args.sigma is not None:
        parser.error(f"argument --sigma: {checkpoint} was trained on {config.get('dataset')} "
                     "digits; add their noise with --noise-factor")
    if not digits and args.noise_factor:
        parser.error("argument --noise-factor: for digit checkpoints; add noise to a "
                     "photograph with --sigma")
    model.to(args.backend, "float32").eval()
    written: list[Path] = []
    with cli.interrupts_exit(lambda: f"{_count(len(written), 'file')} written into {out} (each "
                             "complete)" if written else "nothing was written",
                             cleanup=lambda: cli.remove_if_empty(out)):
        if digits:
            return denoise_digits(args, files, out, model, noise, written)
        return denoise_photos(args, files, out, model, noise, checkpoint, written)


def _refuse(errors: list[str]) -> int:
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    print(f"nothing was written: {_count(len(errors), 'input')} cannot be denoised",
          file=sys.stderr)
    return 2


def denoise_photos(args: argparse.Namespace, files: list[Path], out: Path, model, noise: NoiseSpec,
                   checkpoint: Path, written: list[Path]) -> int:
    errors = []
    for f in files:                       # every input checked before anything is written
        try:
            picture = read_image(f, args.max_pixels)
            check_fits(model, picture.pixels.shape)
        except ImageError as exc:
            errors.append(str(exc))
        except ValueError as exc:
            errors.append(f"{f}: {exc} ({checkpoint})")
    if errors:
        return _refuse(errors)
    if args.sigma is not None and noise.blind:
        lo, hi = (255 * v for v in noise.factor_range)
        if not lo <= args.sigma <= hi:
            print(f"note: sigma {args.sigma:g} is outside the {lo:g}-{hi:g} the model was "
                  "trained for; expect a weaker result", file=sys.stderr)
    names = output_names(files, "_denoised")
    noisy_names = output_names(files, "_noisy")
    try:
        out.mkdir(parents=True)
        for i, f in enumerate(files):
            picture = read_image(f, args.max_pixels)
            pixels = picture.pixels
            alpha = pixels[..., -1:] if picture.alpha else None
            image = pixels[..., :-1] if alpha is not None else pixels
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[..., 0]                               # gray + alpha
            line = f"{f} ({picture.describe()})"
            source = image
            if args.sigma is not None:
                source = NoiseSpec.from_sigma(args.sigma, test_seed=args.seed).test_image(image, i)
                write_image(out / noisy_names[f], picture, _with_alpha(source, alpha, pixels.shape))
                written.append(out / noisy_names[f])
            t0 = time.perf_counter()
            if source.ndim == 3:
                denoised = denoise_color(model, source, args.color, args.tile)
            else:
                denoised = denoise_image(model, source, args.tile)
            seconds = time.perf_counter() - t0
            write_image(out / names[f], picture, _with_alpha(denoised, alpha, pixels.shape))
            written.append(out / names[f])
            if args.sigma is not None:
                line += (f": noisy {_psnr(source, image):.2f} dB -> denoised "
                         f"{_psnr(np.clip(denoised, 0, 1), image):.2f} dB (sigma {args.sigma:g})")
            print(f"{line} -> {out / names[f]} ({seconds:.2f} s)")
    except (OSError, WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _with_alpha(image: np.ndarray, alpha: np.ndarray | None, shape: tuple) -> np.ndarray:
    if alpha is None:
        return image
    image = image[..., None] if image.ndim == 2 else image
    return np.concatenate([image, alpha], axis=-1).reshape(shape)


def _psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return psnr(float(((image.astype(np.float64) - clean) ** 2).mean()))


def denoise_digits(args: argparse.Namespace, files: list[Path], out: Path, model, noise: NoiseSpec,
                   written: list[Path]) -> int:
    """The 28x28 path of digit checkpoints: one figure per input."""
    errors, images = [], []
    for f in files:
        try:
            images.append(load_digit(f, not args.no_invert))
        except ImageError as exc:
            errors.append(str(exc))
    if errors:
        return _refuse(errors)
    xp = get_backend(args.backend)
    x = xp.asarray(np.stack(images)[:, None])
    noisy = (noise.at(args.noise_factor).apply(x, default_rng(args.seed, args.backend))
             if args.noise_factor > 0 else None)
    with no_grad():
        denoised = to_numpy(model(x if noisy is None else noisy))
    noisy_host = [None] * len(files) if noisy is None else to_numpy(noisy)
    noise_label = f"+ {noise.kind} noise x{args.noise_factor:g}"
    names = output_names(files, "_denoised", ".png")
    try:
        out.mkdir(parents=True)
        for f, clean, shown, den in zip(files, to_numpy(x), noisy_host, denoised):
            fig = plotting.plot_results(
                clean[None], None if shown is None else shown[None], den[None],
                f.name, labels=("input", noise_label, "denoised"))
            target = out / names[f]
            plotting.save_figure(fig, target)
            written.append(target)
            print(target)
    except (OSError, WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


if __name__ == "__main__":
    sys.exit(main())
