"""The capstone: train the reference autoencoder with the learner's backward functions.

``python -m scratchnet.learn train DIR`` builds ``scratchnet.models.conv_autoencoder()`` twice
from the same seed: once from the library's layers, once from :mod:`scratchnet.learn.layers`
running the learner's functions (ReLU, Sigmoid, MSE, both convolution gradients, the
transposed convolution, Adam). Both train in lockstep on the same batches with the same noise
(2,000 MNIST training images, one epoch, batch 64, Adam lr 1e-3 with weight decay 1e-5,
Gaussian noise 0.5 clipped to [0, 1], as ``examples/train_denoiser.py`` trains), and the two
loss curves are printed side by side. Correct functions agree with the library to float32
rounding; when they do not, the first batch's gradients are compared layer by layer to say
which exercise to look at.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import nn, optim
from ..backend import default_rng, manual_seed
from ..data import (BatchLoader, DatasetError, add_noise, find_dataset_dir, images_to_array,
                    load_dataset, search_dirs)
from ..models import Autoencoder, conv_autoencoder
from . import layers as L
from .exercises import CAPSTONE, EXERCISES
from .grader import LearnerCodeError, describe_exception, grade, learner_code, load_functions

__all__ = ["train", "IMAGES", "BATCH_SIZE", "LOSS_TOLERANCE"]

IMAGES, BATCH_SIZE, LR, WEIGHT_DECAY, NOISE = 2000, 64, 1e-3, 1e-5, 0.5
# Two float32 runs of the same math in a different order of operations (say, a learner's
# (gy * y) * (1 - y) against the library's gy * y * (1 - y)) differ by a few units of float32
# rounding (6e-8) per operation. Over the 32 Adam steps here the losses of correct solutions
# stay within about 1e-6 of each other (measured: 6e-7); a real mistake moves them by 1e-3 or
# more at some batch (a float32-only slip in sigmoid: 4e-2; Adam with twice the rate: 0.5).
LOSS_TOLERANCE = 1e-4
GRAD_TOLERANCE = 1e-4           # at the first batch (same weights): max|a - b| / max|b|

Out = Callable[[str], None]


def _layers(model: Autoencoder) -> list[tuple[str, nn.Module]]:
    return ([(f"encoder.{i}", m) for i, m in enumerate(model.encoder)]
            + [(f"decoder.{i}", m) for i, m in enumerate(model.decoder)])


def _learner_layer(layer: nn.Module, fns: dict[str, Callable[..., Any]]) -> nn.Module:
    """The learner's twin of a library layer, with a copy of its weights."""
    if isinstance(layer, nn.Conv2d):
        twin: nn.Module = L.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                   layer.stride, layer.padding, layer.bias is not None,
                                   grad_weight=fns["conv2d_grad_weight"],
                                   grad_input=fns["conv2d_grad_input"])
    elif isinstance(layer, nn.ConvTranspose2d):
        twin = L.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                 layer.stride, layer.padding, layer.output_padding,
                                 layer.bias is not None,
                                 backward_fn=fns["conv_transpose2d_backward"])
    elif isinstance(layer, nn.ReLU):
        twin = L.ReLU(backward_fn=fns["relu_backward"])
    elif isinstance(layer, nn.Sigmoid):
        twin = L.Sigmoid(backward_fn=fns["sigmoid_backward"])
    else:
        raise TypeError(f"the capstone has no learner version of {type(layer).__name__}")
    twin.load_state_dict(layer.state_dict())
    return twin


def _exercise_of(layer: nn.Module, tensor: str) -> str:
    if isinstance(layer, nn.ConvTranspose2d):
        return "conv_transpose2d"
    if isinstance(layer, nn.Conv2d):
        return "conv2d_grad_weight" if tensor == "dweight" else (
            "conv2d_grad_input" if tensor == "dx" else "(the bias gradient; not an exercise)")
    if isinstance(layer, nn.Sigmoid):
        return "sigmoid"
    if isinstance(layer, nn.ReLU):
        return "relu"
    return "mse"


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return float(np.abs(a - b).max(initial=0.0) / max(float(np.abs(b).max(initial=0.0)), 1e-30))


