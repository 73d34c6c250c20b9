"""Grade a learner's folder: run their code, every configuration, report per tensor.

For each exercise and each configuration (`scratchnet.learn.exercises`) the learner's
function runs on copies of float64 inputs; every tensor it returns is compared with the
library's own answer (`scratchnet.learn.diagnose.compare`), and the library's own layer, with
the learner's function in place of the op (``scratchnet.override``), goes through
``scratchnet.gradcheck`` with a random upstream gradient. The learner's functions run in a
child process with a time limit (`scratchnet.learn.learner`); the expected values, the layers,
the gradient check and the comparison run here, out of their reach. An exception in the
learner's code is reported at the learner's own file and line, and the other configurations
are graded all the same; an exit, a crash or a hang ends that exercise in one line.
"""
from __future__ import annotations

import re
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..gradcheck import GradcheckError, GradcheckReport, gradcheck
from .diagnose import NO_PATTERN, Comparison, compare, format_index
from .exercises import EXERCISES, HINT_LEVELS, Case, Exercise, StructureError, learner_overrides
from .learner import (TIMEOUT, LearnerCodeError, LearnerEnded, LearnerProcess, LearnerRaised,
                      describe_exception, learner_code, load_functions, quiet)

__all__ = ["ExerciseResult", "grade", "grade_exercise", "format_result", "format_summary",
           "load_functions", "learner_code", "LearnerCodeError", "describe_exception"]

PASS, FAIL, NOT_WRITTEN = "pass", "FAIL", "not written yet"


@dataclass
class ExerciseResult:
    """The outcome of one exercise: its status and the report lines below its header."""
    exercise: Exercise
    path: Path
    status: str = PASS
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""              # a one-line reason, where it is one (the library's own function)

    @property
    def passed(self) -> bool:
        return self.status == PASS


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


def grade_exercise(exercise: Exercise, directory: Path, timeout: float = TIMEOUT,
                   graded: dict[str, ExerciseResult] | None = None) -> ExerciseResult:
    """Grade one exercise of the learner's folder ``directory``, its code in a child process
    that may take ``timeout`` seconds in all. An exercise whose file imports another one's
    (``from col2im import col2im``) fails while that one fails; ``graded`` keeps the results
    of those graded already, and one found there is returned as it is."""
    graded = {} if graded is None else graded
    if exercise.name in graded:
        return graded[exercise.name]
    t0 = time.perf_counter()
    result = graded[exercise.name] = ExerciseResult(exercise, Path(directory) / exercise.file)
    before = set(graded)                                  # the dependencies' time is their own
    outcomes: list[_CaseOutcome] = []
    errors: list[tuple[Case, list[str], str]] = []        # configurations that raised
    case = None
    try:
        with LearnerProcess(directory, exercise, timeout) as learner:
            result.lines = _dependency_lines(exercise, learner.imports, directory, timeout, graded)
            if result.lines:
                result.status = FAIL
                return result
            for case in exercise.cases():
                try:
                    outcomes.append(_run_case(exercise, case, learner.functions, errors))
                except LearnerRaised as exc:
                    if exc.stub is not None:           # raised by the stub itself
                        result.status = NOT_WRITTEN
                        result.lines = [f"  {exc.stub} still raises NotImplementedError"
                                        + (f"; the stub's hint: {exc.hint}" if exc.hint else "")]
                        return result
                    errors.append((case, exc.lines, "in configuration"))
                except StructureError as exc:
                    errors.append((case, [str(exc)], "in configuration"))
        raised = [c for c, _, where in errors if where == "in configuration"]
        result.lines = _error_lines(errors, len(raised) + len(outcomes)) + _report(
            exercise, outcomes, raised)
        result.status = PASS if all(o.passed for o in outcomes) and not errors else FAIL
    except LearnerCodeError as exc:
        result.status, result.lines = NOT_WRITTEN if exc.not_written else FAIL, _indent(exc.lines)
        result.note = exc.lines[0] if "the library's own" in exc.lines[0] else ""
    except LearnerEnded as exc:
        where = f"; in configuration: {case.describe}" if case is not None else ""
        result.status, result.lines = FAIL, _indent([f"{exc}{where}"])
    finally:
        result.seconds = time.perf_counter() - t0 - sum(graded[n].seconds for n in
                                                        set(graded) - before)
    return result


