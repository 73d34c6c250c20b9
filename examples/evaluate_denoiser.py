#!/usr/bin/env python
"""Score trained denoisers across noise levels (PSNR, SSIM) and compare them: digits on their
test split, photographs on a folder of images beside the classical denoisers.

    python examples/evaluate_denoiser.py runs/mnist-a/checkpoint.npz runs/mnist-b/checkpoint.npz
    python examples/evaluate_denoiser.py CKPT --noise salt-pepper --factors 0.05,0.1,0.2
    python examples/evaluate_denoiser.py CKPT --limit-test 1000 --backend cupy
    python examples/evaluate_denoiser.py runs/train400-.../checkpoint.npz --images bsd68 --sigma 15 25 50
    python examples/evaluate_denoiser.py --images my_photos/ --sigma 25      # the baselines only

Digits. Every model sees the *same* noisy images at a given level: they are drawn on the host
from the training runs' fixed test seed (the checkpoints' noise specification), so differences
between models are paired; the level only scales the same draws (Gaussian, speckle) or
thresholds the same uniform numbers (salt-and-pepper). At a model's training factor the noisy
test set is the very one its run was scored on. Each checkpoint is scored on its own dataset's
test split unless --dataset names one for all; the figures label every model with its dataset.
Writes into a new directory: sweep.csv, sweep.json, quality_vs_noise.png (PSNR and SSIM against
the level) and examples_vs_noise.png (one test image across the levels: clean, noisy and each
model's output).

Photographs (--images FOLDER, or the name of a natural set: bsd68, set12; the default for
checkpoints trained on train400 is bsd68). The protocol of the denoising literature: Gaussian
noise of each --sigma on the 0-255 scale, not clipped, image i's noise from the stream
(test seed, i); PSNR and SSIM per image (outputs clipped to [0, 1]), averaged over the set.
Beside the checkpoints: scikit-image's NL-means, TV and wavelet denoisers, and BM3D when the
bm3d package is installed (pip install -e ".[baselines]"), each given the true sigma. Colour
images are scored on their luma. Writes scores.csv (every image, method and sigma, with seconds
per image), scores.json (the same, and the means) and crops.png (one crop: clean, noisy and
every method, PSNR in each title).
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tqdm.auto import tqdm  # noqa: E402

import numpy as np  # noqa: E402

from scratchnet import cli, plotting  # noqa: E402
from scratchnet.backend import BackendUnavailableError, get_backend  # noqa: E402
from scratchnet.baselines import BASELINES, BM3D_HINT, available, denoise_baseline  # noqa: E402
from scratchnet.checkpoint import CheckpointError, load_model  # noqa: E402
from scratchnet.cli import positive_int  # noqa: E402
from scratchnet.data import (DATASETS, NATURAL_SETS, NOISES, DatasetError, NoiseSpec,  # noqa: E402
                             images_to_array, load_dataset, load_natural)
from scratchnet.evaluation import (EVAL_BATCH, image_scores, predict, score_images,  # noqa: E402
                                   score_model)
from scratchnet.experiment import BENCHMARK_SIGMAS, PHOTO_DATASETS, Config  # noqa: E402
from scratchnet.fileio import WriteError, atomic_write_csv, atomic_write_json  # noqa: E402
from scratchnet.images import EXTENSIONS, ImageError, read_image  # noqa: E402
from scratchnet.inference import check_fits, denoise_image, luminance_weights  # noqa: E402

DEFAULT_FACTORS = {"gaussian": [0.1, 0.25, 0.5, 0.75, 1.0], "speckle": [0.1, 0.25, 0.5, 0.75, 1.0],
                   "salt-pepper": [0.05, 0.1, 0.2, 0.3, 0.5]}
FIELDS = ["model", "dataset", "noise", "factor", "mse", "psnr", "ssim", "checkpoint"]
PHOTO_FIELDS = ["method", "sigma", "image", "psnr", "ssim", "seconds", "checkpoint"]


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

    @property
    def noise(self) -> NoiseSpec:
        return NoiseSpec.from_config(self.config)

    @property
    def photos(self) -> bool:
        return self.dataset in PHOTO_DATASETS

    def __post_init__(self) -> None:
        width = f" w{self.config['width']}" if self.config.get("width") else ""
        depth = f" d{self.config['depth']}" if self.config.get("depth") else ""
        trained = f", {self.noise.describe('sigma').split(' (')[0]}" if self.photos else ""
        self.label = f"{self.config['model']}{depth}{width} ({self.dataset}{trained})"

    @property
    def run(self) -> str:
        """The run's name: its folder for the default file name, else the file's own name."""
        return self.path.parent.name if self.path.stem == "checkpoint" else self.path.stem


# Settings that tell two runs of one model apart, in the order a label names them.
RECIPE = ["lr", "lr_schedule", "batch_size", "weight_decay", "epochs", "noise", "noise_factor",
          "clip", "seed", "limit_train", "dtype", "depth"]


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
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="checkpoint.npz files written by train_denoiser.py (none: with --images, "
                        "the classical baselines only)")
    p.add_argument("--images", default=None, metavar="FOLDER",
                   help="photographs: a folder of images, or a natural set's name (bsd68, "
                        "set12) [default: bsd68 for checkpoints trained on train400]")
    p.add_argument("--sigma", type=cli.sigma_value, nargs="+", default=None, metavar="SIGMA",
                   help="photographs: noise levels on the 0-255 scale [default: the checkpoints' "
                        "own; 15 25 50 for blind ones and for the baselines alone]")
    p.add_argument("--baselines", nargs="*", choices=sorted(BASELINES), default=None,
                   help="photographs: classical denoisers to score too (none: no baselines) "
                        "[default: nl-means tv wavelet, and bm3d when installed]")
    p.add_argument("--test-seed", type=int, default=None,
                   help="seed of the fixed noisy test images [default: the checkpoints' own]")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None,
                   help="score every model on this dataset's test split [default: each its own]")
    p.add_argument("--noise", choices=sorted(NOISES), default=None,
                   help="kind of noise [default: the checkpoints' own, when they agree]")
    p.add_argument("--factors", type=factor_list, default=None,
                   help="comma-separated noise levels, to which the checkpoints' training "
                        "factors are always added [default: 0.1,0.25,0.5,0.75,1 for gaussian "
                        "and speckle, 0.05,0.1,0.2,0.3,0.5 for salt-pepper]")
    p.add_argument("--no-clip", action="store_true", help="digits: do not clip noisy images to [0, 1]")
    p.add_argument("--limit-test", type=positive_int, default=None, help="score the first N test images only [default: all]")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy", help="array backend [default: numpy]")
    p.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH, help="images per forward pass [default: %(default)s]")
    p.add_argument("--example-index", type=int, default=0,
                   help="which test image examples_vs_noise.png (crops.png) shows [default: %(default)s]")
    p.add_argument("--data-dir", default=None, help="folder with mnist/, fashion-mnist/ and natural/ "
                        "(searched first; otherwise $SCRATCHNET_DATA, /usr/share/datasets, "
                        "~/.cache/scratchnet)")
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
    kinds = {e.noise.kind for e in entries}
    noise = args.noise or (kinds.pop() if len(kinds) == 1 else None)
    if noise is None:
        parser.error(f"argument --noise: the checkpoints were trained with different noise kinds "
                     f"({', '.join(sorted(kinds))}); choose one")
    factors = set(args.factors or DEFAULT_FACTORS[noise])
    factors |= {e.noise.factor for e in entries if e.noise.kind == noise}
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
        spec = NoiseSpec(noise, 0.0, None, not args.no_clip, test_seed(args, entries))
        for f in factors:
            noisy = spec.at(f).test_batch(clean)
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


def test_seed(args: argparse.Namespace, entries: list[Entry]) -> int:
    """--test-seed, else the checkpoints' own (a usage error when they differ)."""
    if args.test_seed is not None:
        return args.test_seed
    seeds = {e.noise.test_seed for e in entries}
    if len(seeds) > 1:
        raise UsageError(f"argument --test-seed: the checkpoints' test sets were drawn from "
                         f"different seeds ({', '.join(map(str, sorted(seeds)))}); choose one")
    return seeds.pop() if seeds else NoiseSpec().test_seed


