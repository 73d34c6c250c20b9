"""A program's first line of defence: a stop signal while the libraries load ends it in one line.

Importing NumPy, Matplotlib and scikit-image takes a second or more, and a Ctrl-C (or SIGTERM,
SIGHUP) in that time would print a traceback from inside someone else's import. ``guard()``
makes such a signal print ``interrupted while starting; nothing was written`` and end the
process with 128 + the signal's number. Once a program's own code runs, ``cli.interrupts_exit``
takes over.

Only the C part of the signal module is used (``_signal``, built into the interpreter): the
pure-Python ``signal`` module takes milliseconds to import, a window in which the signal would
still arrive first.
"""
import os
import sys

import _signal

_NAMES = {_signal.SIGINT: "interrupted", _signal.SIGTERM: "terminated by SIGTERM",
          _signal.SIGHUP: "terminated by SIGHUP"}


def _exit(signum: int, frame: object) -> None:
    try:
        sys.stderr.write(f"{_NAMES[signum]} while starting; nothing was written\n")
    except OSError:
        pass
    os._exit(128 + signum)


def guard() -> None:
    """Install the one-line exit for SIGINT, SIGTERM and SIGHUP."""
    for signum in _NAMES:
        _signal.signal(signum, _exit)
