"""`check DIR NAME --hint 1|2|3`: a ladder of hints per exercise, from the shapes to the formula,
kept in the exercise rows."""
from __future__ import annotations

import re
from pathlib import Path

from scratchnet.learn import EXERCISES
from scratchnet.learn.exercises import HINT_LEVELS
from test_learn import SOLUTIONS, flat, run_cli, write


def test_every_exercise_has_three_hints_from_the_shapes_to_the_formula():
    assert HINT_LEVELS == ("the shapes", "the idea", "the formula")
    for ex in EXERCISES.values():
        assert len(ex.hints) == 3, ex.name
        assert all(h and "\n" not in h and h == h.strip() for h in ex.hints), ex.name
        assert len(set(ex.hints)) == 3, ex.name


def test_hint_2_shows_the_first_two_hints_below_the_report(tmp_path: Path):
    folder = write(tmp_path / "ex", {"relu.py": "def relu_backward(gy, x):\n    return gy\n"})
    plain = run_cli("check", folder, "relu")
    proc = run_cli("check", folder, "relu", "--hint", "2")
    assert proc.returncode == plain.returncode == 1, proc.stdout + proc.stderr
    shapes, idea, formula = EXERCISES["relu"].hints
    text = flat(proc.stdout)
    assert f"hint 1 (the shapes) {shapes}" in text and f"hint 2 (the idea) {idea}" in text
    assert formula not in text and "hint 3" not in text
    report, _, rest = proc.stdout.partition("  hint 1")
    assert report == plain.stdout.rsplit("\n", 2)[0] + "\n"      # the report as it was
    assert re.search(r"^0 of 1 exercise pass, 1 fails", rest, re.M)


def test_hint_3_gives_the_formula_even_for_a_passing_exercise(tmp_path: Path):
    folder = write(tmp_path / "ex", {"col2im.py": SOLUTIONS["col2im.py"]})
    proc = run_cli("check", folder, "col2im", "--hint", "3")
    assert proc.returncode == 0, proc.stdout
    assert f"hint 3 (the formula) {EXERCISES['col2im'].hints[2]}" in flat(proc.stdout)


def test_a_hint_needs_the_exercise_to_hint_at(tmp_path: Path):
    proc = run_cli("check", tmp_path, "--hint", "1")
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "--hint needs the exercise to hint at" in proc.stderr
    proc = run_cli("check", tmp_path, "relu", "--hint", "4")
    assert proc.returncode == 2 and "invalid choice: 4" in proc.stderr