def write_outputs(out: Path, args: argparse.Namespace, rows: list[dict], examples: dict,
                  noise: str, factors: list[float], wall: float, entries: list[Entry]) -> None:
    atomic_write_csv(out / "sweep.csv", FIELDS, rows)
    atomic_write_json(out / "sweep.json", {
        "noise": noise, "factors": factors, "clip": not args.no_clip,
        "test_seed": test_seed(args, entries),
        "limit_test": args.limit_test, "backend": args.backend, "checkpoints": args.checkpoints,
        "wall_time_s": wall, "rows": rows})
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


# --- photographs ---------------------------------------------------------------------------
def load_photos(args: argparse.Namespace, parser: argparse.ArgumentParser
                ) -> tuple[list[np.ndarray], list[str], str]:
    """The clean images (float32 gray in [0, 1]), their names, and where they came from."""
    source = args.images or "bsd68"
    if source in NATURAL_SETS and not Path(source).exists():
        images, names = load_natural(source, args.data_dir, not args.no_download, args.limit_test)
        return [u.astype(np.float32) / 255 for u in images], names, source
    folder = Path(source)
    if not folder.is_dir():
        parser.error(f"argument --images: {source} is neither a folder nor one of the natural "
                     f"sets ({', '.join(sorted(NATURAL_SETS))})")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS)[:args.limit_test]
    if not files:
        parser.error(f"argument --images: {folder} holds no images ({', '.join(sorted(EXTENSIONS))})")
    images, errors = [], []
    for f in files:
        try:
            pixels = read_image(f).pixels
        except ImageError as exc:
            errors.append(str(exc))
            continue
        if pixels.ndim == 3:                       # colour: its luma; gray + alpha: the gray
            pixels = ((pixels[..., :3] @ luminance_weights()).astype(np.float32)
                      if pixels.shape[2] >= 3 else pixels[..., 0])
        images.append(pixels)
    if errors:
        parser.error(f"argument --images: {errors[0]}" + (f" (and {len(errors) - 1} more)"
                                                          if len(errors) > 1 else ""))
    return images, [f.name for f in files], str(folder)


