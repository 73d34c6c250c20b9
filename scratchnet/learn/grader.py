"""Grade a learner's folder: load their files, run every configuration, report per tensor.

For each exercise and each configuration (`scratchnet.learn.exercises`) the learner's
function runs on copies of float64 inputs; every tensor it returns is compared with the
library's own answer (`scratchnet.learn.diagnose.compare`), and the library's own layer, with
the learner's function in place of the op (``scratchnet.override``), goes through
``scratchnet.gradcheck`` with a random upstream gradient. An exception in the learner's code
is reported at the learner's own file and line.
"""
from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
import textwrap
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..gradcheck import GradcheckError, GradcheckReport, gradcheck
from .diagnose import NO_PATTERN, Comparison, compare
from .exercises import EXERCISES, Case, Exercise, StructureError, learner_overrides

__all__ = ["ExerciseResult", "GradcheckOutcome", "grade", "grade_exercise", "load_functions",
           "learner_code", "LearnerCodeError", "format_result", "format_summary",
           "describe_exception"]

PASS, FAIL, NOT_WRITTEN = "pass", "FAIL", "not written yet"


class LearnerCodeError(Exception):
    """The learner's file cannot be used (missing, does not import, lacks a function)."""

    def __init__(self, lines: list[str], not_written: bool = False):
        super().__init__(lines[0])
        self.lines, self.not_written = lines, not_written


@dataclass
class ExerciseResult:
    """The outcome of one exercise: its status and the report lines below its header."""
    exercise: Exercise
    path: Path
    status: str = PASS
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASS


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


def describe_exception(exc: BaseException, directory: Path) -> list[str]:
    """An exception, as lines that point at the learner's own code (never the grader's)."""
    folder = Path(directory).resolve()
    if isinstance(exc, SyntaxError) and exc.filename and _inside(exc.filename, folder):
        where = f"{exc.filename}, line {exc.lineno}"
        text = (exc.text or "").strip()
        return [f"your code has a SyntaxError: {exc.msg}", f"  at {where}"
                + (f":  {text}" if text else "")]
    message = str(exc).strip().splitlines()
    head = f"your code raised {type(exc).__name__}" + (f": {message[0]}" if message else "")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, folder)]
    if not frames:
        return [head]
    f = frames[-1]
    line = (f.line or "").strip()
    where = f"  at {f.filename}, line {f.lineno}, in {f.name}"
    return [head, where + (f":  {line}" if line else "")]


def load_functions(directory: Path, exercise: Exercise) -> dict[str, Callable[..., Any]]:
    """Import the learner's file for ``exercise`` afresh and return its functions by name.

    Raises:
        LearnerCodeError: the file is missing, does not import, or lacks a function.
    """
    path = Path(directory) / exercise.file
    if not path.is_file():
        raise LearnerCodeError([f"{path} does not exist (`python -m scratchnet.learn new "
                                "OTHER_DIR` writes a fresh copy of every stub)"])
    name = f"scratchnet_learner_{exercise.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except NotImplementedError as exc:
        raise LearnerCodeError([f"not written yet: importing {path} raised NotImplementedError"
                                + (f" ({exc})" if str(exc) else "")], not_written=True) from None
    except Exception as exc:                            # noqa: BLE001 (any learner error)
        raise LearnerCodeError(describe_exception(exc, directory)) from None
    finally:
        sys.modules.pop(name, None)
    fns = {}
    for sig in exercise.signatures:
        fn = getattr(module, sig.name, None)
        if not callable(fn):
            raise LearnerCodeError([f"{path} defines no function {sig.name}; expected "
                                    f"{sig.text}"])
        fns[sig.name] = fn
    return fns


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NumPy warnings from a learner's code would interleave with the report; a NaN or inf
    they announce shows up in the comparison instead."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- grading -------------------------------------------------------------------------------