def _dependency_lines(exercise: Exercise, imports: list[str], directory: Path, timeout: float,
                      graded: dict[str, ExerciseResult]) -> list[str]:
    """A line for each exercise the learner's file imports that fails (one not written yet
    raises its stub's NotImplementedError when called, which says so)."""
    lines = []
    for name in imports:
        if name in EXERCISES and name != exercise.name:
            dep = grade_exercise(EXERCISES[name], directory, timeout, graded)
            if dep.status == FAIL:
                why = next((line.strip() for line in dep.lines if line.strip()), "")
                lines += _indent([f"{exercise.name} uses your {name}, which fails: {why}; check "
                                  f"{name} first"])
    return lines


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]


def _error_lines(errors: list[tuple[Case, list[str], str]], n: int) -> list[str]:
    """The first configuration that raised, and how many did."""
    if not errors:
        return []
    case, lines, where = errors[0]
    more = (f"; it raised in {len(errors)} of {n} configurations" if len(errors) > 1 else "")
    rest = " (the others are graded below)" if len(errors) < n else ""
    return _indent(lines + [f"  {where}: {case.describe}{more}{rest}"])


def _run_case(exercise: Exercise, case: Case, fns: dict[str, Callable[..., Any]],
              errors: list[tuple[Case, list[str], str]]) -> _CaseOutcome:
    """Run one configuration: compare the tensors, then gradcheck the layer. An exception of
    the learner's code under gradcheck goes to ``errors``; one before, the caller's."""
    with quiet():
        outputs, changed = exercise.run(fns, case)
    comparisons = [compare(name, outputs.get(name), expected, case.contexts.get(name))
                   for name, expected in case.expected.items()]
    outcome = _CaseOutcome(case, comparisons, changed)
    if exercise.layer is None:
        return outcome
    if any(c.problem for c in comparisons):
        outcome.gradcheck = GradcheckOutcome(
            False, failure="not run: a tensor above has the wrong shape or type")
        return outcome
    try:
        with quiet(), learner_overrides([exercise], fns):
            module, inputs = exercise.gradcheck_module(case)
            outcome.gradcheck = GradcheckOutcome(True, gradcheck(
                module, *inputs, raise_exception=False, **exercise.gradcheck))
    except (StructureError, GradcheckError) as exc:
        outcome.gradcheck = GradcheckOutcome(True, failure=f"failed: {str(exc).splitlines()[0]}")
    except LearnerRaised as exc:
        errors.append((case, exc.lines, "while the layer ran under gradcheck, in configuration"))
        outcome.gradcheck = GradcheckOutcome(False, failure="not run: your code raised")
    return outcome


def grade(directory: Path, names: Iterable[str] | None = None, timeout: float = TIMEOUT
          ) -> list[ExerciseResult]:
    """Grade the named exercises (all when ``names`` is None) of the folder ``directory``."""
    chosen, graded = list(names) if names else list(EXERCISES), {}
    return [grade_exercise(EXERCISES[n], Path(directory), timeout, graded) for n in chosen]