def photo_plan(args: argparse.Namespace, entries: list[Entry], parser: argparse.ArgumentParser
               ) -> tuple[list[float], list[str]]:
    """The sigmas to score at and the baselines to run."""
    for e in entries:
        if getattr(e.model, "receptive_radius", None) is None:
            parser.error(f"argument CHECKPOINT: {e.path} holds a '{e.config['model']}' model, "
                         "which takes 28x28 digits only, not photographs")
    if args.sigma:
        sigmas = sorted(set(args.sigma))
    else:
        own: set[float] = set()
        for e in entries:
            own |= set(Config.from_dict(e.config).sigmas()) if e.photos else set(BENCHMARK_SIGMAS)
        sigmas = sorted(own or BENCHMARK_SIGMAS)
    if args.baselines is None:
        baselines = [b for b in ("nl-means", "tv", "wavelet", "bm3d") if available(b)]
    else:
        baselines = list(dict.fromkeys(args.baselines))
        if "bm3d" in baselines and not available("bm3d"):
            parser.error(f"argument --baselines: {BM3D_HINT}")
    if not entries and not baselines:
        parser.error("nothing to score: give checkpoints, or baselines with --baselines")
    return sigmas, baselines


def photo_sweep(args: argparse.Namespace, entries: list[Entry], clean: list[np.ndarray],
                names: list[str], sigmas: list[float], baselines: list[str], seed: int
                ) -> tuple[list[dict], dict]:
    """Every method on every image at every sigma; returns per-image rows and the crops."""
    k = args.example_index
    methods = ([("noisy input", None, None)] + [(e.label, e, None) for e in entries]
               + [(b, None, b) for b in baselines])
    bar = tqdm(total=len(sigmas) * len(methods) * len(clean), unit="image",
               disable=args.no_progress, file=sys.stderr)
    rows, crops = [], {}
    for s in sigmas:
        spec = NoiseSpec.from_sigma(s, test_seed=seed)
        noisy = [spec.test_image(c, i) for i, c in enumerate(clean)]
        crops[s] = []
        for label, entry, baseline in methods:
            for i, (c, x) in enumerate(zip(clean, noisy)):
                t0 = time.perf_counter()
                if entry is not None:
                    y = np.clip(denoise_image(entry.model, x), 0, 1)
                elif baseline is not None:
                    y = np.clip(denoise_baseline(baseline, x, s / 255), 0, 1)
                else:
                    y = x                                  # the noisy input, scored unclipped
                seconds = time.perf_counter() - t0
                p, q = image_scores(c, y)
                rows.append({"method": label, "sigma": s, "image": names[i], "psnr": p, "ssim": q,
                             "seconds": seconds, "checkpoint": str(entry.path) if entry else ""})
                if i == k:
                    crops[s].append((label, y, p))
                bar.update()
    bar.close()
    return rows, crops


