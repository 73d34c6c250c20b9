"""``python -m scratchnet.learn {list,new,check,train}``: exercises that grade themselves.

Exit status: 0 when everything asked for passes, 1 when an exercise fails (or the capstone
is refused or diverges), 2 for a bad command line (an unknown exercise, a missing folder, a
``new`` into a folder that is not empty). Every error is one line that names what was wrong.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import Sequence

from .. import cli
from .exercises import EXERCISES, Exercise
from .learner import TIMEOUT

__all__ = ["main", "stub_files"]

PROG = "python -m scratchnet.learn"


class _UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


def stub_files() -> dict[str, str]:
    """The exercise stubs: file name -> text, in exercise order. Each is the stub shipped with
    the package (``stubs/<name>.py``: the functions to write) under a header made from its row
    of the table (what it asks, where it is explained, the op it replaces)."""
    folder = resources.files("scratchnet.learn").joinpath("stubs")
    return {ex.file: _header(ex) + folder.joinpath(ex.file).read_text(encoding="utf-8")
            for ex in EXERCISES.values()}


def _header(ex: Exercise) -> str:
    where, functions = ex.library.split(": ")
    head = f"Exercise `{ex.name}`: {ex.asks}."
    text = (f"Explained in {ex.chapter}. What you write replaces the library's op of the same "
            f"name ({functions}, in {where}): the gradient check and the capstone run your code "
            "inside the library's own layers. Check it with:")
    return "\n".join(['"""' + textwrap.fill(head, 95), "", textwrap.fill(text, 95),
                      f"{PROG} check DIR {ex.name}", '"""', ""])


def _list() -> int:
    width = max(len(n) for n in EXERCISES) + 2
    print("exercise".ljust(width) + "what to write (in DIR/<exercise>.py) | chapter | library "
          "code it replaces")
    for ex in EXERCISES.values():
        print(f"{ex.name:<{width}}{ex.signature} | {ex.chapter} | {ex.library}")
    print(f"{'train':<{width}}the capstone: trains a denoiser (--model conv, unet or dense) with "
          "your functions inside the library's layers | docs/learn/09-training.md | "
          "scratchnet/models.py")
    print("every exercise is also run through scratchnet.gradcheck (docs/learn/02-gradcheck.md)")
    return 0


def _new(directory: Path) -> int:
    if directory.exists() and not directory.is_dir():
        raise _UsageError(f"new: {directory} exists and is not a folder; choose a new folder")
    if directory.is_dir() and any(directory.iterdir()):
        raise _UsageError(f"new: {directory} already exists and is not empty; new never "
                          "overwrites anything, so choose a new (or empty) folder")
    stubs = stub_files()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(f"new: cannot create {directory} ({exc.strerror or exc})") from None
    for name, text in stubs.items():
        path = directory / name
        try:
            with open(path, "x", encoding="utf-8") as f:       # "x": never overwrite
                f.write(text)
        except FileExistsError:
            print(f"error: {path} appeared while the stubs were being written; it was left as "
                  "it is and nothing was overwritten", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot write {path} ({exc.strerror or exc}); the files written "
                  "before it are kept", file=sys.stderr)
            return 1
    print(f"wrote {len(stubs)} exercise stubs into {directory}: {', '.join(stubs)}")
    print(f"write a function, then grade it:  {PROG} check {directory} NAME  "
          f"(all of them: {PROG} check {directory}; the list: {PROG} list)")
    return 0


def _folder(directory: Path, command: str) -> None:
    if not directory.exists():
        raise _UsageError(f"{command}: folder {directory} does not exist; create the exercises "
                          f"with `{PROG} new {directory}`")
    if not directory.is_dir():
        raise _UsageError(f"{command}: {directory} is not a folder; give the folder `{PROG} "
                          "new` wrote")


def _check(directory: Path, names: Sequence[str], timeout: float, hint: int = 0) -> int:
    from .grader import format_result, format_summary, grade_exercise

    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise _UsageError(f"check: unknown exercise {unknown[0]!r}; expected one of "
                          f"{', '.join(EXERCISES)}")
    if hint and not names:
        raise _UsageError(f"check: --hint needs the exercise to hint at: {PROG} check "
                          f"{directory} NAME --hint {hint}")
    _folder(directory, "check")
    chosen = list(dict.fromkeys(names)) or list(EXERCISES)
    results, graded = [], {}                  # an exercise others import is graded once
    for name in chosen:
        result = grade_exercise(EXERCISES[name], directory, timeout, graded)
        results.append(result)
        print(format_result(result, hint), flush=True)
    print(format_summary(results))
    return 0 if all(r.passed for r in results) else 1