def _step(model: Autoencoder, mse: nn.Module, opt: optim.Optimizer, noisy: Any, clean: Any,
          record: bool) -> tuple[float, list[tuple[str, nn.Module, str, np.ndarray]]]:
    """One training step; with ``record``, every gradient of the backward pass, in order."""
    trail: list[tuple[str, nn.Module, str, np.ndarray]] = []
    opt.zero_grad()
    loss = mse(model(noisy), clean)
    g = mse.backward()
    if record:
        trail.append(("loss", mse, "dpred", np.array(g)))
    for name, layer in reversed(_layers(model)):
        g = layer.backward(g)
        if record:
            for pname, p in layer.named_parameters():
                trail.append((name, layer, "d" + pname, np.array(p.grad)))
            trail.append((name, layer, "dx", np.array(g)))
    opt.step()
    return float(loss), trail


def _first_difference(lib: list[tuple[str, nn.Module, str, np.ndarray]],
                      yours: list[tuple[str, nn.Module, str, np.ndarray]]
                      ) -> tuple[str, nn.Module, str, float] | None:
    for (name, _, tensor, a), (_, layer, _, b) in zip(lib, yours):
        err = _rel(b, a)
        if not err <= GRAD_TOLERANCE:
            return name, layer, tensor, err
    return None


def _load_images(data_dir: str | None, download: bool) -> np.ndarray:
    if not download and find_dataset_dir("mnist", "train", data_dir) is None:
        where = ", ".join(str(Path(d) / "mnist") for d in search_dirs(data_dir))
        raise DatasetError(f"MNIST (train) not found; looked in {where}. Point SCRATCHNET_DATA "
                           "(or --data-dir) at a folder holding mnist/, or add --download to "
                           "fetch it (python -m scratchnet.data download --dataset mnist)")
    images, _ = load_dataset("mnist", "train", root=data_dir, download=download)
    return images