@dataclass
class GradcheckOutcome:
    """The gradient check of one configuration.

    Attributes:
        ran: whether it ran (it does not when a returned tensor has the wrong shape or type).
        report: gradcheck's report, when it ran to the end.
        failure: why it failed without a report (a wrong result inside the layer), or why it
            did not run.
    """
    ran: bool
    report: GradcheckReport | None = None
    failure: str = ""

    @property
    def passed(self) -> bool:
        return not self.ran or (self.report is not None and self.report.passed)


@dataclass
class _CaseOutcome:
    case: Case
    comparisons: list[Comparison]
    changed: list[str]
    gradcheck: GradcheckOutcome | None = None        # None: the exercise has no gradient check

    @property
    def passed(self) -> bool:
        return (all(c.passed for c in self.comparisons) and not self.changed
                and (self.gradcheck is None or self.gradcheck.passed))


def grade_exercise(exercise: Exercise, directory: Path) -> ExerciseResult:
    """Grade one exercise of the learner's folder ``directory``."""
    t0 = time.perf_counter()
    result = ExerciseResult(exercise, Path(directory) / exercise.file)
    outcomes: list[_CaseOutcome] = []
    with learner_code(directory):
        try:
            fns = load_functions(directory, exercise)
        except LearnerCodeError as exc:
            result.status, result.lines = NOT_WRITTEN if exc.not_written else FAIL, exc.lines
        else:
            if not any(_run_case(exercise, case, fns, directory, result, outcomes)
                       for case in exercise.cases()):
                result.lines = _report(exercise, outcomes)
                result.status = PASS if all(o.passed for o in outcomes) else FAIL
    result.seconds = time.perf_counter() - t0
    return result


def _run_case(exercise: Exercise, case: Case, fns: dict[str, Callable[..., Any]],
              directory: Path, result: ExerciseResult, outcomes: list[_CaseOutcome]) -> bool:
    """Run one configuration; True when grading must stop (not written, an exception)."""
    def stop(status: str, lines: list[str], where: str = "in configuration") -> bool:
        result.status, result.lines = status, lines + [f"  {where}: {case.describe}"]
        return True

    try:
        with _quiet():
            outputs, changed = exercise.run(fns, case)
    except NotImplementedError as exc:
        name = _raising_function(exc, directory, last=True)
        if name is not None:                   # raised by the stub itself: not written yet
            result.status = NOT_WRITTEN
            result.lines = [f"{name} still raises NotImplementedError"
                            + (f"; the stub's hint: {exc}" if str(exc) else "")]
            return True
        return stop(FAIL, describe_exception(exc, directory))
    except StructureError as exc:
        return stop(FAIL, [str(exc)])
    except Exception as exc:                            # noqa: BLE001 (any learner error)
        return stop(FAIL, describe_exception(exc, directory))
    comparisons = [compare(name, outputs.get(name), expected, case.contexts.get(name))
                   for name, expected in case.expected.items()]
    outcome = _CaseOutcome(case, comparisons, changed)
    outcomes.append(outcome)
    if exercise.layer is None:
        return False
    if any(c.problem for c in comparisons):
        outcome.gradcheck = GradcheckOutcome(
            False, failure="not run: a tensor above has the wrong shape or type")
        return False
    try:
        with _quiet(), learner_overrides([exercise], fns):
            module, inputs = exercise.gradcheck_module(case)
            outcome.gradcheck = GradcheckOutcome(True, gradcheck(
                module, *inputs, raise_exception=False, **exercise.gradcheck))
    except (StructureError, GradcheckError) as exc:
        outcome.gradcheck = GradcheckOutcome(True, failure=f"failed: {str(exc).splitlines()[0]}")
    except Exception as exc:                            # noqa: BLE001 (any learner error)
        return stop(FAIL, describe_exception(exc, directory),
                    "while the layer ran under gradcheck, in configuration")
    return False


