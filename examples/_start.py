"""The example programs' first lines, run before any library loads (``import _start``).

* Ctrl-C (SIGTERM, SIGHUP) while NumPy, Matplotlib and scikit-image load (a second or more):
  one line, ``interrupted while starting; nothing was written``, exit 130 (143, 129), no
  traceback from inside someone else's import. Once a program's own code runs, ``scratchnet.cli.interrupts_exit``
  takes over.
* A Python that does not have the project installed (its environment not active): one line
  that says what to do, not a ``ModuleNotFoundError`` traceback.
"""
import os
import signal
import sys

_NAMES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated by SIGTERM",
          signal.SIGHUP: "terminated by SIGHUP"}


def _exit(signum: int, frame: object) -> None:
    try:
        sys.stderr.write(f"{_NAMES[signum]} while starting; nothing was written\n")
    finally:
        os._exit(128 + signum)


for _signum in _NAMES:
    signal.signal(_signum, _exit)

try:
    import scratchnet  # noqa: F401   (first: the project itself, then what it needs)
    import numpy  # noqa: F401
except ModuleNotFoundError as exc:
    sys.exit(f"error: cannot import {exc.name!r}: this Python ({sys.executable}) does not have "
             "the project installed; activate its environment (. .venv/bin/activate) or "
             "install it from the repository's folder: pip install -e .")
