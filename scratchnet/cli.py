"""What the command-line programs share: one-line usage errors, argument types, Ctrl-C.

Every program (``examples/*.py``, ``python -m scratchnet.data``, ``python -m scratchnet.learn``)
reports a bad command line in *one* line and exits 2, and ends on Ctrl-C with one line saying
what was kept and exit status 130, never with a traceback:

    parser = cli.ArgumentParser(description=...)
    with cli.interrupts_exit("nothing was written"):
        ...                                   # Ctrl-C here: that message, exit 130

SIGTERM (``kill PID``, a scheduler's pre-emption) and SIGHUP (the terminal was closed) take the
same path as Ctrl-C: inside the block they raise `Terminated`, a KeyboardInterrupt, so
every ``finally`` runs (no ``.part`` file is left) and the program ends in one line, with exit
status 128 + the signal's number (143 for SIGTERM, 129 for SIGHUP), as a shell reports it.

A script also covers its own start-up (the imports take about a second, before this module can
be imported) with two lines at its very top; see ``examples/train_denoiser.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import signal
import sys
from pathlib import Path
from typing import Callable, Iterator, NoReturn

__all__ = ["ArgumentParser", "OneDefaultFormatter", "positive_int", "non_negative_int", "non_negative_float",
           "positive_float", "sigma_value", "interrupts_exit", "remove_if_empty", "INTERRUPTED",
           "STOP_SIGNALS", "Terminated", "exit_status", "stopped_by", "raise_on_stop_signals"]

INTERRUPTED = 130                     # the shell's status for a program ended by SIGINT
# The signals that ask a program to stop: Ctrl-C, `kill PID` (or a scheduler), a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C raises KeyboardInterrupt.

    Attributes:
        signum: the signal's number.
        exit_status: 128 + signum, the status a shell reports for a process the signal ended.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message)
        self.signum, self.exit_status = signum, 128 + signum


def exit_status(exc: BaseException) -> int:
    """The exit status for a program ended by ``exc`` (130 for a plain Ctrl-C)."""
    return getattr(exc, "exit_status", INTERRUPTED)


def stopped_by(signum: int | None) -> str:
    """How a message names the stop: "interrupted" (Ctrl-C), "terminated by SIGTERM", ..."""
    if signum in (None, signal.SIGINT):
        return "interrupted"
    return f"terminated by {signal.Signals(signum).name}"


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def raise_on_stop_signals() -> Iterator[None]:
    """Within the block Ctrl-C raises KeyboardInterrupt and SIGTERM/SIGHUP raise
    `Terminated` (Python's own SIGINT handler is reinstalled for the block, so this
    holds also inside a third-party import); the previous handlers come back after it."""
    previous = {s: signal.signal(s, signal.default_int_handler if s == signal.SIGINT
                                 else _raise_terminated) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with a one-line error: ``prog: error: <message> (see --help)``, and a
    suggestion for a mistyped option (``--epocs``: did you mean ``--epochs``?).

    argparse prints its whole usage block (10-15 lines for these programs) before the error;
    the one line that matters was easy to miss under it.
    """

    def error(self, message: str) -> NoReturn:
        hint = self._did_you_mean(message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")

    def _option_strings(self) -> list[str]:
        """Every option of this parser and of its subcommands."""
        names = list(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    names += list(sub._option_string_actions)
        return names

    def _did_you_mean(self, message: str) -> str:
        if not message.startswith("unrecognized arguments: "):
            return ""
        known = [n for n in self._option_strings() if n.startswith("--")]
        hints = []
        for word in message.split(": ", 1)[1].split():
            option = word.split("=", 1)[0]
            if not option.startswith("--") or option in known:
                continue
            close = difflib.get_close_matches(option.replace("_", "-"), known, n=1, cutoff=0.7)
            if close:
                hints.append(close[0])
        return f" (did you mean {' and '.join(hints)}?)" if hints else ""


class OneDefaultFormatter(argparse.ArgumentDefaultsHelpFormatter,
                          argparse.RawDescriptionHelpFormatter):
    """Shows each option's real default once: not for flags, required options, or where the
    help text names it already. The description and epilog keep their own lines (examples)."""

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


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
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
    """Ctrl-C, SIGTERM or SIGHUP inside the block: run ``cleanup``, print ``interrupted;
    <kept>`` (``terminated by SIGTERM; <kept>``, ...) and exit 130 (143, 129), or print the
    interrupt's own message when it carries one.

    Args:
        kept: what the user keeps (e.g. "nothing was written"), or a function returning it
            at the moment of the interrupt.
        cleanup: e.g. removing an output folder that is still empty.

    See `raise_on_stop_signals` for where the signals are raised.
    """
    try:
        with raise_on_stop_signals():
            yield
    except KeyboardInterrupt as exc:
        for s in STOP_SIGNALS:                    # a second signal cannot cut this short
            signal.signal(s, signal.SIG_IGN)
        if cleanup is not None:
            cleanup()
        # An interrupt that carries its own account (training's checkpoint note) is printed as is.
        line = str(exc) or (f"{stopped_by(getattr(exc, 'signum', None))}; "
                            f"{kept() if callable(kept) else kept}")
        try:
            print(line, file=sys.stderr)
        except OSError:                           # SIGHUP: the terminal may be gone
            pass
        sys.exit(exit_status(exc))


def remove_if_empty(folder: str | Path) -> None:
    """Remove ``folder`` if it exists and holds nothing (a run that never wrote anything)."""
    try:
        Path(folder).rmdir()                  # fails, harmlessly, unless the folder is empty
    except OSError:
        pass
