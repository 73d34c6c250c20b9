"""The grader runs the learner's code in a child process, out of reach of its own.

An exit, a crash, a hang, a MemoryError or a KeyboardInterrupt in the learner's code fails that
exercise in one line while the others are graded and `check` ends with its summary; a stub
that patches the library or the grader in its own process cannot make a wrong answer pass;
a real Ctrl-C still stops the grader in one line; `--help` and docs/exercises.md say that
`check` runs the folder's code.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchnet.learn import EXERCISES, format_result, grade_exercise
from test_learn import SOLUTIONS, flat, run_cli, write

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = {
    # case: (the body of relu_backward, or a module-level statement with "import:", the words)
    "sys.exit": ("import sys\nsys.exit(0)", "your code called sys.exit(0)"),
    "sys.exit at import": ("import:import sys\nsys.exit(0)", "your code called sys.exit(0)"),
    "os._exit": ("import os\nos._exit(0)", "your code ended the process it ran in (exit status 0"),
    "os._exit at import": ("import:import os\nos._exit(3)",
                           "your code ended the process it ran in (exit status 3"),
    "segfault": ("import ctypes\nctypes.string_at(0)",
                 "your code crashed the process it ran in (SIGSEGV: a segmentation fault)"),
    "endless loop": ("while True:\n    pass", "your code did not finish within 2 s"),
    "MemoryError": ("import numpy as np\nreturn np.empty((10**7, 10**7))",
                    "your code ran out of memory (MemoryError: "),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", "your code raised KeyboardInterrupt"),
}


def _relu(body: str) -> str:
    if body.startswith("import:"):
        return body[len("import:"):] + "\n\ndef relu_backward(gy, x):\n    return gy * (x > 0)\n"
    return "def relu_backward(gy, x):\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_an_exit_a_crash_or_a_hang_fails_that_exercise_only(case: str, tmp_path: Path):
    body, words = HOSTILE[case]
    folder = write(tmp_path / "ex", {"relu.py": _relu(body), "sigmoid.py": SOLUTIONS["sigmoid.py"]})
    proc = run_cli("check", folder, "relu", "sigmoid", "--timeout", "2")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "relu: FAIL" in out and words in flat(out), out
    assert "sigmoid: pass" in out, out
    assert out.splitlines()[-1].startswith("1 of 2 exercises pass, 1 fails"), out
    assert "Traceback" not in out + proc.stderr, out + proc.stderr
    relu = out.split("sigmoid: pass")[0].splitlines()
    assert len(relu) <= 4, out                   # the header, what happened, where


def test_a_stub_that_patches_the_library_and_the_grader_does_not_pass(tmp_path: Path):
    folder = write(tmp_path / "ex", {"conv2d_grad_input.py": """
        import numpy as np
        from scratchnet import ops
        from scratchnet.gradcheck import GradcheckReport
        from scratchnet.learn import diagnose, exercises, grader


        def conv2d_grad_input(gy, weight, size, stride, padding):
            return np.zeros((gy.shape[0], weight.shape[1], *size))


        def _passed(name, yours, expected, context=None):
            return diagnose.Comparison(name, True)


        # the library's own answer made mine, the gradient check and the comparison told to pass
        ops.OPS["conv2d_grad_input"].reference = conv2d_grad_input
        grader.gradcheck = lambda *args, **kwargs: GradcheckReport("patched")
        grader.compare = diagnose.compare = _passed
        exercises.learner_overrides = lambda *args: ops.override()
        """})
    proc = run_cli("check", folder, "conv2d_grad_input")
    assert proc.returncode == 1, proc.stdout
    out = flat(proc.stdout)
    assert "dx FAIL in 6 of 6 configurations" in out and "yours is all zeros" in out, out
    assert "gradcheck FAIL" in out, out


def test_a_script_that_grades_is_not_run_again_in_the_child(tmp_path: Path):
    folder = write(tmp_path / "ex", {"relu.py": SOLUTIONS["relu.py"]})
    script = tmp_path / "grade_mine.py"            # no `if __name__ == "__main__":` guard
    script.write_text(f"from scratchnet.learn import grade\nprint('graded', "
                      f"[r.status for r in grade({str(folder)!r}, ['relu'])])\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout == "graded ['pass']\n", proc.stdout + proc.stderr


def test_what_is_not_numbers_comes_back_as_its_type(tmp_path: Path):
    folder = write(tmp_path / "ex", {"relu.py": """
        class Sneaky:
            def __reduce__(self):
                return (print, ("ran in the grader",))


        def relu_backward(gy, x):
            return Sneaky()
        """})
    result = grade_exercise(EXERCISES["relu"], folder)
    report = flat(format_result(result))
    assert result.status == "FAIL" and "dx is a Sneaky, expected an array of shape" in report


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
def test_a_real_ctrl_c_stops_the_grader_in_one_line(tmp_path: Path):
    marker = tmp_path / "looping"
    folder = write(tmp_path / "ex", {"relu.py": _relu(f"open({str(marker)!r}, 'w').close()\n"
                                                      "while True:\n    pass")})
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet.learn", "check", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    for _ in range(600):                       # until relu's endless loop runs
        if marker.exists():
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)         # as a terminal's Ctrl-C: the whole group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert err == "python -m scratchnet.learn check: interrupted; nothing in your folder was " \
                  "changed\n", err
    time.sleep(1)
    assert _running_in_group(proc.pid) == []    # the child with the endless loop is gone too


def _running_in_group(pgid: int) -> list[str]:
    """The processes of a process group that are not zombies (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(stat.parent.name)
    return found


def test_check_says_it_runs_the_folders_code_in_a_child_process():
    text = " ".join(run_cli("check", "--help").stdout.split())
    assert "This runs the code in DIR" in text and "child process" in text
    assert "--timeout SECONDS" in text
    docs = " ".join((ROOT / "docs" / "exercises.md").read_text().split())
    assert "runs the code in your folder" in docs and "child process" in docs
    assert "--timeout" in docs


TRAINING_ONLY = {
    # what sigmoid_backward does in the capstone's float32 training only: the words
    "sys.exit": ("import sys\nsys.exit(0)", "train: your code called sys.exit(0)"),
    "os._exit": ("import os\nos._exit(0)", "train: your code ended the process it ran in (exit "
                                           "status 0"),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", "train: your code raised KeyboardInterrupt"),
}


@pytest.mark.realdata
@pytest.mark.parametrize("case", sorted(TRAINING_ONLY))
def test_an_exit_or_interrupt_of_the_code_in_training_is_one_line(case: str, real_data,
                                                                   tmp_path: Path):
    body, words = TRAINING_ONLY[case]
    hostile = "".join(f"        {line}\n" for line in body.splitlines())
    folder = write(tmp_path / "ex", {**SOLUTIONS, "sigmoid.py": (
        "import numpy as np\n\n\ndef sigmoid_backward(gy, y):\n    if y.dtype == np.float32:\n"
        + hostile + "    return gy * y * (1 - y)\n")})
    proc = run_cli("train", folder, "--limit-train", "256", "--limit-test", "64",
                   env={"SCRATCHNET_DATA": str(real_data)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert not (folder / "capstone-conv.png").exists()


@pytest.mark.realdata
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
def test_a_real_ctrl_c_stops_the_capstone_in_one_line(real_data, tmp_path: Path):
    marker = tmp_path / "training"
    folder = write(tmp_path / "ex", {**SOLUTIONS, "sigmoid.py": (
        "import time\nimport numpy as np\n\n\ndef sigmoid_backward(gy, y):\n"
        f"    if y.dtype == np.float32:\n        open({str(marker)!r}, 'w').close()\n"
        "        time.sleep(0.05)\n    return gy * y * (1 - y)\n")})
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet.learn", "train", str(folder),
                             "--limit-train", "2000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "SCRATCHNET_DATA": str(real_data)})
    for _ in range(1200):                      # until the training steps run
        if marker.exists():
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert err == "python -m scratchnet.learn train: interrupted; nothing in your folder was " \
                  "changed\n", err
    time.sleep(1)
    assert _running_in_group(proc.pid) == []