# --- the report ----------------------------------------------------------------------------
def _v(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


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


def _report(exercise: Exercise, outcomes: list[_CaseOutcome], raised: list[Case]) -> list[str]:
    """The rows of the configurations that ran (``raised``: those that raised before)."""
    if not outcomes:
        return []
    lines: list[str] = []
    for name in outcomes[0].case.expected:
        rows = [(o.case, c) for o in outcomes for c in o.comparisons if c.name == name]
        failing = [(case, c) for case, c in rows if not c.passed]
        if not failing:
            case, worst = max(rows, key=lambda r: r[1].scaled)
            where = ("" if worst.index is None else
                     f"; worst entry {format_index(worst.index)}: yours {_v(worst.yours, 8)}, "
                     f"expected {_v(worst.expected, 8)} (difference {worst.difference:.1e})")
            lines += _row(name, "pass", f"{len(rows)} configurations{where}")
            continue
        case, first = failing[0]
        lines += _row(name, "FAIL", f"in {len(failing)} of {len(rows)} configurations; the "
                                    f"first: {case.describe}")
        if first.problem:
            lines += _more(f"{name} {first.problem}")
        else:
            lines += _more(f"worst entry {format_index(first.index)}: yours {_v(first.yours, 6)}, "
                           f"expected {_v(first.expected, 6)} ({first.wrong} of {first.total} "
                           "entries wrong)")
        for d in _common_diagnoses([c.diagnoses for _, c in failing]):
            lines += _more(f"diagnosis: {d}", hang="  ")
    changed = sorted({a for o in outcomes for a in o.changed})
    if changed:
        lines += _row("inputs", "FAIL", f"{' / '.join(exercise.functions)} changed its "
                      f"argument(s) {', '.join(changed)} in place; return new arrays instead "
                      "(the caller may still need them)")
    lines += _gradcheck_lines(exercise, outcomes, len(raised))
    lines += _pattern_lines(exercise, outcomes, raised)
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


def _gradcheck_lines(exercise: Exercise, outcomes: list[_CaseOutcome], raised: int) -> list[str]:
    runs = [(o.case, o.gradcheck) for o in outcomes if o.gradcheck is not None and o.gradcheck.ran]
    skipped = [o.gradcheck.failure for o in outcomes if o.gradcheck and not o.gradcheck.ran]
    skipped += ["not run: your code raised"] * (raised if exercise.layer else 0)
    if not runs:
        if skipped:
            return _row("gradcheck", "-", skipped[0])
        return _row("gradcheck", "-", f"not applicable; checked against {exercise.checked_by}")
    not_run = (f"not run in {len(skipped)} more: "
               + "; ".join(dict.fromkeys(s.removeprefix("not run: ") for s in skipped)))
    bad = [(case, g) for case, g in runs if not g.passed]
    if not bad:
        worst = max(g.report.max_rel_error for _, g in runs)
        return _row("gradcheck", "pass", f"{len(runs)} configurations (finite differences, "
                    f"random upstream gradient); worst relative error {worst:.1e}"
                    + (f"; {not_run}" if skipped else ""))
    case, g = bad[0]
    lines = _row("gradcheck", "FAIL", f"in {len(bad)} of {len(runs)} configurations"
                 + (f" ({not_run})" if skipped else "") + f"; the first: {case.describe}")
    if g.report is None:
        return lines + _more(g.failure)
    for check in g.report.checks:
        if not check.passed:
            lines += _more(f"{check.name}: worst at {check.worst}, relative error "
                           f"{check.max_rel_error:.1e}")
    return lines


def _pattern_lines(exercise: Exercise, outcomes: list[_CaseOutcome], raised: list[Case]
                   ) -> list[str]:
    """Which feature separates the failing (or raising) configurations from the passing ones."""
    failing = [o.case.features for o in outcomes if not o.passed] + [c.features for c in raised]
    passing = [o.case.features for o in outcomes if o.passed]
    if not failing or not passing:
        return []
    for words, test, hint in exercise.conditions:
        if all(test(f) for f in failing) and not any(test(f) for f in passing):
            return _row("pattern", "", f"fails exactly in the configurations with {words} (and "
                                       f"passes the others): {hint}")
    return []


def format_result(result: ExerciseResult, hint: int = 0) -> str:
    """The report of one exercise: a header line, then one line per tensor and check (and
    the exercise's hints up to level ``hint``)."""
    ex = result.exercise
    head = (f"{ex.name}: {result.status}  ({', '.join(ex.functions)} in {result.path}; "
            f"explained in {ex.chapter})")
    hints = [line for level, text in enumerate(ex.hints[:hint], 1) for line in _row(
        f"hint {level}", "", f"({HINT_LEVELS[level - 1]}) {text}")]
    return "\n".join([head, *result.lines, *hints])


def format_summary(results: list[ExerciseResult]) -> str:
    """One line: how many exercises pass, fail, and are not written yet."""
    n, count = len(results), Counter(r.status for r in results)
    parts = [f"{count[PASS]} of {n} exercise{'s' if n != 1 else ''} pass"]
    if count[FAIL]:
        parts.append(f"{count[FAIL]} fail{'s' if count[FAIL] == 1 else ''}")
    if count[NOT_WRITTEN]:
        parts.append(f"{count[NOT_WRITTEN]} not written yet")
    return ", ".join(parts) + f" ({sum(r.seconds for r in results):.1f} s)"

