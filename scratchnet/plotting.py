"""The run's figures (matplotlib, Agg backend: files only). All arrays are host arrays."""
from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

from .fileio import atomic_write  # noqa: E402

__all__ = ["save_figure", "plot_samples", "plot_noise_levels", "plot_iteration_loss",
           "plot_epoch_loss", "plot_results"]


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
                        window: int = 50) -> Any:
    """Training MSE of every iteration, its moving average, and epoch boundaries."""
    losses = numpy.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(numpy.arange(1, len(losses) + 1), losses, lw=0.5, alpha=0.4, label="per iteration")
    w = max(1, min(window, len(losses) // 4))
    if len(losses) >= w:
        smooth = numpy.convolve(losses, numpy.ones(w) / w, mode="valid")
        ax.plot(numpy.arange(w, len(losses) + 1), smooth, lw=1.5, label=f"moving average ({w})")
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
    """Train and test MSE per epoch, with the noisy input's MSE as a baseline."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, train, "o-", label="train MSE (mean over the epoch)")
    ax.plot(epochs, test, "s-", label="test MSE (fixed noisy test set)")
    ax.axhline(noisy_baseline, color="red", ls="--", label=f"noisy input ({noisy_baseline:.4f})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (per pixel, images in [0, 1])")
    ax.set_xticks(list(epochs))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_results(clean: numpy.ndarray, noisy: numpy.ndarray, denoised: numpy.ndarray,
                 title: str) -> Any:
    """Rows: clean / noisy / denoised, one column per test image."""
    n = len(clean)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.4), squeeze=False)
    for row, (name, images) in enumerate([("clean", clean), ("noisy", noisy),
                                          ("denoised", denoised)]):
        for col in range(n):
            _show(axes[row, col], images[col])
        axes[row, 0].set_ylabel(name, fontsize=10)
    fig.suptitle(title)
    return fig
