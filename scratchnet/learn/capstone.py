"""The capstone: train a denoiser with the learner's functions inside the library's own layers.

``python -m scratchnet.learn train DIR [--model conv|unet|dense]`` trains a model of
`scratchnet.models` inside ``scratchnet.override`` with the learner's functions in place of
the ops their exercises replace, so every ``nn.Conv2d``, ``nn.BatchNorm2d``, ``UNet.backward``
and ``optim.Adam`` of the run computes with the learner's math. Which exercises a model uses
is found by running it once and listing the ops it calls (`exercises_for`); they must pass
``check`` first.

Two copies of the model, from the same seed, train in lockstep on the first `COMPARE`
batches, one with the library's functions and one with the learner's, on the same batches
with the same noise; their losses must agree to float32 rounding. At the first batch, where
both still have the same weights, every gradient of the backward pass is compared layer by
layer, so a difference names the layer and the exercise to look at. Then the learner's model
trains on alone (``--epochs``, ``--limit-train``; Adam, Gaussian noise 0.5 clipped to
[0, 1], float32, as ``examples/train_denoiser.py`` trains), is scored on MNIST test images
against chapter 9's three baselines (the noisy input, all black, the average training
image), and a figure shows clean, noisy and denoised-by-your-code test images.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import nn, ops, optim
from ..data import (BatchLoader, DatasetError, add_noise, find_dataset_dir, images_to_array,
                    load_dataset, search_dirs)
from ..evaluation import psnr
from ..models import build_model
from ..plotting import plot_results, save_figure
from ..random import default_rng, manual_seed
from .exercises import EXERCISES, Exercise, learner_overrides
from .grader import LearnerCodeError, describe_exception, grade, learner_code, load_functions

__all__ = ["train", "Recipe", "RECIPES", "exercises_for", "COMPARE", "LOSS_TOLERANCE"]


@dataclass(frozen=True)
class Recipe:
    """How the capstone trains one model by default (each can be changed on the command line
    where an option exists)."""
    limit_train: int
    epochs: int
    lr: float
    batch_size: int = 64
    weight_decay: float = 1e-5
    width: int | None = None             # the U-Net's


RECIPES = {
    "conv": Recipe(limit_train=12_000, epochs=2, lr=3e-3),
    "unet": Recipe(limit_train=3_000, epochs=1, lr=2e-3, width=8),
    "dense": Recipe(limit_train=12_000, epochs=2, lr=1e-3),
}
NOISE, TEST_SEED = 0.5, 1234
COMPARE = 16                    # batches trained in lockstep with the library
# Two float32 runs of the same math in a different order of operations (say, a learner's
# (gy * y) * (1 - y) against the library's gy * y * (1 - y)) differ by a few units of float32
# rounding (6e-8) per operation. Over the compared Adam steps the losses of correct solutions
# stay within about 1e-6 of each other; a real mistake moves them by 1e-3 or more at some
# batch (a float32-only slip in sigmoid: 4e-2; Adam with twice the rate: 0.5).
LOSS_TOLERANCE = 1e-4
# At the first batch (same weights) a gradient agrees when max|a - b| <= GRAD_TOLERANCE *
# max(max|b|, GRAD_FLOOR * the largest gradient of the pass): a gradient that is zero in exact
# arithmetic (the bias of a convolution that batch norm follows) is float32 rounding alone.
GRAD_TOLERANCE, GRAD_FLOOR = 1e-4, 1e-3
FIGURE_IMAGES = 8

Out = Callable[[str], None]
Trail = list[tuple[str, nn.Module, str, np.ndarray]]


# --- which exercises a model uses ------------------------------------------------------------
def _build(name: str, recipe: Recipe, seed: int) -> nn.Module:
    manual_seed(seed)
    return build_model(name, recipe.width)


def exercises_for(model: str) -> list[Exercise]:
    """The exercises whose ops a training step of ``model`` calls (forward, MSE, backward and
    Adam, on two images): the ones the capstone uses for it."""
    called: set[str] = set()

    def recording(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            called.add(name)
            return ops.OPS[name](*args, **kwargs)        # inside its override: the library's
        return call

    net = build_model(model, RECIPES[model].width)
    opt, mse = optim.Adam(net.parameters()), nn.MSELoss()
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    with ops.override(**{name: recording(name) for name in ops.OPS}):
        mse(net(x), x)
        net.backward(mse.backward())
        opt.step()
    return [ex for ex in EXERCISES.values() if set(ex.functions) <= called]


# --- one step, and the gradients of its backward pass -------------------------------------------
@contextlib.contextmanager
def _recorded(model: nn.Module, trail: Trail) -> Iterator[None]:
    """Record, for every leaf layer's backward in the order they run: the gradient arriving,
    the parameter gradients and dx it returns."""
    leaves = [(name, m) for name, m in model.named_modules() if name and not m._modules]
    for name, m in leaves:
        def backward(grad_output: Any, _name: str = name, _m: nn.Module = m,
                     _own: Callable[[Any], Any] = m.backward) -> Any:
            trail.append((_name, _m, "the gradient arriving", np.array(grad_output)))
            dx = _own(grad_output)
            trail.extend((_name, _m, "d" + p, np.array(q.grad)) for p, q in _m.named_parameters())
            trail.append((_name, _m, "dx", np.array(dx)))
            return dx
        object.__setattr__(m, "backward", backward)
    try:
        yield
    finally:
        for _, m in leaves:
            m.__dict__.pop("backward", None)


def _step(model: nn.Module, mse: nn.MSELoss, opt: optim.Optimizer, noisy: Any, clean: Any,
          trail: Trail | None = None) -> float:
    """One training step; with ``trail``, every gradient of its backward pass, in order."""
    opt.zero_grad()
    loss = mse(model(noisy), clean)
    g = mse.backward()
    if trail is None:
        model.backward(g)
    else:
        trail.append(("the loss", mse, "dpred", np.array(g)))
        with _recorded(model, trail):
            model.backward(g)
    opt.step()
    return float(loss)


def _rel(a: np.ndarray, b: np.ndarray, floor: float = 1e-30) -> float:
    """max|a - b| / max(max|b|, floor)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max(initial=0.0) / max(float(np.abs(b).max(initial=0.0)), floor))


