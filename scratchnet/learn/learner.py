"""The learner's code: imported from their folder, and run in a process of its own.

`LearnerProcess` starts a child process that imports one exercise's file from the learner's
folder and runs its functions on the arguments the grader sends (the 'forkserver' start method
where there is one, with the library imported once, so a child costs milliseconds; else
'spawn'). Everything else stays in the grader's process, out of the learner's code's reach: the
expected values, the library's layers and `scratchnet.gradcheck` (which call the learner's
functions through `learner_overrides`, each call a round trip), and the comparison. What comes
back is numbers only (arrays, scalars, strings, tuples and lists of them; any other object as
its type's name), read by an unpickler that builds nothing else. A function argument (the
U-Net's ``stage``) stays here: the learner's code gets a stand-in that asks for its call,
which runs here on the numbers sent, and gets back its result, or its exception as a
RuntimeError. An exit, a crash, a hang past the time
limit or any exception of the learner's code ends in a `LearnerEnded` or `LearnerRaised` whose
lines say what happened; the child ignores Ctrl-C, which is the grader's to handle.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import multiprocessing
import pickle
import signal
import sys
import threading
import time
import traceback
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import cli, ops

__all__ = ["LearnerProcess", "LearnerCodeError", "LearnerRaised", "LearnerEnded", "TIMEOUT",
           "run_apart", "learner_code", "load_functions", "describe_exception", "quiet"]

TIMEOUT = 60.0                  # seconds per exercise, by default


class LearnerCodeError(Exception):
    """The learner's file cannot be used (missing, does not import, lacks a function, or its
    function is the library's own)."""

    def __init__(self, lines: list[str], not_written: bool = False):
        super().__init__(lines[0])
        self.lines, self.not_written = lines, not_written


class LearnerRaised(Exception):
    """The learner's function raised: ``lines`` describe it; ``stub`` names the learner's
    function when it is the stub's own NotImplementedError (not written yet), with its hint."""

    def __init__(self, lines: list[str], stub: str | None = None, hint: str = ""):
        super().__init__(lines[0])
        self.lines, self.stub, self.hint = lines, stub, hint


class LearnerEnded(Exception):
    """The learner's process ended, crashed or ran past the time limit (the message says which)."""


# --- loading the learner's code ------------------------------------------------------------
def _inside(filename: str, folder: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def learner_code(directory: Path) -> Iterator[None]:
    """Make the learner's folder importable (``from col2im import col2im``) while inside, and
    forget the modules imported from it afterwards, so that a later run reads fresh files.
    No bytecode is written there: the folder holds the learner's files only."""
    folder = str(Path(directory).resolve())
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True             # leave no __pycache__ in the learner's folder
    try:
        yield
    finally:
        sys.dont_write_bytecode = bytecode
        if added and folder in sys.path:
            sys.path.remove(folder)
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path and _inside(path, Path(folder)):
                del sys.modules[name]


def _at(where: str, line: str | None) -> str:
    line = (line or "").strip()
    return f"  at {where}" + (f":  {line}" if line else "")


def describe_exception(exc: BaseException, directory: Path) -> list[str]:
    """An exception, as lines that point at the learner's own code (never the grader's)."""
    folder = Path(directory).resolve()
    if isinstance(exc, SyntaxError) and exc.filename and _inside(exc.filename, folder):
        return [f"your code has a SyntaxError: {exc.msg}",
                _at(f"{exc.filename}, line {exc.lineno}", exc.text)]
    message = str(exc).strip().splitlines()
    head = f"your code raised {type(exc).__name__}" + (f": {message[0]}" if message else "")
    if isinstance(exc, SystemExit):
        head = f"your code called sys.exit({exc.code!r}): an answer returns, it does not exit"
    elif isinstance(exc, MemoryError):
        head = "your code ran out of memory (" + (f"MemoryError: {message[0]}" if message
                                                  else "MemoryError") + ")"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, folder)]
    if not frames:
        return [head]
    f = frames[-1]
    return [head, _at(f"{f.filename}, line {f.lineno}, in {f.name}", f.line)]


@functools.cache
def _library() -> dict[str, tuple[Any, Any]]:
    """Op name -> (the op, its body), taken before any learner code runs."""
    return {name: (op, ops.reference(name)) for name, op in ops.OPS.items()}


