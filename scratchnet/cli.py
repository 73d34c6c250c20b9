"""What the command-line programs share: one-line usage errors, argument types, Ctrl-C.

Every program (``examples/*.py``, ``python -m scratchnet.data``, ``python -m scratchnet.learn``)
reports a bad command line in *one* line and exits 2, and ends on Ctrl-C with one line saying
what was kept and exit status 130, never with a traceback:

    parser = cli.ArgumentParser(description=...)
    with cli.interrupts_exit("nothing was written"):
        ...                                   # Ctrl-C here: that message, exit 130

A script also covers its own start-up (the imports take about a second, before this module can
be imported) with two lines at its very top; see ``examples/train_denoiser.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path
from typing import Callable, Iterator, NoReturn

__all__ = ["ArgumentParser", "OneDefaultFormatter", "positive_int", "non_negative_float",
           "positive_float", "sigma_value", "interrupts_exit", "remove_if_empty", "INTERRUPTED"]

INTERRUPTED = 130                     # the shell's status for a program ended by SIGINT


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with a one-line error: ``prog: error: <message> (see --help)``.

    argparse prints its whole usage block (10-15 lines for these programs) before the error;
    the one line that matters was easy to miss under it.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class OneDefaultFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's real default once: not for flags, required options, or where the
    help text names it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if (action.default in (None, False) or action.required
                or "[default:" in (action.help or "") or "%(default)" in (action.help or "")):
            return action.help or ""
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = non_negative_float(text)
    except argparse.ArgumentTypeError:
        value = 0.0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def sigma_value(text: str) -> float:
    """argparse type: a noise sigma on the 0-255 scale of 8-bit images, in [0, 255]."""
    value = non_negative_float(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"expected a sigma in [0, 255] (the 0-255 scale of "
                                         f"8-bit images), got {text!r}")
    return value


@contextlib.contextmanager
def interrupts_exit(kept: str | Callable[[], str], cleanup: Callable[[], None] | None = None
                    ) -> Iterator[None]:
    """Ctrl-C inside the block: run ``cleanup``, print ``interrupted; <kept>`` and exit 130
    (or the interrupt's own message, when it carries one).

    Args:
        kept: what the user keeps (e.g. "nothing was written"), or a function returning it
            at the moment of the interrupt.
        cleanup: e.g. removing an output folder that is still empty.

    Python's own SIGINT handler is (re)installed for the block, so a Ctrl-C becomes a
    KeyboardInterrupt wherever the program is, also inside a third-party import.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)         # a second Ctrl-C cannot cut this short
        if cleanup is not None:
            cleanup()
        # An interrupt that carries its own account (training's checkpoint note) is printed as is.
        line = str(exc) or f"interrupted; {kept() if callable(kept) else kept}"
        print(line, file=sys.stderr)
        sys.exit(INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, previous)


def remove_if_empty(folder: str | Path) -> None:
    """Remove ``folder`` if it exists and holds nothing (a run that never wrote anything)."""
    try:
        Path(folder).rmdir()                  # fails, harmlessly, unless the folder is empty
    except OSError:
        pass
