#!/usr/bin/env python
"""Score trained denoisers across a sweep of noise levels (MSE, PSNR, SSIM) and compare them.

    python examples/evaluate_denoiser.py runs/mnist-a/checkpoint.npz runs/mnist-b/checkpoint.npz
    python examples/evaluate_denoiser.py CKPT --noise salt-pepper --factors 0.05,0.1,0.2
    python examples/evaluate_denoiser.py CKPT --limit-test 1000 --backend cupy

Every model sees the *same* noisy images at a given level: they are drawn on the host from the
training runs' fixed test seed (1234), whatever the checkpoint, so differences between models
are paired; the level only scales the same draws (Gaussian, speckle) or thresholds the same
uniform numbers (salt-and-pepper). At a model's training factor the noisy test set is the very
one its run was scored on. Each checkpoint is scored on its own dataset's test split unless
--dataset names one for all; the figures label every model with its dataset.

Writes into a new directory: sweep.csv, sweep.json, quality_vs_noise.png (PSNR and SSIM against
the level) and examples_vs_noise.png (one test image across the levels: clean, noisy and each
model's output).
"""
from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":   # Ctrl-C while the libraries load: one line, exit 130, no traceback
    signal.signal(signal.SIGINT, lambda *_: (sys.stderr.write(
        "interrupted while starting; nothing was written\n"), os._exit(130)))

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tqdm.auto import tqdm  # noqa: E402

from scratchnet import cli, plotting  # noqa: E402
from scratchnet.backend import BackendUnavailableError, default_rng, get_backend  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_model  # noqa: E402
from scratchnet.cli import positive_int  # noqa: E402
from scratchnet.data import (DATASETS, NOISES, DatasetError, add_noise,  # noqa: E402
                             images_to_array, load_dataset)
from scratchnet.evaluation import EVAL_BATCH, predict, score_images, score_model  # noqa: E402
from scratchnet.fileio import WriteError, atomic_write_text  # noqa: E402

DEFAULT_FACTORS = {"gaussian": [0.1, 0.25, 0.5, 0.75, 1.0], "speckle": [0.1, 0.25, 0.5, 0.75, 1.0],
                   "salt-pepper": [0.05, 0.1, 0.2, 0.3, 0.5]}
TEST_SEED = 1234                           # the training runs' fixed noisy test set
FIELDS = ["model", "dataset", "noise", "factor", "mse", "psnr", "ssim", "checkpoint"]


def factor_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 <= v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of numbers >= 0 such as 0.1,0.25,0.5; got {text!r}")
    return sorted(set(values))


@dataclasses.dataclass
class Entry:
    """One checkpoint to score: its model, label and the dataset it is scored on."""
    path: Path
    model: object
    config: dict
    dataset: str

    label: str = ""

    def __post_init__(self) -> None:
        width = f" w{self.config['width']}" if self.config.get("width") else ""
        self.label = f"{self.config['model']}{width} ({self.dataset})"

    @property
    def run(self) -> str:
        """The run's name: its folder for the default file name, else the file's own name."""
        return self.path.parent.name if self.path.stem == "checkpoint" else self.path.stem


# Settings that tell two runs of one model apart, in the order a label names them.
RECIPE = ["lr", "lr_schedule", "batch_size", "weight_decay", "epochs", "noise", "noise_factor",
          "clip", "seed", "limit_train", "dtype"]


def label_entries(entries: list[Entry]) -> None:
    """Label each model by what it is: model and dataset ("unet w32 (mnist)"); where two
    would read the same, add the settings that differ ("lr 0.002, lr_schedule cosine"), then
    the run's folder, then a number."""
    def collisions() -> dict[str, list[Entry]]:
        groups: dict[str, list[Entry]] = {}
        for e in entries:
            groups.setdefault(e.label, []).append(e)
        return {k: g for k, g in groups.items() if len(g) > 1}

    for group in collisions().values():
        differing = [k for k in RECIPE if len({str(e.config.get(k)) for e in group}) > 1]
        for e in group:
            if differing:
                e.label += ", " + ", ".join(f"{k} {e.config.get(k)}" for k in differing)
    for group in collisions().values():
        for e in group:
            e.label += f" [{e.run}]"
    for group in collisions().values():              # the same run named twice: number them
        for i, e in enumerate(group, 1):
            e.label += f" #{i}"