def library_own(fn: Any) -> str | None:
    """The name of the library's op whose own function ``fn`` is (imported or re-exported from
    the library, or a new function made of the library's code object), else None."""
    try:
        inner = inspect.unwrap(fn)
    except ValueError:
        inner = fn
    code = getattr(inner, "__code__", None)
    return next((name for name, (op, own) in _library().items()
                 if fn is op or inner is own or (code is not None and code is own.__code__)), None)


def load_functions(directory: Path, exercise: Any) -> dict[str, Callable[..., Any]]:
    """Import the learner's file for ``exercise`` afresh and return its functions by name.

    Raises:
        LearnerCodeError: the file is missing, does not import, lacks a function, or one of
            its functions is the library's own.
    """
    path = Path(directory) / exercise.file
    if not path.is_file():
        raise LearnerCodeError([f"{path} does not exist (`python -m scratchnet.learn new "
                                "OTHER_DIR` writes a fresh copy of every stub)"])
    name = f"scratchnet_learner_{exercise.name}"
    _library()
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except NotImplementedError as exc:
        raise LearnerCodeError([f"not written yet: importing {path} raised NotImplementedError"
                                + (f" ({exc})" if str(exc) else "")], not_written=True) from None
    except BaseException as exc:                        # noqa: BLE001 (any learner error, exits too)
        raise LearnerCodeError(describe_exception(exc, directory)) from None
    finally:
        sys.modules.pop(name, None)
    fns = {}
    for sig in exercise.signatures:
        fn = getattr(module, sig.name, None)
        if not callable(fn):
            raise LearnerCodeError([f"{path} defines no function {sig.name}; expected "
                                    f"{sig.text}"])
        own = library_own(fn)
        if own is not None:
            raise LearnerCodeError([f"{sig.name} in {path} is the library's own {own} "
                                    f"({getattr(fn, '__module__', 'scratchnet')}), not yours: "
                                    "write your own"])
        fns[sig.name] = fn
    return fns


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """NumPy warnings from a learner's code would interleave with the report; a NaN or inf
    they announce shows up in the comparison instead."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _raising_function(exc: BaseException, directory: Path) -> str | None:
    """The learner's function the exception was raised in, when the raise itself is in the
    learner's folder (the stub's own NotImplementedError), or None."""
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    return last[0].name if last and _inside(last[0].filename, Path(directory).resolve()) else None


# --- what crosses between the processes -----------------------------------------------------
class Foreign:
    """What the learner's function returned that is not numbers, as a description."""

    def __init__(self, described: str):
        self.described = described

    def __reduce__(self) -> tuple[Any, ...]:
        return Foreign, (str(self.described),)


def _numbers(value: Any, depth: int = 0) -> Any:
    """``value`` with everything but numbers replaced by a `Foreign` description."""
    if value is None or type(value) in (bool, int, float, complex, str):
        return value
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        return type(value).__mro__[-2](value)        # a subclass of int or float: the number
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind in "biufc" and not value.dtype.fields:
            return np.array(value, subok=False) if isinstance(value, np.ndarray) else value
        return Foreign(f"an array of dtype {value.dtype}")
    if isinstance(value, (tuple, list)) and depth < 4:
        return type(value).__mro__[-2](_numbers(v, depth + 1) for v in value)
    return Foreign(f"a {type(value).__name__}")


_ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
            for n in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype"),
                                                      (__name__, "Foreign")}


class _Numbers(pickle.Unpickler):
    """Unpickles numbers, arrays, containers and `Foreign`, and refuses any other class."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a number")


@dataclass(frozen=True)
class _Callback:
    """In a call sent to the child: the grader's function argument number ``index``."""
    index: int


def _callback(conn: Any, index: int) -> Callable[..., Any]:
    """The child's stand-in for the grader's function argument ``index``."""
    def call(*args: Any) -> Any:
        conn.send_bytes(pickle.dumps(("call", index, _numbers(args))))
        kind, value = pickle.loads(conn.recv_bytes())
        if kind == "raised":
            raise RuntimeError(value)
        return value
    return call


