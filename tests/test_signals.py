"""SIGTERM (`kill PID`, a scheduler's pre-emption) and SIGHUP (a closed terminal) take Ctrl-C's
path in every program: training finishes the step, writes the checkpoint and prints the resume
line; every program ends in one line with 128 + the signal's number; no `.part` file outlives
the process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchnet import cli, fileio
from scratchnet.checkpoint import load_checkpoint
from scratchnet.experiment import Config, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def start(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def no_part_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".part")]


@pytest.mark.realdata
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_training_stops_like_ctrl_c_on_sigterm_and_sighup(real_data, tmp_path, signum):
    out = tmp_path / "run"
    proc = start(EXAMPLES / "train_denoiser.py", "--data-dir", real_data, "--limit-train", 60000,
                 "--limit-test", 100, "--epochs", 1, "--out", out, "--no-progress")
    deadline = time.time() + 120
    while not (out / "noise.png").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)                                   # into the epoch
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"terminated by {name} in epoch 1 after batch "), err
    assert last.endswith(f"checkpoint saved: continue with python {EXAMPLES / 'train_denoiser.py'} --resume "
                         f"{out / 'checkpoint.npz'}")
    meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 0 and 0 < meta["batch"] < 938
    assert no_part_files(out)


@pytest.mark.realdata
def test_sigterm_during_the_first_checkpoint_write_still_leaves_a_checkpoint(real_data, tmp_path,
                                                                              monkeypatch):
    """The signal arrives while checkpoint.npz is being written for the first time: the write
    completes (the signal only asks the loop to stop), then the run stops with the resume line."""
    import scratchnet.experiment as ex
    real = ex.save_checkpoint

    def signalled_while_writing(path, *a, **k):
        os.kill(os.getpid(), signal.SIGTERM)              # handled between two bytecodes: now
        real(path, *a, **k)

    monkeypatch.setattr(ex, "save_checkpoint", signalled_while_writing)
    cfg = Config(data_dir=str(real_data), limit_train=256, limit_test=64, epochs=3, batch_size=32)
    with pytest.raises(TrainingInterrupted) as exc:
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert exc.value.exit_status == 143
    assert str(exc.value).startswith("terminated by SIGTERM after epoch 1; checkpoint saved")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1
    assert no_part_files(tmp_path / "run")


@pytest.mark.realdata
def test_ctrl_c_during_the_last_evaluation_is_not_ignored(real_data, tmp_path, monkeypatch):
    import scratchnet.experiment as ex
    real = ex.score_model

    def interrupted_scoring(*a, **k):
        signal.raise_signal(signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(ex, "score_model", interrupted_scoring)
    cfg = Config(data_dir=str(real_data), limit_train=64, limit_test=32, epochs=1, batch_size=32)
    with pytest.raises(TrainingInterrupted) as exc:
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert exc.value.exit_status == 130
    assert str(exc.value) == f"interrupted after epoch 1; the run had finished: outputs in {tmp_path / 'run'}"
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1


def test_a_signal_inside_a_program_removes_the_part_file_being_written(tmp_path):
    """Inside a program's block a signal raises; a .part file being written is removed."""
    target = tmp_path / "big.bin"

    def write(fh):
        fh.write(b"x" * 1000)
        os.kill(os.getpid(), signal.SIGTERM)
        fh.write(b"never")

    with pytest.raises(SystemExit) as exc, cli.interrupts_exit("kept: nothing"):
        fileio.atomic_write(target, write)
    assert exc.value.code == 143
    assert not target.exists() and no_part_files(tmp_path)


def test_handlers_are_restored_after_the_block():
    before = {s: signal.getsignal(s) for s in cli.STOP_SIGNALS}
    with pytest.raises(SystemExit):
        with cli.interrupts_exit("nothing"):
            raise cli.Terminated(signal.SIGHUP)
    assert cli.exit_status(cli.Terminated(signal.SIGHUP)) == 129
    for s, h in before.items():
        signal.signal(s, h)                         # interrupts_exit ignores further signals
    with cli.raise_on_stop_signals():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in cli.STOP_SIGNALS} == before


@pytest.mark.realdata
def test_evaluate_ends_in_one_line_on_sigterm(real_data, tmp_path, checkpoint):
    out = tmp_path / "eval"
    proc = start(EXAMPLES / "evaluate_denoiser.py", checkpoint, "--out", out, "--data-dir",
                 real_data, "--no-progress")
    time.sleep(4)                                     # scoring 10,000 images at six levels
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip() in ("terminated by SIGTERM; nothing was written",     # scoring, or
                           "terminated by SIGTERM while starting; nothing was written")  # loading
    assert not out.exists()


@pytest.mark.parametrize("delay", [0.05, 0.4])
def test_python_m_programs_end_in_one_line_while_starting(delay):
    proc = start("-m", "scratchnet.data", "where")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        return                                         # it had finished: nothing to stop
    assert "Traceback" not in err, err
    # -SIGTERM: the signal came before Python ran any of the program (silent, as the shell's 143)
    assert proc.returncode in (143, -signal.SIGTERM), err
    assert proc.returncode == -signal.SIGTERM or err.strip().startswith("terminated by SIGTERM"), err
