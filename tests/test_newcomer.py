"""A newcomer's first ten minutes: Ctrl-C at any moment ends in one line, resume speaks the
progress bar's numbers, nothing is left behind by a run that could not start, and every
error a newcomer meets says what to do."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scratchnet.data import DatasetError, load_dataset
from scratchnet.experiment import Config, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
import train_denoiser  # noqa: E402


def one_line_exit_130(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err
    return lines[0]


def start(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kw.pop("env", {})}
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


@pytest.mark.parametrize("delay", [0.05, 0.3])
@pytest.mark.parametrize("program", ["train", "evaluate", "denoise"])
def test_ctrl_c_while_starting_is_one_line(tmp_path, checkpoint, program, delay):
    out = tmp_path / "out"
    args = {"train": [EXAMPLES / "train_denoiser.py", "--out", out, "--no-progress"],
            "evaluate": [EXAMPLES / "evaluate_denoiser.py", checkpoint, "--out", out],
            "denoise": [EXAMPLES / "denoise_images.py", "--checkpoint", checkpoint, "--out", out,
                        checkpoint]}[program]
    proc = start(args)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out_text, err = proc.communicate(timeout=120)
    if "Traceback" in err and str(args[0]) not in err:
        return          # the signal came while Python itself started, before the program's
                        # first line (possible on a loaded machine): not the program's to handle
    assert "Traceback" not in err, err
    # 130: our one line. -SIGINT: the signal came before Python itself handles it (the shell
    # reports status 130 then too; silent). 1/2: it got far enough to refuse the input.
    assert proc.returncode in (130, -signal.SIGINT, 1, 2), err
    assert proc.returncode != -signal.SIGINT or not err
    if proc.returncode == 130:
        assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted"), err
    assert not out.exists() or any(out.iterdir())          # never an empty folder


def test_data_cli_ctrl_c_is_one_line(monkeypatch, capsys):
    """(``python -m scratchnet.data`` handles Ctrl-C once its own code runs; the package import
    before it is Python's.)"""
    import scratchnet.data.__main__ as data_cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_cli, "download_dataset", interrupted)
    with pytest.raises(SystemExit) as exc:
        data_cli.main(["download", "--dataset", "mnist"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 130 and len(err) == 1 and err[0].startswith("interrupted; files already")


@pytest.mark.realdata
def test_ctrl_c_while_loading_data_leaves_no_empty_folder(real_data, tmp_path):
    out = tmp_path / "run"
    proc = start([EXAMPLES / "train_denoiser.py", "--data-dir", real_data, "--out", out,
                  "--no-progress", "--epochs", "1"])
    assert proc.stdout.readline().startswith("run directory:")    # training starts with loading
    proc.send_signal(signal.SIGINT)
    line = one_line_exit_130(proc)
    if not out.exists():
        assert line == "interrupted; nothing was written"
    else:                                        # the signal came after the first figures
        assert any(out.iterdir()) and str(out) in line


@pytest.mark.realdata
def test_ctrl_c_while_scoring_writes_nothing(real_data, tmp_path, checkpoint):
    out = tmp_path / "eval"
    proc = start([EXAMPLES / "evaluate_denoiser.py", checkpoint, "--out", out, "--data-dir",
                  real_data, "--no-progress"])
    time.sleep(4)                                 # scoring 10,000 images at six levels: long
    proc.send_signal(signal.SIGINT)
    # (on a very busy machine the program may still be loading its libraries after 4 s)
    assert one_line_exit_130(proc) in ("interrupted; nothing was written",
                                       "interrupted while starting; nothing was written")
    assert not out.exists()


@pytest.mark.realdata
def test_interrupt_and_resume_speak_the_same_numbers(real_data, tmp_path, monkeypatch):
    from conftest import sigint_at_batch
    from scratchnet.data import NoiseSpec
    real = sigint_at_batch(monkeypatch, 8 + 3)     # epoch 2 (8 batches each), batch 3
    cfg = Config(data_dir=str(real_data), limit_train=256, limit_test=64, epochs=3, batch_size=32)
    with pytest.raises(TrainingInterrupted) as exc:
        train(cfg, tmp_path / "a", progress=False, log=lambda s: None)
    assert str(exc.value).startswith("interrupted in epoch 2 after batch 3; checkpoint saved")
    monkeypatch.setattr(NoiseSpec, "apply", real)
    lines = []
    train(cfg, tmp_path / "b", resume=tmp_path / "a" / "checkpoint.npz", progress=False,
          log=lines.append)
    assert f"resumed from {tmp_path / 'a' / 'checkpoint.npz'}: in epoch 2 after batch 3" in lines


@pytest.mark.realdata
@pytest.mark.parametrize("epochs,flag", [(["--epochs", "1"], "--epochs"), ([], "--resume")])
def test_resume_with_nothing_left_to_train_is_refused(real_data, tmp_path, capsys, epochs, flag):
    assert train_denoiser.main(["--data-dir", str(real_data), "--limit-train", "64",
                                "--limit-test", "32", "--epochs", "1", "--out", str(tmp_path / "a"),
                                "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        train_denoiser.main(["--resume", str(tmp_path / "a" / "checkpoint.npz"), *epochs,
                             "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert f"argument {flag}: checkpoint" in err[0] and "already holds 1 completed epoch of 1" in err[0]
    assert not (tmp_path / "b").exists()


def test_a_run_that_cannot_find_its_data_leaves_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    import scratchnet.data.datasets as ds
    monkeypatch.setattr(ds, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(ds, "cache_dir", lambda: tmp_path / "cache")
    out = tmp_path / "run"
    code = train_denoiser.main(["--data-dir", str(tmp_path / "empty"), "--no-download",
                                "--out", str(out), "--no-progress"])
    assert code == 1 and not out.exists()
    assert "mnist (train) not found" in capsys.readouterr().err
    assert train_denoiser.main(["--data-dir", str(tmp_path / "empty"), "--no-download",
                                "--out", str(out), "--no-progress"]) == 1    # same command: same error


def test_data_dir_naming_the_dataset_folder_gets_a_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    import scratchnet.data.datasets as ds
    monkeypatch.setattr(ds, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(ds, "cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"--data-dir takes the folder that holds mnist/, not "
                                           r"mnist/ itself: try --data-dir .*data$"):
        load_dataset("mnist", root=tmp_path / "data" / "mnist", download=False)
    with pytest.raises(DatasetError, match=r"copy the IDX files .*train-images-idx3-ubyte.gz.* into "
                                           r"DIR/mnist/ and pass DIR with --data-dir"):
        load_dataset("mnist", root=tmp_path / "data", download=False)


def test_a_run_no_better_than_its_input_says_so(tmp_path, capsys, monkeypatch):
    def fake_train(config, out, **kw):
        return {"final": {"test_mse": 0.157, "test_psnr": 8.0}, "noisy_baseline": {"mse": 0.116}}

    monkeypatch.setattr(train_denoiser, "train", fake_train)
    assert train_denoiser.main(["--out", str(tmp_path / "r"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no better than its noisy input (test MSE 0.1570 >= 0.1160)" in out
    assert "--limit-train" in out and "epochs" in out


def test_usage_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "train_denoiser.py"), "--lr", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "argument --lr: expected a finite number > 0, got '-1'" in r.stderr


def test_required_options_show_no_default_in_help():
    r = subprocess.run([sys.executable, str(EXAMPLES / "denoise_images.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "(default: None)" not in r.stdout


def test_plot_results_labels_rows_by_what_they_are():
    from scratchnet import plotting
    images = np.zeros((1, 1, 28, 28), np.float32)
    fig = plotting.plot_results(images, None, images, "t", labels=("input", "unused", "denoised"))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    fig.clf()
    assert labels == ["input", "denoised"]


# --- issue: the first ten minutes, again -------------------------------------------------------
@pytest.fixture
def no_other_data(tmp_path, monkeypatch):
    """No $SCRATCHNET_DATA, no Debian folder, an empty cache: only what a test passes."""
    import scratchnet.data.datasets as ds
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.setattr(ds, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(ds, "cache_dir", lambda: tmp_path / "cache")


def test_an_explicit_data_dir_is_the_only_place_looked(real_data, tmp_path, monkeypatch):
    from scratchnet.data import search_dirs
    monkeypatch.setenv("SCRATCHNET_DATA", str(real_data))      # the data is there...
    assert search_dirs(tmp_path / "typo") == [tmp_path / "typo"]
    with pytest.raises(DatasetError, match=r"mnist \(train\) not found; looked in .*typo/mnist\. "):
        load_dataset("mnist", root=tmp_path / "typo", download=False)   # ...but not looked for


def test_data_dir_naming_the_dataset_folder_is_not_downloaded_into(tmp_path, no_other_data,
                                                                   monkeypatch):
    import scratchnet.data.datasets as ds
    monkeypatch.setattr(ds, "_fetch", lambda *a: pytest.fail("downloaded"))
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"not mnist/ itself: try --data-dir .*data$"):
        load_dataset("mnist", root=tmp_path / "data" / "mnist", download=True)
    assert list((tmp_path / "data" / "mnist").iterdir()) == []        # no mnist/mnist/


@pytest.mark.parametrize("kind", ["mnist", "natural"])
def test_a_failed_download_leaves_no_new_folder(tmp_path, no_other_data, monkeypatch, kind):
    import urllib.error

    import scratchnet.data.datasets as ds
    from scratchnet.data import download_natural

    def offline(url, dest, timeout):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(ds, "_fetch", offline)
    monkeypatch.setattr("scratchnet.data.natural._fetch", offline)
    (tmp_path / "kept").mkdir()
    target = tmp_path / "kept" / "new" / "deeper"
    with pytest.raises(DatasetError, match="could not download"):
        load_dataset("mnist", root=target) if kind == "mnist" else download_natural("set12", target)
    assert list((tmp_path / "kept").iterdir()) == []                # the folder given was made, then removed


@pytest.mark.realdata
def test_a_run_says_which_data_folder_it_used(real_data, tmp_path):
    lines = []
    train(Config(data_dir=str(real_data), limit_train=64, limit_test=32, epochs=1, batch_size=32),
          tmp_path / "r", progress=False, log=lines.append)
    assert any(line.startswith(f"data: mnist from {Path(real_data) / 'mnist'}, 64 train")
               for line in lines), lines
    import json
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["data_folder"] == \
        str(Path(real_data) / "mnist")


def test_no_hint_installs_the_unrelated_package_of_the_same_name():
    from scratchnet import backend
    assert "pip install -e \".[gpu-cuda12]\"" in backend._CUPY_HINT
    sources = [p.read_text() for p in (ROOT / "scratchnet").rglob("*.py")]
    sources += [p.read_text() for p in [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]]
    assert not any("install 'scratchnet[" in s or 'install "scratchnet[' in s or
                   "install scratchnet[" in s for s in sources)


def test_cupy_without_a_gpu_says_to_train_on_the_cpu(monkeypatch):
    import types

    from scratchnet import backend

    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=no_driver)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(backend.BackendUnavailableError,
                       match=r"no usable CUDA GPU was found \(cudaErrorInsufficientDriver.*\); "
                             r"train on the CPU instead: leave out --backend"):
        backend._import_cupy()


def test_a_resumed_run_goes_beside_the_run_it_continues(tmp_path):
    (tmp_path / "exp").mkdir()
    assert train_denoiser.resumed_dir(str(tmp_path / "exp" / "checkpoint.npz")) == tmp_path / "exp-resumed"
    (tmp_path / "exp-resumed").mkdir()
    assert train_denoiser.resumed_dir(str(tmp_path / "exp" / "checkpoint.npz")) == tmp_path / "exp-resumed-2"
    # resuming the resumed run continues the numbering, not exp-resumed-resumed
    assert train_denoiser.resumed_dir(str(tmp_path / "exp-resumed" / "checkpoint.npz")) == \
        tmp_path / "exp-resumed-2"


def test_help_shows_examples_and_what_a_run_writes():
    r = subprocess.run([sys.executable, str(EXAMPLES / "train_denoiser.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert "\nexamples:\n  python examples/train_denoiser.py   " in r.stdout
    assert "\n  python examples/train_denoiser.py --preset table-a" in r.stdout
    assert "prints the command that continues the run" in r.stdout


def test_progress_bars_into_a_pipe_are_sparse(real_data, tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "train_denoiser.py"), "--data-dir",
                        str(real_data), "--epochs", "2", "--limit-train", "4096", "--limit-test",
                        "100", "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    redraws = r.stderr.count("\r") + r.stderr.count("\n")
    assert 0 < redraws <= 3 * 2, r.stderr          # its start, one at most a minute, its end


@pytest.mark.parametrize("program", ["train_denoiser.py", "evaluate_denoiser.py", "denoise_images.py"])
def test_a_python_without_the_project_gets_one_line_that_says_so(program):
    # -S: no site-packages, as a Python outside the project's environment
    r = subprocess.run([sys.executable, "-S", str(EXAMPLES / program), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: cannot import 'scratchnet': this Python (")
    assert "activate its environment (. .venv/bin/activate)" in r.stderr and "pip install -e ." in r.stderr