def _serve(conn: Any, folder: str, name: str, seconds: float) -> None:
    """The child: import the exercise's file, then run its functions on what it is sent (and
    end quietly when the grader is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C: the grader's, not the child's
    if hasattr(signal, "SIGALRM"):                      # an orphaned child still ends
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(seconds) + 30)
    from .exercises import EXERCISES

    def reply(*message: Any) -> None:
        conn.send_bytes(pickle.dumps(message))

    directory = Path(folder)
    with learner_code(directory), contextlib.suppress(OSError, EOFError):
        try:
            fns = load_functions(directory, EXERCISES[name])
        except LearnerCodeError as exc:
            return reply("error", exc.lines, exc.not_written)
        reply("ready", sorted(n for n, m in sys.modules.items()      # the learner's own modules
                              if _inside(getattr(m, "__file__", None) or "", directory)))
        while True:
            fn, args = pickle.loads(conn.recv_bytes())
            args = tuple(_callback(conn, a.index) if isinstance(a, _Callback) else a for a in args)
            before = [np.array(a) if isinstance(a, np.ndarray) else None for a in args]
            try:
                with quiet():
                    value = fns[fn](*args)
                changed = {i: np.array(a, subok=False) for i, (a, b) in enumerate(zip(args, before))
                           if b is not None and not (a.shape == b.shape and
                                                     np.array_equal(a, b, equal_nan=True))}
                reply("ok", _numbers(value), changed)
            except BaseException as exc:                # noqa: BLE001 (exits and Ctrl-C too)
                stub = (_raising_function(exc, directory)
                        if type(exc) is NotImplementedError else None)
                reply("raised", describe_exception(exc, directory), stub, str(exc))


@contextlib.contextmanager
def _deaf() -> Iterator[None]:
    """Ctrl-C ignored while a helper process is launched: it inherits that (Python then installs
    no handler), so a Ctrl-C in its first moments, inside its imports, prints no traceback."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, saved)


@contextlib.contextmanager
def _no_main() -> Iterator[None]:
    """Hide the main module while a child is started: multiprocessing would run the parent's
    script (a learner's own `grade(...)` script, say) again in the child, which needs none of it."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _context() -> Any:
    """The forkserver (running, the library imported) where there is one, else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "scratchnet.learn.exercises"])
    with _deaf():
        forkserver.ensure_running()
    return context


def _start(target: Callable[..., None], *args: Any, duplex: bool = True, daemon: bool = False
           ) -> tuple[Any, Any]:
    """A child process running ``target(its end of a pipe, *args)``, and this end."""
    context = _context()
    conn, child = context.Pipe(duplex)
    process = context.Process(target=target, args=(child, *args), daemon=daemon)
    try:
        with _deaf() if context.get_start_method() == "spawn" else contextlib.nullcontext(), \
                _no_main():
            process.start()
    finally:
        child.close()
    return process, conn


def _ended(process: Any) -> LearnerEnded:
    """How a child that should have answered ended, in one line."""
    process.join(5)
    code = process.exitcode
    if process.is_alive():
        process.kill()
        process.join(5)
    if code is not None and code < 0:
        sig = signal.Signals(-code).name
        why = {"SIGSEGV": ": a segmentation fault", "SIGKILL": ": out of memory?",
               "SIGALRM": ": out of time"}.get(sig, "")
        return LearnerEnded(f"your code crashed the process it ran in ({sig}{why})")
    return LearnerEnded(f"your code ended the process it ran in (exit status {code}; "
                        "os._exit?) before it returned")


def _stop(process: Any, conn: Any) -> None:
    """Kill the child if it still runs, and close this end of its pipe."""
    if process.is_alive():
        process.kill()
    process.join(5)
    conn.close()


def _status(conn: Any, fn: Callable[..., int], args: tuple[Any, ...]) -> None:
    """The child of `run_apart`: Ctrl-C, SIGTERM and SIGHUP raise `cli.Terminated`, so that
    ``fn`` can tell them from a KeyboardInterrupt its callees raise; the status goes back."""
    def stop(signum: int, frame: Any) -> None:
        raise cli.Terminated(signum)

    for s in cli.STOP_SIGNALS:
        signal.signal(s, stop)
    try:
        status: Any = fn(*args)
    except cli.Terminated as exc:
        status = ("stopped", exc.signum)
    with contextlib.suppress(OSError):
        conn.send(status)