_LAYER_EXERCISES: tuple[tuple[type, dict[str, str]], ...] = (
    (nn.ConvTranspose2d, {"": "conv_transpose2d"}),
    (nn.Conv2d, {"dweight": "conv2d_grad_weight", "dx": "conv2d_grad_input"}),
    (nn.Linear, {"": "linear"}), (nn.ReLU, {"": "relu"}), (nn.Sigmoid, {"": "sigmoid"}),
    (nn.BatchNorm2d, {"": "batch_norm"}), (nn.MaxPool2d, {"": "max_pool2d"}),
    (nn.AvgPool2d, {"": "avg_pool2d"}), (nn.MSELoss, {"": "mse"}),
)


def _exercise_of(layer: nn.Module, tensor: str) -> str | None:
    for cls, names in _LAYER_EXERCISES:
        if isinstance(layer, cls):
            return names.get(tensor, names.get(""))
    return None


def _clue(library: Trail, yours: Trail, exercises: list[Exercise], directory: Path) -> str | None:
    """Where the gradients of the first batch first differ, and the exercise to look at."""
    names = {ex.name for ex in exercises}
    floor = GRAD_FLOOR * max(float(np.abs(a).max(initial=0.0)) for *_, a in library)
    for (name, _, tensor, a), (_, layer, _, b) in zip(library, yours):
        err = _rel(b, a, floor)
        if err <= GRAD_TOLERANCE:
            continue
        where = f"{name} ({type(layer).__name__}, {tensor}; relative difference {err:.1e})"
        if tensor == "the gradient arriving":
            exercise = "unet_skip" if "unet_skip" in names else None
            head = (f"at the first batch every layer before {name} in the backward pass agrees, "
                    f"but the gradient arriving at it differs ({type(layer).__name__}; relative "
                    f"difference {err:.1e}): the model's backward routes gradients between its "
                    "layers")
        else:
            exercise = _exercise_of(layer, tensor)
            head = f"at the first batch the gradients first differ at {where}"
        if exercise not in names:
            return head + " (not an exercise: the library's own code)"
        return f"{head}: look at {exercise} (python -m scratchnet.learn check {directory} {exercise})"
    return None


# --- data ----------------------------------------------------------------------------------------
def _load(split: str, data_dir: str | None, download: bool) -> np.ndarray:
    if not download and find_dataset_dir("mnist", split, data_dir) is None:
        where = ", ".join(str(Path(d) / "mnist") for d in search_dirs(data_dir))
        raise DatasetError(f"MNIST ({split}) not found; looked in {where}. Point SCRATCHNET_DATA "
                           "(or --data-dir) at a folder holding mnist/, or add --download to "
                           "fetch it (python -m scratchnet.data download --dataset mnist)")
    images, _ = load_dataset("mnist", split, root=data_dir, download=download)
    return images