def _train(args: argparse.Namespace) -> int:
    from .capstone import train_apart

    _folder(args.dir, "train")
    return train_apart(args.dir, f"{PROG} ", model=args.model, epochs=args.epochs,
                       limit_train=args.limit_train, limit_test=args.limit_test, every=args.every,
                       data_dir=args.data_dir, download=args.download, figure=args.figure)


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog=PROG, description=(
        "Exercises that grade themselves: write the backward passes of scratchnet's layers, and "
        "get told not only whether they are right but how they are wrong."),
        epilog=f"start with:  {PROG} new my-exercises   (docs/exercises.md explains it all)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="one line per exercise: what to write, where it is explained",
                   description="One line per exercise: its name, the function to write, the "
                               "chapter that explains it and the library code it replaces.")
    p = sub.add_parser("new", help="copy the exercise stubs into a new folder",
                       description="Copy the exercise stubs into DIR (created; a DIR that exists "
                                   "and is not empty is refused: nothing is ever overwritten).")
    p.add_argument("dir", metavar="DIR", type=Path, help="the folder to create")
    p = sub.add_parser("check", help="grade exercises and diagnose what is wrong",
                       description="Grade the named exercises of DIR (all when none are named): "
                                   "per tensor pass or fail, the worst entry and a diagnosis, and "
                                   "a gradient check of the library's own layer running your "
                                   "function. This runs the code in DIR: each exercise's file is "
                                   "imported and run in a child process of its own, with a time "
                                   "limit (--timeout); an exit, a crash or a hang there fails "
                                   "that exercise and the others are still graded. Exit status 0 "
                                   "only when every graded exercise passes.")
    p.add_argument("dir", metavar="DIR", type=Path, help="the folder `new` wrote")
    p.add_argument("names", metavar="NAME", nargs="*", default=[],
                   help=f"exercises to grade (default: all): {', '.join(EXERCISES)}")
    p.add_argument("--timeout", type=cli.positive_float, default=TIMEOUT, metavar="SECONDS",
                   help=f"the time one exercise's code may take in all (default: {TIMEOUT:g})")
    p.add_argument("--hint", type=int, choices=(1, 2, 3), default=0, metavar="1|2|3",
                   help="after the report of each exercise named, its hints up to this level: 1 "
                        "the shapes, 2 the idea, 3 the formula")
    from .capstone import COMPARE, RECIPES

    defaults = "; ".join(f"{name}: {r.limit_train:,} images, {r.epochs} epoch{'s' * (r.epochs > 1)}"
                         for name, r in RECIPES.items())
    p = sub.add_parser("train", help="the capstone: train a denoiser with your functions",
                       description="Train a denoiser with your functions inside the library's "
                                   "own layers: first the exercises the model uses must pass; "
                                   f"then its first {COMPARE} batches train in lockstep with "
                                   "the library's functions (the loss curves must agree to "
                                   "float32 rounding, or the first layer whose gradient differs "
                                   "is named), the rest with yours alone. Prints the test MSE "
                                   "against the noisy input, all black and the average image, "
                                   "and writes clean / noisy / denoised test images to "
                                   f"DIR/capstone-MODEL.png. Defaults: {defaults}. Exit status "
                                   "0 when the curves agree.")
    p.add_argument("dir", metavar="DIR", type=Path, help="the folder `new` wrote")
    p.add_argument("--model", choices=sorted(RECIPES), default="conv",
                   help="the reference autoencoder (conv, the default), the U-Net of chapter 7 "
                        "(batch norm, max pooling, the skip rules) or the dense autoencoder "
                        "(linear)")
    p.add_argument("--epochs", type=cli.positive_int, default=None, metavar="N",
                   help="epochs to train (default: the model's, above)")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, metavar="N",
                   help="MNIST training images to use (default: the model's, above)")
    p.add_argument("--limit-test", type=cli.positive_int, default=2000, metavar="N",
                   help="MNIST test images to score on (default: 2000)")
    p.add_argument("--figure", type=Path, default=None, metavar="PNG",
                   help="where to write the figure (default: DIR/capstone-MODEL.png)")
    p.add_argument("--every", type=cli.positive_int, default=4, metavar="N",
                   help="a row of the lockstep table every N batches (default: 4)")
    p.add_argument("--data-dir", default=None, metavar="FOLDER",
                   help="a folder holding mnist/, searched before $SCRATCHNET_DATA and the "
                        "usual places")
    p.add_argument("--download", action="store_true",
                   help="download MNIST when it is not found (default: do not)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with cli.raise_on_stop_signals():       # Ctrl-C, SIGTERM and SIGHUP: the lines below
            if args.command == "list":
                return _list()
            if args.command == "new":
                return _new(args.dir)
            if args.command == "check":
                return _check(args.dir, args.names, args.timeout, args.hint)
            return _train(args)
    except _UsageError as exc:
        print(f"{PROG} {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{PROG} {args.command}: {cli.stopped_by(getattr(exc, 'signum', None))}; nothing "
              "in your folder was changed", file=sys.stderr)
        return cli.exit_status(exc)