def run_apart(fn: Callable[..., int], *args: Any) -> int:
    """``fn(*args)``, which returns an exit status, in a child process (its output goes where
    this process's goes). A stop signal there is this process's too: it waits for the child to
    finish it (a minute at most), then raises KeyboardInterrupt.

    Raises:
        LearnerEnded: the child exited or crashed before ``fn`` returned.
    """
    process, conn = _start(_status, fn, args, duplex=False)
    try:
        status = conn.recv()
    except EOFError:
        raise _ended(process) from None
    except KeyboardInterrupt:                           # the child's too, or else told now
        process.join(2)
        if process.is_alive():
            process.terminate()
        process.join(60)
        raise
    finally:
        _stop(process, conn)
    if isinstance(status, tuple):                       # stopped there, as here
        raise cli.Terminated(status[1]) if status[1] != signal.SIGINT else KeyboardInterrupt()
    return int(status)


class LearnerProcess:
    """One exercise's functions, run in a child process, under one time limit for them all.

    ``functions`` holds, per function of the exercise, a stand-in that sends its arguments to
    the child and returns what the learner's function returned (arrays it changed in place
    are changed in place here too).

    Raises:
        LearnerCodeError: from the start, when the file cannot be used.
        LearnerRaised: from a stand-in, when the learner's function raised.
        LearnerEnded: from the start or a stand-in, when the child exited, crashed or ran past
            ``timeout`` seconds (counted from the start).
    """

    def __init__(self, directory: Path, exercise: Any, timeout: float = TIMEOUT):
        self.timeout, self.deadline = timeout, time.monotonic() + timeout
        self.process, self.conn = _start(_serve, str(Path(directory).resolve()), exercise.name,
                                         timeout, daemon=True)
        try:
            reply = self._receive()
        except BaseException:
            self.close()
            raise
        if reply[0] == "error":
            self.close()
            raise LearnerCodeError(reply[1], reply[2])
        self.imports: list[str] = list(reply[1])      # modules of the learner's folder it imported
        self.functions = {s.name: self._stand_in(s.name) for s in exercise.signatures}

    def _stand_in(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            functions = [a for a in args if callable(a)]
            sent = tuple(_Callback(functions.index(a)) if callable(a) else a for a in args)
            self._send((name, sent))
            reply = self._receive()
            while reply[0] == "call":                   # the learner's code calls a function
                reply = self._answer(functions[reply[1]], reply[2])
            if reply[0] == "raised":
                raise LearnerRaised(*reply[1:])
            _, value, changed = reply
            for i, a in changed.items():
                if isinstance(args[i], np.ndarray) and args[i].flags.writeable and \
                        getattr(a, "shape", None) == args[i].shape:
                    args[i][...] = a
            return value
        call.__name__ = name
        return call

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(message))
        except OSError:
            raise self._ended() from None

    def _answer(self, fn: Callable[..., Any], args: Any) -> tuple[Any, ...]:
        """Run the grader's function the learner's code called, send back its result (or its
        exception, in one line) and return the next reply."""
        try:
            answer: tuple[Any, ...] = ("ok", fn(*args))
        except (LearnerRaised, LearnerEnded):       # another exercise's code, in its process
            self.close()
            raise
        except Exception as exc:                    # noqa: BLE001 (raised in the learner's call)
            line = (str(exc).splitlines() or [""])[0]
            answer = ("raised", line if type(exc) is RuntimeError else f"{type(exc).__name__}: {line}")
        self._send(answer)
        return self._receive()

    def _receive(self) -> tuple[Any, ...]:
        try:
            if not self.conn.poll(max(0.0, self.deadline - time.monotonic())):
                self.close()
                raise LearnerEnded(f"your code did not finish within {self.timeout:g} s (an "
                                   "endless loop?) and was stopped; --timeout SECONDS allows more")
            reply = _Numbers(io.BytesIO(self.conn.recv_bytes())).load()
        except (EOFError, OSError):
            raise self._ended() from None
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError):
            self.close()
            raise LearnerEnded("your code's process sent back something that is not numbers"
                               ) from None
        return reply if isinstance(reply, tuple) and reply else ("ok", None, {})

    def _ended(self) -> LearnerEnded:
        ended = _ended(self.process)
        self.close()
        return ended

    def close(self) -> None:
        """Stop the child (at once: it holds nothing of the learner's to save)."""
        _stop(self.process, self.conn)

    def __enter__(self) -> "LearnerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