def train(directory: Path, every: int = 4, data_dir: str | None = None, download: bool = False,
          seed: int = 0, out: Out = print, err: Out = print) -> int:
    """Run the capstone for the learner's folder ``directory``; returns the exit status.

    Args:
        directory: the learner's folder (written by ``new``).
        every: print a row of the loss table every this many batches.
        data_dir: a folder holding ``mnist/``, searched first (else the usual places).
        download: fetch MNIST when it is not found.
        seed: weight initialisation, shuffling and noise.
        out, err: where the report and a refusal go.

    Returns:
        0 when the two curves agree to float32 rounding, 1 otherwise (or when refused).
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    pending = [r for r in grade(directory, CAPSTONE) if not r.passed]
    if pending:
        names = " ".join(r.exercise.name for r in pending)
        err("train: every exercise the capstone uses must pass first; not passing yet: "
            + ", ".join(f"{r.exercise.name} ({r.status})" for r in pending)
            + f"; see python -m scratchnet.learn check {directory} {names}")
        return 1
    try:
        images = _load_images(data_dir, download)
    except DatasetError as exc:
        err(f"train: {exc}")
        return 1
    fns: dict[str, Callable[..., Any]] = {}
    with learner_code(directory):
        try:
            for name in CAPSTONE:
                fns.update(load_functions(directory, EXERCISES[name]))
        except LearnerCodeError as exc:
            err(f"train: {exc.lines[0]}")
            return 1
        try:
            return _train(directory, images, fns, every, seed, out, t0)
        except Exception as exc:                       # noqa: BLE001 (learner code)
            lines = describe_exception(exc, directory)
            err("train: " + lines[0] + "".join("\n" + line for line in lines[1:]))
            return 1


def _train(directory: Path, images: np.ndarray, fns: dict[str, Callable[..., Any]], every: int,
           seed: int, out: Out, t0: float) -> int:
    x = images_to_array(images[:IMAGES], "numpy", "float32")
    manual_seed(seed)
    library = conv_autoencoder()
    yours = Autoencoder(nn.Sequential(*(_learner_layer(m, fns) for m in library.encoder)),
                        nn.Sequential(*(_learner_layer(m, fns) for m in library.decoder)))
    lib_opt = optim.Adam(library.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    your_opt = L.Adam(yours.parameters(), lr=LR, weight_decay=WEIGHT_DECAY,
                      step_fn=fns["adam_step"])
    lib_mse, your_mse = nn.MSELoss(), L.MSELoss(backward_fn=fns["mse_backward"])
    loader = BatchLoader(x, BATCH_SIZE, shuffle=True, seed=seed)
    n = len(loader)
    out(f"training the reference autoencoder twice from seed {seed}: with the library's "
        "backward passes and with yours")
    last = len(x) - (n - 1) * BATCH_SIZE
    out(f"{len(x):,} MNIST training images, 1 epoch of {n} batches of {BATCH_SIZE}"
        + (f" (the last of {last})" if last != BATCH_SIZE else "") + ", Adam lr "
        f"{LR:g} with weight decay {WEIGHT_DECAY:g}, Gaussian noise {NOISE:g} clipped to [0, 1], "
        "float32")
    out(f"{'batch':>6}  {'library':>10}  {'yours':>10}  {'rel. diff.':>10}")
    curve: list[tuple[float, float, int]] = []
    clue = None
    with np.errstate(all="ignore"):
        for b, clean in enumerate(loader):
            noisy = add_noise("gaussian", clean, NOISE, True, default_rng((seed, 0, b), "numpy"))
            lib_loss, lib_trail = _step(library, lib_mse, lib_opt, noisy, clean, b == 0)
            your_loss, your_trail = _step(yours, your_mse, your_opt, noisy, clean, b == 0)
            curve.append((lib_loss, your_loss, len(clean)))
            if b == 0:
                clue = _first_difference(lib_trail, your_trail)
                if clue is None:
                    moved = max(_rel(p.data, q.data) for p, q in
                                zip(yours.parameters(), library.parameters()))
                    if not moved <= GRAD_TOLERANCE:
                        clue = ("the first Adam step", None, "param", moved)
            if (b + 1) % every == 0 or b == 0 or b + 1 == n:
                out(f"{b + 1:>6}  {lib_loss:>10.6f}  {your_loss:>10.6f}  "
                    f"{_rel(your_loss, lib_loss):>10.1e}")
    lib_mean = sum(a * k for a, _, k in curve) / len(x)
    your_mean = sum(c * k for _, c, k in curve) / len(x)
    diffs = [_rel(c, a) for a, c, _ in curve]
    worst = int(np.argmax(diffs))
    out(f"{'mean':>6}  {lib_mean:>10.6f}  {your_mean:>10.6f}  {_rel(your_mean, lib_mean):>10.1e}"
        "   (over the epoch)")
    seconds = time.perf_counter() - t0
    if max(diffs) <= LOSS_TOLERANCE and clue is None:
        out(f"the curves agree to float32 rounding: largest relative difference "
            f"{max(diffs):.1e} (batch {worst + 1}; tolerance {LOSS_TOLERANCE:.0e}). Your backward "
            f"passes train the autoencoder as the library's do ({seconds:.1f} s)")
        return 0
    first = next(i for i, d in enumerate(diffs) if not d <= LOSS_TOLERANCE) if \
        max(diffs) > LOSS_TOLERANCE else worst
    out(f"the curves diverge: relative difference {diffs[first]:.1e} at batch {first + 1} "
        f"(largest {max(diffs):.1e}; float32 rounding stays below {LOSS_TOLERANCE:.0e})")
    if clue is not None:
        name, layer, tensor, err = clue
        if layer is None:
            out(f"at the first batch every gradient agrees, but the parameters after the first "
                f"Adam step differ (relative difference {err:.1e}): look at adam_step "
                f"(python -m scratchnet.learn check {directory} adam_step)")
        else:
            exercise = _exercise_of(layer, tensor)
            out(f"at the first batch the gradients first differ at {name} "
                f"({type(layer).__name__}, {tensor}; relative difference {err:.1e}): look at "
                f"{exercise} (python -m scratchnet.learn check {directory} {exercise})")
    else:
        out("at the first batch every gradient and the first Adam step agree; the difference "
            "grows later: look at how your functions behave in float32 (a constant computed in "
            "float64 and cast back, a sum in a different order over many entries)")
    return 1