def photo_summary(rows: list[dict]) -> list[dict]:
    """Mean PSNR, SSIM and seconds per image of every (method, sigma)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["sigma"]), []).append(r)
    return [{"method": m, "sigma": s, "images": len(g),
             "psnr": float(np.mean([r["psnr"] for r in g])),
             "ssim": float(np.mean([r["ssim"] for r in g])),
             "seconds_per_image": float(np.mean([r["seconds"] for r in g]))}
            for (m, s), g in groups.items()]


def write_photo_outputs(out: Path, args: argparse.Namespace, rows: list[dict], summary: list[dict],
                        crops: dict, clean: np.ndarray, source: str, wall: float, seed: int) -> None:
    atomic_write_csv(out / "scores.csv", PHOTO_FIELDS, rows)
    atomic_write_json(out / "scores.json", {
        "images": source, "protocol": "Gaussian noise of sigma/255, not clipped, image i from "
        f"default_rng(({seed}, i)); outputs clipped to [0, 1]; PSNR and SSIM per image, averaged",
        "test_seed": seed, "limit_test": args.limit_test, "backend": args.backend,
        "checkpoints": args.checkpoints, "wall_time_s": wall, "summary": summary, "rows": rows})
    H, W = clean.shape
    size = min(160, H, W)
    top, left = (H - size) // 2, (W - size) // 2
    window = (slice(top, top + size), slice(left, left + size))
    grid = [[("clean", clean[window])] + [
        (f"{label}{f', sigma {s:g}' if label == 'noisy input' else ''}: {p:.2f} dB", y[window])
        for label, y, p in row] for s, row in crops.items()]
    plotting.save_figure(plotting.plot_crops(
        grid, f"{source}, image {args.example_index}: a {size}x{size} crop at full resolution "
              "(PSNR of the whole image)"), out / "crops.png")


def main_photos(args: argparse.Namespace, parser: argparse.ArgumentParser, entries: list[Entry],
                out: Path, made: list[Path]) -> int:
    sigmas, baselines = photo_plan(args, entries, parser)
    try:
        seed = test_seed(args, entries)
    except UsageError as exc:
        parser.error(str(exc))
    try:
        clean, names, source = load_photos(args, parser)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.example_index >= len(clean):
        parser.error(f"argument --example-index: {args.example_index} is past the last of the "
                     f"{len(clean)} images")
    for e in entries:
        for name, c in zip(names, clean):
            try:
                check_fits(e.model, c.shape)
            except ValueError as exc:
                parser.error(f"argument --images: {name}: {exc} ({e.path})")
    if args.baselines is None and not available("bm3d"):     # said once everything is valid
        print(f"note: BM3D is left out: {BM3D_HINT}", file=sys.stderr)
    t0 = time.perf_counter()
    rows, crops = photo_sweep(args, entries, clean, names, sigmas, baselines, seed)
    summary = photo_summary(rows)
    try:
        out.mkdir(parents=True)
        made.append(out)
        write_photo_outputs(out, args, rows, summary, crops, clean[args.example_index], source,
                            time.perf_counter() - t0, seed)
    except (OSError, WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(len(r["method"]) for r in summary) + 2
    print(f"{source} ({len(clean)} images), mean over the images:")
    print(f"{'method':<{width}}{'sigma':>6}{'PSNR':>8}{'SSIM':>7}{'s/image':>9}")
    for r in summary:
        print(f"{r['method']:<{width}}{r['sigma']:>6g}{r['psnr']:>8.2f}{r['ssim']:>7.3f}"
              f"{r['seconds_per_image']:>9.3f}")
    print(f"{len(rows)} scores in {time.perf_counter() - t0:.1f} s; outputs in {out}")
    return 0


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
        if args.images is not None or not entries or any(e.photos for e in entries):
            if not entries and args.images is None:
                parser.error("the following arguments are required: CHECKPOINT (or --images "
                             "FOLDER for the baselines alone)")
            return main_photos(args, parser, entries, out, made)
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
            write_outputs(out, args, rows, examples, noise, factors, time.perf_counter() - t0,
                          entries)
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