class UsageError(Exception):
    """A command-line value that can only be checked once the data is loaded."""


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="checkpoint.npz files written by train_denoiser.py")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None,
                   help="score every model on this dataset's test split [default: each its own]")
    p.add_argument("--noise", choices=sorted(NOISES), default=None,
                   help="kind of noise [default: the checkpoints' own, when they agree]")
    p.add_argument("--factors", type=factor_list, default=None,
                   help="comma-separated noise levels, to which the checkpoints' training "
                        "factors are always added [default: 0.1,0.25,0.5,0.75,1 for gaussian "
                        "and speckle, 0.05,0.1,0.2,0.3,0.5 for salt-pepper]")
    p.add_argument("--no-clip", action="store_true", help="do not clip noisy images to [0, 1]")
    p.add_argument("--limit-test", type=positive_int, default=None, help="score the first N test images only [default: all]")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy", help="array backend [default: numpy]")
    p.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH, help="images per forward pass [default: %(default)s]")
    p.add_argument("--example-index", type=int, default=0,
                   help="which test image examples_vs_noise.png shows [default: %(default)s]")
    p.add_argument("--data-dir", default=None, help="folder with mnist/ and fashion-mnist/ (searched first; otherwise "
                        "$SCRATCHNET_DATA, /usr/share/datasets, ~/.cache/scratchnet)")
    p.add_argument("--no-download", action="store_true", help="never download missing data")
    p.add_argument("--out", default=None,
                   help="directory to create (must not exist) [default: runs/eval-<time>]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load_entries(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Entry]:
    entries = []
    for path in map(Path, args.checkpoints):
        try:
            model, meta = load_model(path)
        except CheckpointError as exc:
            parser.error(f"argument CHECKPOINT: {exc}")
        model.to(args.backend, "float32")
        entries.append(Entry(path, model, meta["config"], args.dataset or meta["config"]["dataset"]))
    label_entries(entries)
    return entries


def plan(args: argparse.Namespace, entries: list[Entry], parser: argparse.ArgumentParser
         ) -> tuple[str, list[float]]:
    kinds = {e.config.get("noise", "gaussian") for e in entries}
    noise = args.noise or (kinds.pop() if len(kinds) == 1 else None)
    if noise is None:
        parser.error(f"argument --noise: the checkpoints were trained with different noise kinds "
                     f"({', '.join(sorted(kinds))}); choose one")
    factors = set(args.factors or DEFAULT_FACTORS[noise])
    factors |= {float(e.config["noise_factor"]) for e in entries if e.config.get("noise") == noise}
    if noise == "salt-pepper" and max(factors) > 1:
        parser.error(f"argument --factors: salt-pepper takes fractions <= 1, got {max(factors):g}")
    return noise, sorted(factors)


def sweep(args: argparse.Namespace, entries: list[Entry], noise: str, factors: list[float]
          ) -> tuple[list[dict], dict]:
    """Score every entry at every level; returns the rows and, per dataset, the example image
    across the levels (noisy and each model's output)."""
    xp = get_backend(args.backend)
    datasets = sorted({e.dataset for e in entries})
    total = sum(len(factors) * (1 + sum(e.dataset == d for e in entries)) for d in datasets)
    bar = tqdm(total=total, unit="set", disable=args.no_progress, file=sys.stderr)
    rows, examples = [], {}
    for dataset in datasets:
        images, _ = load_dataset(dataset, "test", args.data_dir, not args.no_download)
        clean = images_to_array(images[:args.limit_test], "numpy", "float32")
        clean_dev = xp.asarray(clean)
        mine = [e for e in entries if e.dataset == dataset]
        k = args.example_index
        if k >= len(clean):
            raise UsageError(f"argument --example-index: {k} is past the last of the "
                             f"{len(clean)} {dataset} test images scored")
        examples[dataset] = {"clean": [clean[k]], "noisy": [],
                             **{e.label: [] for e in mine}}
        for f in factors:
            noisy = add_noise(noise, clean, f, not args.no_clip, default_rng(TEST_SEED, "numpy"))
            rows.append({"model": "noisy input", "dataset": dataset, "noise": noise, "factor": f,
                         **score_images(clean, noisy), "checkpoint": ""})
            examples[dataset]["noisy"].append(noisy[k])
            bar.update()
            noisy_dev = xp.asarray(noisy)
            for e in mine:
                scores = score_model(e.model, clean_dev, noisy_dev, args.batch_size)
                rows.append({"model": e.label, "dataset": dataset, "noise": noise, "factor": f,
                             **scores, "checkpoint": str(e.path)})
                examples[dataset][e.label].append(predict(e.model, noisy_dev[k:k + 1])[0])
                bar.update()
    bar.close()
    return rows, examples


def write_outputs(out: Path, args: argparse.Namespace, rows: list[dict], examples: dict,
                  noise: str, factors: list[float], wall: float) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    atomic_write_text(out / "sweep.json", json.dumps(
        {"noise": noise, "factors": factors, "clip": not args.no_clip, "test_seed": TEST_SEED,
         "limit_test": args.limit_test, "backend": args.backend, "checkpoints": args.checkpoints,
         "wall_time_s": wall, "rows": rows}, indent=2))
    curves = {}
    for r in rows:
        label = r["model"] if r["model"] != "noisy input" else f"noisy input ({r['dataset']})"
        c = curves.setdefault(label, {"label": label, "factors": [], "psnr": [], "ssim": [],
                                      "dashed": r["model"] == "noisy input"})
        for key in ("factors", "psnr", "ssim"):
            c[key].append(r["factor" if key == "factors" else key])
    plotting.save_figure(plotting.plot_quality_vs_noise(
        list(curves.values()), noise, f"denoisers against {noise} noise "
        f"({'clipped' if not args.no_clip else 'unclipped'}; same noisy images for every model)"),
        out / "quality_vs_noise.png")
    grid = [(f"{label} ({dataset})" if label in ("clean", "noisy") else label, images)
            for dataset, block in examples.items() for label, images in block.items()]
    plotting.save_figure(plotting.plot_image_grid(
        grid, f"test image {args.example_index} across {noise} noise levels",
        [f"noise {f:g}" for f in factors]), out / "examples_vs_noise.png")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.example_index < 0:
        parser.error(f"argument --example-index: expected an index >= 0, got {args.example_index}")
    out = Path(args.out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        parser.error(f"argument --out: {out} already exists; choose a new directory")
    try:
        get_backend(args.backend)
    except BackendUnavailableError as exc:
        parser.error(f"argument --backend: {exc}")
    made: list[Path] = []
    # Nothing is written until every score is in, so a Ctrl-C before that loses only time.
    with cli.interrupts_exit(lambda: f"the outputs written so far are in {out}" if made and
                             out.exists() else "nothing was written",
                             cleanup=lambda: made and cli.remove_if_empty(out)):
        entries = load_entries(args, parser)            # everything is checked before writing
        noise, factors = plan(args, entries, parser)
        t0 = time.perf_counter()
        try:
            rows, examples = sweep(args, entries, noise, factors)
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except UsageError as exc:
            parser.error(str(exc))
        try:
            out.mkdir(parents=True)
            made.append(out)
            write_outputs(out, args, rows, examples, noise, factors, time.perf_counter() - t0)
        except (OSError, WriteError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    width = max(len(r["model"]) for r in rows) + 2
    print(f"{'model':<{width}}{'factor':>7}{'MSE':>10}{'PSNR':>8}{'SSIM':>7}")
    for r in rows:
        print(f"{r['model']:<{width}}{r['factor']:>7g}{r['mse']:>10.5f}{r['psnr']:>8.2f}{r['ssim']:>7.3f}")
    print(f"{len(rows)} scores in {time.perf_counter() - t0:.1f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