def _mse(a: Any, b: Any) -> float:
    return float(np.mean((np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64")) ** 2))


def _denoise(model: nn.Module, noisy: np.ndarray, batch: int = 500) -> np.ndarray:
    with nn.eval_mode(model), nn.no_grad():
        return np.concatenate([np.asarray(model(noisy[i:i + batch]))
                               for i in range(0, len(noisy), batch)])


# --- the run -------------------------------------------------------------------------------------
@dataclass
class _Settings:
    model: str
    recipe: Recipe
    limit_test: int
    every: int
    seed: int
    figure: Path


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
    t0 = time.perf_counter()
    directory = Path(directory)
    recipe = RECIPES[model]
    recipe = Recipe(limit_train or recipe.limit_train, epochs or recipe.epochs, recipe.lr,
                    recipe.batch_size, recipe.weight_decay, recipe.width)
    exercises = exercises_for(model)
    pending = [r for r in grade(directory, [ex.name for ex in exercises]) if not r.passed]
    if pending:
        names = " ".join(r.exercise.name for r in pending)
        err(f"train: every exercise the {model} model uses must pass first; not passing yet: "
            + ", ".join(f"{r.exercise.name} ({r.status})" for r in pending)
            + f"; see python -m scratchnet.learn check {directory} {names}")
        return 1
    try:
        train_u8, test_u8 = _load("train", data_dir, download), _load("test", data_dir, download)
    except DatasetError as exc:
        err(f"train: {exc}")
        return 1
    settings = _Settings(model, recipe, limit_test, every, seed,
                         figure or directory / f"capstone-{model}.png")
    fns: dict[str, Callable[..., Any]] = {}
    with learner_code(directory):
        try:
            for ex in exercises:
                fns.update(load_functions(directory, ex))
        except LearnerCodeError as exc:
            err(f"train: {exc.lines[0]}")
            return 1
        try:
            return _train(directory, train_u8, test_u8, exercises, fns, settings, out, t0)
        except Exception as exc:                       # noqa: BLE001 (learner code)
            lines = describe_exception(exc, directory)
            err("train: " + lines[0] + "".join("\n" + line for line in lines[1:]))
            return 1


def _train(directory: Path, train_u8: np.ndarray, test_u8: np.ndarray,
           exercises: list[Exercise], fns: dict[str, Callable[..., Any]], s: _Settings,
           out: Out, t0: float) -> int:
    r = s.recipe
    train_x = images_to_array(train_u8[:r.limit_train], "numpy", "float32")
    test_x = images_to_array(test_u8[:s.limit_test], "numpy", "float32")
    yours_on = lambda: learner_overrides(exercises, fns)      # noqa: E731
    library, yours = _build(s.model, r, s.seed), _build(s.model, r, s.seed)
    lib_opt, your_opt = (optim.Adam(m.parameters(), lr=r.lr, weight_decay=r.weight_decay)
                         for m in (library, yours))
    mse = nn.MSELoss()
    loader = BatchLoader(train_x, r.batch_size, shuffle=True, seed=s.seed)
    n = len(loader)
    compare = min(COMPARE, n * r.epochs)
    out(f"training the {s.model} model with your {', '.join(ex.name for ex in exercises)}, "
        f"inside the library's own layers")
    out(f"{len(train_x):,} MNIST training images, {r.epochs} epoch{'s' * (r.epochs > 1)} of {n} "
        f"batches of {r.batch_size}, Adam lr {r.lr:g} with weight decay {r.weight_decay:g}, "
        f"Gaussian noise {NOISE:g} clipped to [0, 1], float32 (seed {s.seed})")
    out(f"the first {compare} batches in lockstep with the library's functions, from the same "
        "weights:")
    out(f"{'batch':>6}  {'library':>10}  {'yours':>10}  {'rel. diff.':>10}")
    diffs: list[float] = []
    clue: str | None = None
    history: list[tuple[int, float, float]] = []
    with np.errstate(all="ignore"):
        for epoch in range(r.epochs):
            total, t_epoch = 0.0, time.perf_counter()
            for b, clean in enumerate(loader):
                noisy = add_noise("gaussian", clean, NOISE, True,
                                  default_rng((s.seed, epoch, b), "numpy"))
                k = epoch * n + b
                if k < compare:
                    lib_trail: Trail | None = [] if k == 0 else None
                    your_trail: Trail | None = [] if k == 0 else None
                    lib_loss = _step(library, mse, lib_opt, noisy, clean, lib_trail)
                    with yours_on():
                        loss = _step(yours, mse, your_opt, noisy, clean, your_trail)
                    diffs.append(_rel(loss, lib_loss))
                    if k == 0:
                        clue = _clue(lib_trail, your_trail, exercises, directory) or \
                            _adam_clue(library, yours_on, r, directory)
                    if (k + 1) % s.every == 0 or k == 0 or k + 1 == compare:
                        out(f"{k + 1:>6}  {lib_loss:>10.6f}  {loss:>10.6f}  {diffs[-1]:>10.1e}")
                    if k + 1 == compare and not _agree(diffs, clue, directory, out):
                        return 1
                else:
                    with yours_on():
                        loss = _step(yours, mse, your_opt, noisy, clean)
                total += loss * len(clean)
            with yours_on():
                test_mse = _mse(_denoise(yours, _noisy_test(test_x)), test_x)
            history.append((epoch + 1, total / len(train_x), test_mse))
            out(f"epoch {epoch + 1}: train MSE {total / len(train_x):.4f}, test MSE {test_mse:.4f} "
                f"({psnr(test_mse):.1f} dB; {time.perf_counter() - t_epoch:.0f} s)")
    return _report(yours, yours_on, train_x, test_x, history, s, out, t0)


def _noisy_test(test_x: np.ndarray) -> np.ndarray:
    return add_noise("gaussian", test_x, NOISE, True, default_rng(TEST_SEED, "numpy"))


def _adam_clue(model: nn.Module, yours_on: Callable[[], Any], r: Recipe, directory: Path
               ) -> str | None:
    """Three Adam steps on copies of the model's parameters with the same seeded gradients,
    with the library's update and with yours. (The models' own parameters cannot show it: a
    gradient that is zero in exact arithmetic is float32 noise, which Adam's normalisation
    turns into steps of size lr.)"""
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in model.parameters()]
    after = []
    for context in (contextlib.nullcontext, yours_on):
        params = [nn.Parameter(p.data.copy()) for p in model.parameters()]
        opt = optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)
        with context():
            for _ in range(3):
                for p, g in zip(params, grads):
                    p.grad[...] = g
                opt.step()
        after.append([p.data - q.data for p, q in zip(params, model.parameters())])
    moved = max(_rel(b, a) for a, b in zip(*after))
    if moved <= GRAD_TOLERANCE:
        return None
    return (f"at the first batch every gradient agrees, but three Adam steps from the same "
            f"gradients move the parameters differently (relative difference {moved:.1e}): "
            f"look at adam_step (python -m scratchnet.learn check {directory} adam_step)")


def _agree(diffs: list[float], clue: str | None, directory: Path, out: Out) -> bool:
    """Say whether the lockstep losses and the first batch's gradients agree."""
    worst = int(np.argmax(diffs))
    if max(diffs) <= LOSS_TOLERANCE and clue is None:
        out(f"the curves agree to float32 rounding: largest relative difference "
            f"{max(diffs):.1e} (batch {worst + 1}; tolerance {LOSS_TOLERANCE:.0e}); from here "
            "on your functions train the model alone")
        return True
    first = next((i for i, d in enumerate(diffs) if not d <= LOSS_TOLERANCE), worst)
    out(f"the curves diverge: relative difference {diffs[first]:.1e} at batch {first + 1} "
        f"(largest {max(diffs):.1e}; float32 rounding stays below {LOSS_TOLERANCE:.0e})")
    out(clue or "at the first batch every gradient and the first Adam step agree; the "
        "difference grows later: look at how your functions behave in float32 (a constant "
        "computed in float64 and cast back, a sum in a different order over many entries)")
    return False


def _report(yours: nn.Module, yours_on: Callable[[], Any], train_x: np.ndarray,
            test_x: np.ndarray, history: list[tuple[int, float, float]], s: _Settings,
            out: Out, t0: float) -> int:
    noisy = _noisy_test(test_x)
    with yours_on():
        denoised = _denoise(yours, noisy)
    test_mse = _mse(denoised, test_x)
    baselines = {"the noisy input itself": _mse(noisy, test_x),
                 "all black (zeros)": _mse(np.zeros_like(test_x), test_x),
                 "the average training image": _mse(np.broadcast_to(
                     train_x.mean(axis=0, dtype="float64"), test_x.shape), test_x)}
    out(f"test MSE on {len(test_x):,} MNIST test images (noise {NOISE:g}, clipped; seed "
        f"{TEST_SEED}):")
    out(f"  {'your ' + s.model + ' model':<28} {test_mse:.4f}  ({psnr(test_mse):.1f} dB)")
    for name, value in baselines.items():
        out(f"  {name:<28} {value:.4f}  ({psnr(value):.1f} dB)")
    beaten = [name for name, value in baselines.items() if test_mse < value]
    out("your denoiser beats all three baselines" if len(beaten) == len(baselines) else
        "your denoiser does not beat " + ", ".join(n for n in baselines if n not in beaten)
        + " yet: train longer (--epochs, --limit-train)")
    title = (f"denoised by your code: {s.model} model, test MSE {test_mse:.4f} "
             f"(noisy {baselines['the noisy input itself']:.4f}, average image "
             f"{baselines['the average training image']:.4f})")
    k = FIGURE_IMAGES
    save_figure(plot_results(test_x[:k, 0], noisy[:k, 0], denoised[:k, 0], title,
                             ("clean", "noisy", "denoised by your code")), s.figure)
    out(f"wrote {s.figure} ({time.perf_counter() - t0:.0f} s in all)")
    return 0
