"""The capstone: train a denoiser with the learner's functions inside the library's own layers.

``python -m scratchnet.learn train DIR [--model conv|unet|dense]`` trains a model of
`scratchnet.models` inside ``scratchnet.override`` with the learner's functions in place of
the ops their exercises replace, so every ``nn.Conv2d``, ``nn.BatchNorm2d``, ``UNet.backward``
and ``optim.Adam`` of the run computes with the learner's math. The exercises a model uses are
the ones whose ops a training step calls (`exercises_for`); they must pass ``check`` first.

The library's copy and the learner's copy of the model, from one seed, train in lockstep on
the first `COMPARE` batches (same batches, same noise), and their losses must agree to
float32 rounding. At the first batch, where both have the same weights, every gradient of the
backward pass is compared layer by layer, so a difference names the layer and the exercise.
Then the learner's model trains on alone (Adam, Gaussian noise 0.5 clipped to [0, 1],
float32, as ``examples/train_denoiser.py`` trains), its test MSE is set against chapter 9's
three baselines (the noisy input, all black, the average training image), and a figure shows
clean, noisy and denoised-by-your-code test images.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import cli, nn, ops, optim
from ..data import (BatchLoader, DatasetError, NoiseSpec, find_dataset_dir, images_to_array,
                    load_dataset, search_dirs)
from ..evaluation import predict, psnr
from ..models import build_model
from ..plotting import plot_results, save_figure
from ..random import default_rng, manual_seed
from .exercises import EXERCISES, Exercise, learner_overrides
from .grader import LearnerCodeError, describe_exception, grade, learner_code, load_functions
from .learner import LearnerEnded, run_apart

__all__ = ["train", "train_apart", "Recipe", "RECIPES", "exercises_for", "COMPARE"]


@dataclass(frozen=True)
class Recipe:
    """How the capstone trains a model (``--limit-train`` and ``--epochs`` change it)."""
    limit_train: int
    epochs: int
    lr: float
    width: int | None = None             # the U-Net's
    batch_size: int = 64
    weight_decay: float = 1e-5


# Each gets well past the average-image plateau (a test MSE of 0.064): measured with the
# library's functions, test MSE 0.025 (conv, 376 steps), 0.018 (unet, 100 steps), 0.055 after
# 100 of the dense model's 376 steps.
RECIPES = {"conv": Recipe(12_000, 2, 3e-3), "unet": Recipe(6_400, 1, 5e-3, width=8),
           "dense": Recipe(12_000, 2, 3e-3)}
# The training program's default noise (Gaussian 0.5, clipped, test seed 1234): one spec, so
# the capstone's test set is the one examples/train_denoiser.py scores.
NOISE, COMPARE, FIGURE_IMAGES = NoiseSpec(), 16, 8
# Two float32 runs of the same math in another order of operations (a learner's
# (gy * y) * (1 - y) for the library's gy * y * (1 - y)) differ by a few units of float32
# rounding (6e-8) per operation; over the compared steps the losses of correct solutions stay
# within 1e-6 of each other (the conv model) or 6e-5 (the U-Net, whose batch norm and ReLUs
# amplify rounding), and a real mistake moves them by 1e-2 or more.
LOSS_TOLERANCE = 1e-3
# At the first batch a gradient agrees when max|yours - library| <= GRAD_TOLERANCE *
# max(max|library|, GRAD_FLOOR * the largest gradient of the pass): one that is zero in exact
# arithmetic (the bias of a convolution that batch norm follows) is float32 rounding alone.
GRAD_TOLERANCE, GRAD_FLOOR = 1e-4, 1e-3

Out = Callable[[str], None]
Trail = list[tuple[str, nn.Module, str, np.ndarray]]


def exercises_for(model: str) -> list[Exercise]:
    """The exercises whose ops a training step of ``model`` calls (forward, MSE, backward and
    Adam, on two images)."""
    called: set[str] = set()

    def recording(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            called.add(name)
            return ops.OPS[name](*args, **kwargs)  # inside its own override: the library's
        return call

    net = build_model(model, RECIPES[model].width)
    opt, mse = optim.Adam(net.parameters()), nn.MSELoss()
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    with ops.override(**{name: recording(name) for name in ops.OPS}):
        mse(net(x), x)
        net.backward(mse.backward())
        opt.step()
    return [ex for ex in EXERCISES.values() if set(ex.functions) <= called]


# --- a step, and the gradients of its backward pass ---------------------------------------------
@contextlib.contextmanager
def _recorded(model: nn.Module, trail: Trail) -> Iterator[None]:
    """Record, per leaf layer's backward in the order they run, the gradient arriving, the
    parameters' gradients and the dx it returns."""
    leaves = [(name, m) for name, m in model.named_modules() if name and not m._modules]
    for name, m in leaves:
        def backward(g: Any, _name: str = name, _m: nn.Module = m,
                     _own: Callable[[Any], Any] = m.backward) -> Any:
            trail.append((_name, _m, "the gradient arriving", np.array(g)))
            dx = _own(g)
            trail.extend((_name, _m, "d" + p, np.array(q.grad)) for p, q in _m.named_parameters())
            trail.append((_name, _m, "dx", np.array(dx)))
            return dx
        object.__setattr__(m, "backward", backward)
    try:
        yield
    finally:
        for _, m in leaves:
            m.__dict__.pop("backward", None)


