"""The run's figures (matplotlib, Agg backend: files only). All arrays are host arrays."""
from __future__ import annotations

import os
import textwrap
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy  # noqa: E402

from .fileio import atomic_write  # noqa: E402

__all__ = ["save_figure", "plot_samples", "plot_noise_levels", "plot_iteration_loss",
           "plot_epoch_loss", "plot_results", "plot_quality_vs_noise", "plot_image_grid",
           "plot_crops", "plot_val_psnr"]


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Write a figure as PNG atomically, then close it."""
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _show(ax: Any, image: numpy.ndarray, title: str | None = None) -> None:
    ax.imshow(image.reshape(image.shape[-2:]), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_samples(images: numpy.ndarray, labels: Sequence[int], class_names: Sequence[str],
                 title: str, rows: int = 4, cols: int = 8) -> Any:
    """A grid of training images, each titled with its label."""
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35))
    for ax, img, lab in zip(axes.ravel(), images, labels):
        _show(ax, img, class_names[int(lab)])
    fig.suptitle(title)
    return fig


def plot_noise_levels(noisy: Sequence[numpy.ndarray], factors: Sequence[float], title: str) -> Any:
    """One image at several noise factors (factor 0 is the clean image)."""
    fig, axes = plt.subplots(1, len(noisy), figsize=(1.6 * len(noisy), 2.0))
    for ax, img, f in zip(axes, noisy, factors):
        _show(ax, img, f"factor {f:g}")
    fig.suptitle(title)
    return fig


def plot_iteration_loss(losses: Sequence[float], iters_per_epoch: int, title: str,
                        window: int = 50, max_points: int = 2000) -> Any:
    """Training MSE of every iteration, its moving average, and epoch boundaries.

    Beyond ``max_points`` iterations (more than the figure has pixels across) the
    per-iteration curve is drawn as its band: the minimum and maximum of each group of
    consecutive iterations, which looks the same and draws several times faster.
    """
    losses = numpy.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4))
    if len(losses) <= max_points:
        ax.plot(numpy.arange(1, len(losses) + 1), losses, lw=0.5, alpha=0.4, label="per iteration")
    else:
        groups = numpy.array_split(numpy.arange(len(losses)), max_points // 2)
        x = [g[0] + 1 for g in groups] + [len(losses)]
        lo = [losses[g].min() for g in groups]
        hi = [losses[g].max() for g in groups]
        ax.fill_between(x, lo + lo[-1:], hi + hi[-1:], step="post", lw=0, alpha=0.4,
                        label="per iteration (range)")
    w = max(1, min(window, len(losses) // 4))
    if len(losses) >= w:
        smooth = numpy.convolve(losses, numpy.ones(w) / w, mode="valid")
        step = max(1, len(smooth) // max_points)          # a smooth curve loses nothing
        ax.plot(numpy.arange(w, len(losses) + 1)[::step], smooth[::step], lw=1.5,
                label=f"moving average ({w})")
    for e in range(iters_per_epoch, len(losses), iters_per_epoch):
        ax.axvline(e, color="gray", lw=0.5, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (batch)")
    ax.set_ylabel("training MSE (per pixel)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_epoch_loss(epochs: Sequence[int], train: Sequence[float], test: Sequence[float],
                    noisy_baseline: float, title: str) -> Any:
    """Train and test MSE per epoch, with the noisy input's MSE as a baseline.

    Short runs read as well as long ones: the x axis spans at least a few epochs, the values
    are written next to the points when there are few of them, and the log-scale y axis is
    labelled in plain numbers (0.01, 0.02, ...) rather than powers of ten.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    ax.plot(epochs, train, "o-", label="train MSE (mean over the epoch)")
    ax.plot(epochs, test, "s-", label="test MSE (fixed noisy test set)")
    ax.axhline(noisy_baseline, color="red", ls="--", label=f"noisy input ({noisy_baseline:.4f})")
    if len(epochs) <= 3:
        for e, a, b in zip(epochs, train, test):
            ax.annotate(f"{a:.4f}", (e, a), textcoords="offset points", xytext=(6, 4), fontsize=8)
            ax.annotate(f"{b:.4f}", (e, b), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (per pixel, images in [0, 1])")
    ax.set_xticks(list(epochs))
    ax.set_xlim(min(epochs) - 0.5, max(max(epochs), min(epochs) + 2) + 0.5)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)   # beside, never on a curve
    ax.grid(alpha=0.3)
    return fig