def _raising_function(exc: BaseException, directory: Path, last: bool = False) -> str | None:
    """The learner's function the exception came from (with ``last``: only when the raise
    itself is in the learner's folder), or None."""
    folder = Path(directory).resolve()
    frames = traceback.extract_tb(exc.__traceback__)
    if last:
        frames = frames[-1:]
    frames = [f for f in frames if _inside(f.filename, folder)]
    return frames[-1].name if frames else None


def grade(directory: Path, names: Iterable[str] | None = None) -> list[ExerciseResult]:
    """Grade the named exercises (all when ``names`` is None) of the folder ``directory``."""
    chosen = list(names) if names else list(EXERCISES)
    return [grade_exercise(EXERCISES[n], Path(directory)) for n in chosen]


# --- the report ----------------------------------------------------------------------------
def _v(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _index(index: tuple[int, ...] | None) -> str:
    return "()" if not index else "(" + ", ".join(map(str, index)) + ")"


WIDTH = 120                     # report lines are wrapped at this many characters
_LABEL, _STATUS = 13, 6         # column widths: tensor name, pass/FAIL
_PAD = " " * (2 + _LABEL + _STATUS)


def _row(label: str, status: str, text: str) -> list[str]:
    """``  label  status  text``, wrapped below the text column."""
    return textwrap.wrap(text, WIDTH, initial_indent=f"  {label:<{_LABEL}}{status:<{_STATUS}}",
                         subsequent_indent=_PAD, break_on_hyphens=False) or [f"  {label}"]


def _more(text: str, hang: str = "") -> list[str]:
    """A further line of the row above, wrapped (continuations indented by ``hang``)."""
    return textwrap.wrap(text, WIDTH, initial_indent=_PAD, subsequent_indent=_PAD + hang,
                         break_on_hyphens=False)


def _report(exercise: Exercise, outcomes: list[_CaseOutcome]) -> list[str]:
    lines: list[str] = []
    names = list(outcomes[0].case.expected) if outcomes else []
    for name in names:
        rows = [(o.case, c) for o in outcomes for c in o.comparisons if c.name == name]
        failing = [(case, c) for case, c in rows if not c.passed]
        if not failing:
            case, worst = max(rows, key=lambda r: r[1].scaled)
            where = ("" if worst.index is None else
                     f"; worst entry {_index(worst.index)}: yours {_v(worst.yours, 8)}, "
                     f"expected {_v(worst.expected, 8)} (difference {worst.difference:.1e})")
            lines += _row(name, "pass", f"{len(rows)} configurations{where}")
            continue
        case, first = failing[0]
        lines += _row(name, "FAIL", f"in {len(failing)} of {len(rows)} configurations; the "
                                    f"first: {case.describe}")
        if first.problem:
            lines += _more(f"{name} {first.problem}")
        else:
            lines += _more(f"worst entry {_index(first.index)}: yours {_v(first.yours, 6)}, "
                           f"expected {_v(first.expected, 6)} ({first.wrong} of {first.total} "
                           "entries wrong)")
        for d in _common_diagnoses([c.diagnoses for _, c in failing]):
            lines += _more(f"diagnosis: {d}", hang="  ")
    changed = sorted({a for o in outcomes for a in o.changed})
    if changed:
        lines += _row("inputs", "FAIL", f"{' / '.join(exercise.functions)} changed its "
                      f"argument(s) {', '.join(changed)} in place; return new arrays instead "
                      "(the caller may still need them)")
    lines += _gradcheck_lines(exercise, outcomes)
    lines += _pattern_lines(exercise, outcomes)
    return lines


def _common_diagnoses(per_config: list[list[str]], most: int = 2) -> list[str]:
    """The diagnoses of the failing configurations, one per kind, the most frequent first.

    The same mistake reads "96 times ... = M" in one configuration and "21 times ... = M" in
    another: diagnoses are grouped by their wording up to the first ';' with the numbers left
    out, and each group is shown once, worded as in its first configuration."""
    groups: dict[str, list[str]] = {}
    for diagnoses in per_config:
        for d in diagnoses[:1]:
            key = re.sub(r"[-+]?\d[\d.e+-]*", "#", d.split(";")[0])
            groups.setdefault(key, []).append(d)
    ranked = sorted(groups.values(), key=len, reverse=True)
    if len(ranked) > 1:                        # a recognised pattern says more than none
        ranked = [texts for texts in ranked if texts[0] != NO_PATTERN]
    out = []
    for texts in ranked[:most]:
        text = texts[0]                        # in the order of the configurations
        if len(texts) < len(per_config):
            text += f" (in {len(texts)} of {len(per_config)} failing configurations)"
        out.append(text)
    return out


def _gradcheck_lines(exercise: Exercise, outcomes: list[_CaseOutcome]) -> list[str]:
    checks = [o.gradcheck for o in outcomes if o.gradcheck is not None]
    runs = [(o.case, o.gradcheck) for o in outcomes if o.gradcheck is not None and o.gradcheck.ran]
    skipped = [g for g in checks if not g.ran]
    if not runs:
        if skipped:
            return _row("gradcheck", "-", skipped[0].failure)
        return _row("gradcheck", "-", f"not applicable; checked against {exercise.checked_by}")
    bad = [(case, g) for case, g in runs if not g.passed]
    if not bad:
        worst = max(g.report.max_rel_error for _, g in runs)
        return _row("gradcheck", "pass", f"{len(runs)} configurations (finite differences, "
                    f"random upstream gradient); worst relative error {worst:.1e}")
    case, g = bad[0]
    lines = _row("gradcheck", "FAIL", f"in {len(bad)} of {len(runs)} configurations"
                 + (f" (not run in {len(skipped)} more: a tensor has the wrong shape)"
                    if skipped else "") + f"; the first: {case.describe}")
    if g.report is None:
        return lines + _more(g.failure)
    for check in g.report.checks:
        if not check.passed:
            lines += _more(f"{check.name}: worst at {check.worst}, relative error "
                           f"{check.max_rel_error:.1e}")
    return lines


def _pattern_lines(exercise: Exercise, outcomes: list[_CaseOutcome]) -> list[str]:
    """Which feature separates the failing configurations from the passing ones."""
    failing = [o.case.features for o in outcomes if not o.passed]
    passing = [o.case.features for o in outcomes if o.passed]
    if not failing or not passing:
        return []
    for words, test, hint in exercise.conditions:
        if all(test(f) for f in failing) and not any(test(f) for f in passing):
            return _row("pattern", "", f"fails exactly in the configurations with {words} (and "
                                       f"passes the others): {hint}")
    return []


def format_result(result: ExerciseResult) -> str:
    """The report of one exercise: a header line, then one line per tensor and check."""
    ex = result.exercise
    head = (f"{ex.name}: {result.status}  ({', '.join(ex.functions)} in {result.path}; "
            f"explained in {ex.chapter})")
    body = result.lines if result.status != NOT_WRITTEN else ["  " + line for line in result.lines]
    if result.status == FAIL and result.lines and not result.lines[0].startswith("  "):
        body = ["  " + line for line in result.lines]
    return "\n".join([head, *body])


def format_summary(results: list[ExerciseResult]) -> str:
    """One line: how many exercises pass, fail, and are not written yet."""
    n = len(results)
    passed = sum(r.status == PASS for r in results)
    failed = sum(r.status == FAIL for r in results)
    todo = sum(r.status == NOT_WRITTEN for r in results)
    seconds = sum(r.seconds for r in results)
    parts = [f"{passed} of {n} exercise{'s' if n != 1 else ''} pass"]
    if failed:
        parts.append(f"{failed} fail{'s' if failed == 1 else ''}")
    if todo:
        parts.append(f"{todo} not written yet")
    return ", ".join(parts) + f" ({seconds:.1f} s)"