def _step(model: nn.Module, opt: optim.Optimizer, noisy: Any, clean: Any,
          trail: Trail | None = None, backward: Callable[[], Any] = contextlib.nullcontext
          ) -> float:
    """One training step, its backward pass and update inside ``backward()``; with ``trail``,
    every gradient of its backward pass, in order."""
    mse = nn.MSELoss()
    opt.zero_grad()
    loss = mse(model(noisy), clean)
    with backward(), _recorded(model, trail) if trail is not None else contextlib.nullcontext():
        g = mse.backward()
        if trail is not None:
            trail.append(("the loss", mse, "dpred", np.array(g)))
        model.backward(g)
        opt.step()
    return float(loss)


def _rel(a: Any, b: Any, floor: float = 1e-30) -> float:
    """max|a - b| / max(max|b|, floor)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max(initial=0.0) / max(float(np.abs(b).max(initial=0.0)), floor))


_LAYER_EXERCISES = ((nn.ConvTranspose2d, {"": "conv_transpose2d"}),
                    (nn.Conv2d, {"dweight": "conv2d_grad_weight", "dx": "conv2d_grad_input"}),
                    (nn.Linear, {"": "linear"}), (nn.ReLU, {"": "relu"}), (nn.Sigmoid, {"": "sigmoid"}),
                    (nn.BatchNorm2d, {"": "batch_norm"}), (nn.MaxPool2d, {"": "max_pool2d"}),
                    (nn.AvgPool2d, {"": "avg_pool2d"}), (nn.MSELoss, {"": "mse"}))


def _clue(library: Trail, yours: Trail, names: set[str], check: str) -> str | None:
    """Where the gradients of the first batch first differ, and the exercise to look at."""
    floor = GRAD_FLOOR * max(float(np.abs(a).max(initial=0.0)) for *_, a in library)
    for (name, _, tensor, a), (_, layer, _, b) in zip(library, yours):
        err = _rel(b, a, floor)
        if err <= GRAD_TOLERANCE:
            continue
        kind = type(layer).__name__
        if tensor == "the gradient arriving":
            exercise = "unet_skip"
            head = (f"at the first batch every layer before {name} in the backward pass agrees, "
                    f"but the gradient arriving at it differs ({kind}; relative difference "
                    f"{err:.1e}): the model's backward routes gradients between its layers")
        else:
            exercise = next((e.get(tensor, e.get("")) for cls, e in _LAYER_EXERCISES
                             if isinstance(layer, cls)), None)
            head = (f"at the first batch the gradients first differ at {name} ({kind}, {tensor}; "
                    f"relative difference {err:.1e})")
        if exercise not in names:
            return head + " (not an exercise: the library's own code)"
        return f"{head}: look at {exercise} ({check} {exercise})"
    return None


def _adam_clue(model: nn.Module, yours_on: Callable[[], Any], r: Recipe, check: str) -> str | None:
    """Three Adam steps on copies of the parameters, from the same seeded gradients, with the
    library's update and with yours. (The models' own parameters cannot show it: a gradient
    that is zero in exact arithmetic is float32 noise, which Adam turns into steps of size lr.)"""
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in model.parameters()]
    moved = []
    for context in (contextlib.nullcontext, yours_on):
        params = [nn.Parameter(p.data.copy()) for p in model.parameters()]
        opt = optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)
        with context():
            for _ in range(3):
                for p, g in zip(params, grads):
                    p.grad[...] = g
                opt.step()
        moved.append([p.data - q.data for p, q in zip(params, model.parameters())])
    err = max(_rel(b, a) for a, b in zip(*moved))
    return None if err <= GRAD_TOLERANCE else (
        f"at the first batch every gradient agrees, but three Adam steps from the same gradients "
        f"move the parameters differently (relative difference {err:.1e}): look at adam_step "
        f"({check} adam_step)")


# --- data and scores -----------------------------------------------------------------------------
def _load(split: str, data_dir: str | None, download: bool) -> np.ndarray:
    if not download and find_dataset_dir("mnist", split, data_dir) is None:
        where = ", ".join(str(Path(d) / "mnist") for d in search_dirs(data_dir))
        raise DatasetError(f"MNIST ({split}) not found; looked in {where}. Point SCRATCHNET_DATA "
                           "(or --data-dir) at a folder holding mnist/, or add --download to "
                           "fetch it (python -m scratchnet.data download --dataset mnist)")
    return load_dataset("mnist", split, root=data_dir, download=download)[0]


def _mse(a: Any, b: Any) -> float:
    return float(np.mean((np.asarray(a, dtype="float64") - b) ** 2))


# --- the run -------------------------------------------------------------------------------------
def train(directory: Path, model: str = "conv", epochs: int | None = None,
          limit_train: int | None = None, limit_test: int = 2000, every: int = 4,
          data_dir: str | None = None, download: bool = False, seed: int = 0,
          figure: Path | None = None, out: Out = print, err: Out = print) -> int:
    """Run the capstone for the learner's folder ``directory``; returns the exit status.

    Args:
        directory: the learner's folder (written by ``new``).
        model: "conv" (the reference autoencoder), "unet" or "dense".
        epochs: epochs to train (default: the model's `RECIPES` entry).
        limit_train: MNIST training images to use (default: the recipe's).
        limit_test: MNIST test images to score on.
        every: a row of the lockstep table every this many batches.
        data_dir: a folder holding ``mnist/``, searched first (else the usual places).
        download: fetch MNIST when it is not found.
        seed: weight initialisation, shuffling and noise.
        figure: where to write the figure (default: ``DIR/capstone-<model>.png``).
        out: where the report goes.
        err: where a refusal goes.

    Returns:
        0 when your functions train the model as the library's do, 1 otherwise (or when
        refused).
    """
    t0, directory = time.perf_counter(), Path(directory)
    recipe = replace(RECIPES[model], limit_train=limit_train or RECIPES[model].limit_train,
                     epochs=epochs or RECIPES[model].epochs)
    exercises = exercises_for(model)
    pending = [r for r in grade(directory, [ex.name for ex in exercises]) if not r.passed]
    if pending:
        err(f"train: every exercise the {model} model uses must pass first; not passing yet: "
            + ", ".join(f"{r.exercise.name} ({r.status}{': ' + r.note if r.note else ''})"
                        for r in pending)
            + f"; see python -m scratchnet.learn check {directory} "
            + " ".join(r.exercise.name for r in pending))
        return 1
    try:
        data = [images_to_array(_load(split, data_dir, download)[:n], "numpy", "float32")
                for split, n in (("train", recipe.limit_train), ("test", limit_test))]
    except DatasetError as exc:
        err(f"train: {exc}")
        return 1
    with learner_code(directory):
        try:
            fns = {k: f for ex in exercises for k, f in load_functions(directory, ex).items()}
            return _train(directory, model, recipe, *data, exercises, fns, every, seed,
                          figure or directory / f"capstone-{model}.png", out, t0)
        except LearnerCodeError as exc:
            err(f"train: {exc.lines[0]}")
        except (Exception, SystemExit) as exc:         # noqa: BLE001 (learner code)
            lines = describe_exception(exc, directory)
            err("train: " + "\n".join(lines))
        return 1


def train_apart(directory: Path, prefix: str, **options: Any) -> int:
    """`train` as the command line runs it: in a child process, its refusals on stderr after
    ``prefix``. A KeyboardInterrupt that the learner's code raises is its failure, in one line
    (a real Ctrl-C stops the run); an exit or a crash there is told in one line.

    Raises:
        KeyboardInterrupt: Ctrl-C (`cli.Terminated`: SIGTERM, SIGHUP) stopped the run.
    """
    try:
        return run_apart(_train_child, Path(directory), prefix, options)
    except LearnerEnded as exc:
        print(f"{prefix}train: {exc}", file=sys.stderr)
        return 1


def _train_child(directory: Path, prefix: str, options: dict[str, Any]) -> int:
    def err(line: str) -> None:
        print(f"{prefix}{line}", file=sys.stderr)

    try:
        return train(directory, err=err, **options)
    except KeyboardInterrupt as exc:
        if isinstance(exc, cli.Terminated):            # a real stop signal: run_apart's
            raise
        err("train: " + "\n".join(describe_exception(exc, directory)))
        return 1


def _train(directory: Path, model: str, r: Recipe, train_x: np.ndarray, test_x: np.ndarray,
           exercises: list[Exercise], fns: dict[str, Callable[..., Any]], every: int, seed: int,
           figure: Path, out: Out, t0: float) -> int:
    def yours_on() -> contextlib.AbstractContextManager:
        return learner_overrides(exercises, fns)

    nets = []
    for _ in range(2):                                 # the library's and yours, one seed
        manual_seed(seed)
        nets.append(build_model(model, r.width))
    library, yours = nets
    lib_opt, your_opt = (optim.Adam(m.parameters(), lr=r.lr, weight_decay=r.weight_decay)
                         for m in nets)
    loader = BatchLoader(train_x, r.batch_size, shuffle=True, seed=seed)
    n = len(loader)
    compare, check = min(COMPARE, n * r.epochs), f"python -m scratchnet.learn check {directory}"
    noisy_test = NOISE.test_batch(test_x)
    out(f"training the {model} model with your {', '.join(ex.name for ex in exercises)}, inside "
        "the library's own layers")
    out(f"{len(train_x):,} MNIST training images, {r.epochs} epoch{'s' * (r.epochs > 1)} of {n} "
        f"batches of {r.batch_size}, Adam lr {r.lr:g} with weight decay {r.weight_decay:g}, "
        f"Gaussian noise {NOISE.factor:g} clipped to [0, 1], float32 (seed {seed})")
    out(f"the first {compare} batches in lockstep with the library's functions, from the same "
        f"weights:\n{'batch':>6}  {'library':>10}  {'yours':>10}  {'rel. diff.':>10}")
    diffs: list[float] = []
    trails: tuple[Trail, Trail] = ([], [])
    with np.errstate(all="ignore"):
        for epoch in range(r.epochs):
            total, t_epoch = 0.0, time.perf_counter()
            for b, clean in enumerate(loader):
                noisy = NOISE.apply(clean, default_rng((seed, epoch, b), "numpy"))
                k = epoch * n + b
                if k >= compare:
                    with yours_on():
                        total += _step(yours, your_opt, noisy, clean) * len(clean)
                    continue
                lib_loss = _step(library, lib_opt, noisy, clean, trails[0] if k == 0 else None)
                if k == 0:     # the same forward pass (no ReLU mask flipped by rounding), your backward
                    loss = _step(yours, your_opt, noisy, clean, trails[1], yours_on)
                else:
                    with yours_on():
                        loss = _step(yours, your_opt, noisy, clean)
                total += loss * len(clean)
                diffs.append(_rel(loss, lib_loss))
                if k == 0:
                    clue = _clue(*trails, {ex.name for ex in exercises}, check) or \
                        _adam_clue(library, yours_on, r, check)
                if (k + 1) % every == 0 or k == 0 or k + 1 == compare:
                    out(f"{k + 1:>6}  {lib_loss:>10.6f}  {loss:>10.6f}  {diffs[-1]:>10.1e}")
                if k + 1 == compare and not _agree(diffs, clue, out):
                    return 1
            with yours_on():
                test_mse = _mse(predict(yours, noisy_test, 500), test_x)
            out(f"epoch {epoch + 1}: train MSE {total / len(train_x):.4f}, test MSE {test_mse:.4f} "
                f"({psnr(test_mse):.1f} dB; {time.perf_counter() - t_epoch:.0f} s)")
    with yours_on():
        denoised = predict(yours, noisy_test, 500)
    return _report(model, denoised, train_x, test_x, noisy_test, figure, out, t0)


def _agree(diffs: list[float], clue: str | None, out: Out) -> bool:
    """Say whether the lockstep losses and the first batch's gradients agree."""
    worst = int(np.argmax(diffs))
    if max(diffs) <= LOSS_TOLERANCE and clue is None:
        out(f"the curves agree to float32 rounding: largest relative difference {max(diffs):.1e} "
            f"(batch {worst + 1}; tolerance {LOSS_TOLERANCE:.0e}); from here on your functions "
            "train the model alone")
        return True
    first = next((i for i, d in enumerate(diffs) if not d <= LOSS_TOLERANCE), worst)
    out(f"the curves diverge: relative difference {diffs[first]:.1e} at batch {first + 1} "
        f"(largest {max(diffs):.1e}; float32 rounding stays below {LOSS_TOLERANCE:.0e})")
    out(clue or "at the first batch every gradient and the first Adam steps agree; the "
        "difference grows later: look at how your functions behave in float32 (a constant "
        "computed in float64 and cast back, a sum in a different order over many entries)")
    return False


def _report(model: str, denoised: np.ndarray, train_x: np.ndarray, test_x: np.ndarray,
            noisy: np.ndarray, figure: Path, out: Out, t0: float) -> int:
    test_mse = _mse(denoised, test_x)
    baselines = {"the noisy input itself": _mse(noisy, test_x),
                 "all black (zeros)": _mse(np.zeros_like(test_x), test_x),
                 "the average training image": _mse(train_x.mean(axis=0, dtype="float64"), test_x)}
    out(f"test MSE on {len(test_x):,} MNIST test images (noise {NOISE.factor:g}, clipped; seed {NOISE.test_seed}):")
    for name, value in {f"your {model} model": test_mse, **baselines}.items():
        out(f"  {name:<28} {value:.4f}  ({psnr(value):.1f} dB)")
    above = [name for name, value in baselines.items() if not test_mse < value]
    out("your denoiser beats all three baselines" if not above else "your denoiser does not beat "
        + ", ".join(above) + " yet: train longer (--epochs, --limit-train)")
    title = (f"denoised by your code: {model} model, test MSE {test_mse:.4f} (noisy "
             f"{baselines['the noisy input itself']:.4f}, average image "
             f"{baselines['the average training image']:.4f})")
    k = FIGURE_IMAGES
    save_figure(plot_results(test_x[:k, 0], noisy[:k, 0], denoised[:k, 0], title,
                             ("clean", "noisy", "denoised by your code")), figure)
    out(f"wrote {figure} ({time.perf_counter() - t0:.0f} s in all)")
    return 0