def plot_results(clean: numpy.ndarray, noisy: numpy.ndarray | None, denoised: numpy.ndarray,
                 title: str, labels: Sequence[str] = ("clean", "noisy", "denoised")) -> Any:
    """Rows: clean / noisy / denoised (or the given ``labels``), one column per image; a
    ``noisy`` of None leaves that row out.

    The images are tiled into one mosaic (white gaps between them) and shown once: one
    image on one axes draws about five times faster than a grid of 3*n axes.
    """
    rows = [(labels[0], clean), (labels[1], noisy), (labels[2], denoised)]
    return plot_image_grid([(name, images) for name, images in rows if images is not None], title)


def plot_image_grid(rows: Sequence[tuple[str, Sequence[numpy.ndarray]]], title: str,
                    column_titles: Sequence[str] | None = None) -> Any:
    """Labelled rows of equally sized images, tiled into one mosaic (white gaps) and shown once:
    one image on one axes draws about five times faster than a grid of axes."""
    n = max(len(images) for _, images in rows)
    h, w = numpy.asarray(rows[0][1][0]).shape[-2:]
    gap = 2
    mosaic = numpy.full((len(rows) * (h + gap) - gap, n * (w + gap) - gap), numpy.nan)
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            top, left = r * (h + gap), c * (w + gap)
            mosaic[top:top + h, left:left + w] = numpy.asarray(image).reshape(h, w)
    fig, ax = plt.subplots(figsize=(1.3 * n + 1.0, 1.3 * len(rows) + 0.6))
    ax.imshow(mosaic, cmap=plt.get_cmap("gray").with_extremes(bad="white"), vmin=0, vmax=1)
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(rows))], [name for name, _ in rows],
                  fontsize=9)
    if column_titles is None:
        ax.set_xticks([])
    else:
        ax.set_xticks([c * (w + gap) + w / 2 for c in range(n)], list(column_titles), fontsize=9)
        ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(title)
    return fig


def plot_quality_vs_noise(curves: Sequence[dict], noise: str, title: str) -> Any:
    """PSNR and SSIM against the noise level: one line per curve.

    Args:
        curves: dicts with "label", "factors", "psnr", "ssim" and optionally "dashed" (the
            noisy inputs).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for curve in curves:
        style = dict(ls="--", marker="x") if curve.get("dashed") else dict(marker="o")
        left.plot(curve["factors"], curve["psnr"], label=curve["label"], **style)
        right.plot(curve["factors"], curve["ssim"], label=curve["label"], **style)
    for ax, name in ((left, "PSNR (dB)"), (right, "mean SSIM")):
        ax.set_xlabel(f"{noise} noise factor")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", fontsize=8,
               ncols=min(3, len(curves)))                    # below the plots, over no curve
    fig.suptitle(title)
    return fig


def plot_crops(rows: Sequence[Sequence[tuple[str, numpy.ndarray]]], title: str,
               dpi: int = 120) -> Any:
    """Rows of titled images shown at full resolution (one figure pixel per image pixel at
    ``dpi``): photo crops, clean / noisy / denoised. Grayscale (H, W) in [0, 1] or colour
    (H, W, 3) images; values outside [0, 1] are clipped for display."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    h = max(numpy.asarray(img).shape[0] for r in rows for _, img in r)
    w = max(numpy.asarray(img).shape[1] for r in rows for _, img in r)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                             figsize=(n_cols * (w / dpi + 0.15), n_rows * (h / dpi + 0.55) + 0.6))
    for ax in axes.ravel():
        ax.set_axis_off()
    for r, row in enumerate(rows):
        for c, (name, img) in enumerate(row):
            img = numpy.clip(numpy.asarray(img, dtype=float), 0, 1)
            axes[r][c].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                              interpolation="nearest")
            width = max(12, img.shape[1] // 6)            # wrapped, and broken where "\n" says
            axes[r][c].set_title("\n".join(textwrap.fill(line, width) for line in name.split("\n")),
                                 fontsize=7)
    fig.suptitle(textwrap.fill(title, max(40, n_cols * w // 6)), fontsize=8)
    return fig


def plot_val_psnr(epochs: Sequence[int], curves: dict[str, Sequence[float]],
                  baselines: dict[str, float], title: str) -> Any:
    """Validation PSNR per epoch, one line per noise level, each with its noisy input's PSNR
    as a dashed line of the same colour."""
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    for i, (name, values) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(epochs, values, "o-", color=color, label=f"denoised, {name}")
        if name in baselines:
            ax.axhline(baselines[name], color=color, ls="--", lw=1,
                       label=f"noisy input, {name} ({baselines[name]:.2f} dB)")
        if len(epochs) <= 3:
            for e, v in zip(epochs, values):
                ax.annotate(f"{v:.2f}", (e, v), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("PSNR (dB, mean over the images)")
    ax.set_xticks(list(epochs))
    ax.set_xlim(min(epochs) - 0.5, max(max(epochs), min(epochs) + 2) + 0.5)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(alpha=0.3)
    return fig
