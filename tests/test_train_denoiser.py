"""examples/train_denoiser.py and denoise_images.py as a user runs them, plus the experiment
engine's guarantees: resume determinism, checkpoints, NaN guard, Ctrl-C, argument errors."""
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import optim
from scratchnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scratchnet.experiment import Config, TrainingStopped, train
from scratchnet.models import conv_autoencoder, dense_autoencoder

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_denoiser.py"
OUTPUTS = ["samples.png", "noise.png", "loss_iterations.png", "loss_epochs.png", "results.png",
           "metrics.json", "history.csv", "checkpoint.npz"]


def run_script(*args, script=SCRIPT, **kw):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=600, **kw)


@pytest.mark.realdata
def test_end_to_end_run_as_a_user(real_data, tmp_path):
    out = tmp_path / "run"
    r = run_script("--data-dir", real_data, "--limit-train", 3000, "--limit-test", 500,
                   "--epochs", 2, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "210,369" in r.stdout          # the model summary
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "finished" and len(m["epochs"]) == 2
    assert m["config"]["batch_size"] == 64 and m["config"]["weight_decay"] == 1e-5
    e1, e2 = m["epochs"]
    assert e2["train_mse"] < e1["train_mse"]                        # the loss went down
    assert e2["test_mse"] < m["noisy_baseline"]["mse"]              # denoising helps
    assert e2["test_psnr"] == pytest.approx(10 * np.log10(1 / e2["test_mse"]))
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_mse,test_mse,test_psnr") and len(lines) == 3
    # Reuse: denoise a user's image with the checkpoint.
    from PIL import Image
    img = np.full((40, 30, 3), 255, np.uint8)
    img[10:30, 12:18] = 0                                           # a dark "1" on white
    Image.fromarray(img).save(tmp_path / "one.png")
    r = run_script("--checkpoint", out / "checkpoint.npz", "--out", tmp_path / "den",
                   "--noise-factor", 0.3, tmp_path / "one.png", script=ROOT / "examples" / "denoise_images.py")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "den" / "one_denoised.png").stat().st_size > 0


@pytest.mark.realdata
@pytest.mark.parametrize("extra", [{}, {"model": "unet", "width": 4, "lr_schedule": "cosine"}],
                         ids=["conv", "unet-cosine"])
def test_resume_is_bit_identical_to_a_straight_run(real_data, tmp_path, extra, monkeypatch):
    # The BLAS thread count changes the last bits; pinned, so no probe chooses differently.
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "1")
    cfg = Config(data_dir=str(real_data), limit_train=256, limit_test=64, epochs=4, batch_size=32,
                 **extra)
    train(cfg, tmp_path / "straight", progress=False, log=lambda s: None)
    if cfg.lr_schedule == "constant":          # a 2-epoch run continued to 4 epochs
        train(Config(**{**cfg.__dict__, "epochs": 2}), tmp_path / "first", progress=False,
              log=lambda s: None)
    else:       # the cosine spans the planned epochs: a 4-epoch run stopped after epoch 2
        def stop_after_epoch_2(line):
            if line.startswith("epoch 2:"):
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "first", progress=False, log=stop_after_epoch_2)
    train(cfg, tmp_path / "second", resume=tmp_path / "first" / "checkpoint.npz", progress=False,
          log=lambda s: None)
    for name in OUTPUTS:                       # the resumed run's new directory is complete
        assert (tmp_path / "second" / name).stat().st_size > 0, name
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "second" / "checkpoint.npz")
    for k in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][k], b["model_state"][k])
    assert a["history"][-1]["test_mse"] == b["history"][-1]["test_mse"]
    assert a["iteration_losses"] == b["iteration_losses"]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]    # lr schedule too


@pytest.mark.realdata
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(real_data, tmp_path, monkeypatch):
    from scratchnet.data import NoiseSpec
    real_apply = NoiseSpec.apply                                  # the training batches' noise
    calls = []

    def poisoned(spec, x, rng):
        y = real_apply(spec, x, rng)
        calls.append(1)
        if len(calls) == 8 + 3:                                   # epoch 2 (of 8 batches), batch 3
            return y * np.nan
        return y

    monkeypatch.setattr(NoiseSpec, "apply", poisoned)
    cfg = Config(data_dir=str(real_data), limit_train=256, limit_test=64, epochs=3, batch_size=32)
    with pytest.raises(TrainingStopped, match=r"loss became nan in epoch 2, batch 3.*epoch 1\)"):
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["epoch"] == 1
    assert all(np.isfinite(v).all() for v in meta["model_state"].values())
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"].startswith("stopped")


@pytest.mark.realdata
def test_ctrl_c_writes_a_checkpoint_and_resume_continues(real_data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--data-dir", str(real_data),
                             "--limit-train", "60000", "--limit-test", "100", "--epochs", "1",
                             "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "noise.png").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted in epoch 1 after batch ")
    command = f"python {SCRIPT} --resume {out / 'checkpoint.npz'}"     # the full command
    assert stderr.strip().endswith(f"checkpoint saved: continue with {command}")
    meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 0 and 0 < meta["batch"] < 938
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    # That command, as printed, continues the run beside it under its name.
    r = subprocess.run([sys.executable, *shlex.split(command)[1:], "--data-dir", str(real_data),
                        "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"run directory: {tmp_path / 'run-resumed'}\n")
    assert json.loads((tmp_path / "run-resumed" / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
    (["--noise-factor=-1"], "argument --noise-factor: expected a finite number >= 0, got '-1'"),
    (["--lr=-0.1"], "argument --lr: expected a finite number > 0, got '-0.1'"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0, got 'nan'"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
    (["--epochs", "two"], "argument --epochs: expected a positive integer, got 'two'"),
    (["--noise", "salt-pepper", "--noise-factor", "2"], "salt-pepper takes a fraction <= 1"),
    (["--out", "/proc/forbidden/run"], "argument --out: cannot create /proc/forbidden/run"),
])
def test_bad_arguments_get_one_line_errors(args, message):
    r = run_script(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_existing_run_directory_is_never_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    r = run_script("--out", tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"not a zip file")
    r = run_script("--resume", bad, "--out", tmp_path / "new")
    assert r.returncode == 2 and "is not an .npz archive" in r.stderr
    assert "Traceback" not in r.stderr
    sn.manual_seed(0)
    save_checkpoint(bad, conv_autoencoder(), config={"model": "conv"})
    bad.write_bytes(bad.read_bytes()[:300])                 # a truncated archive
    r = run_script("--resume", bad, "--out", tmp_path / "new")
    assert r.returncode == 2 and "not a readable scratchnet checkpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_help_explains_every_option():
    r = run_script("--help")
    assert r.returncode == 0
    for opt in ["--dataset", "--backend", "--epochs", "--batch-size", "--lr", "--weight-decay",
                "--noise-factor", "--noise", "--model", "--seed", "--data-dir", "--out",
                "--limit-train", "--limit-test", "--resume", "--preset"]:
        assert opt in r.stdout


def test_cupy_backend_without_gpu_says_how_to_install():
    from scratchnet.backend import is_available
    if is_available("cupy"):
        pytest.skip("a GPU is present")
    r = run_script("--backend", "cupy")
    try:
        import cupy  # noqa: F401   (installed, but no usable GPU: say that instead)
        hint = "no usable CUDA GPU"
    except ImportError:
        hint = "pip install"
    assert r.returncode == 2 and "argument --backend" in r.stderr and hint in r.stderr
    assert "Traceback" not in r.stderr


def test_checkpoint_round_trip_dtype_and_architecture(tmp_path):
    sn.manual_seed(0)
    model = conv_autoencoder().double()
    opt = optim.Adam(model.parameters(), weight_decay=1e-5)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    model(x)
    model.backward(np.ones((2, 1, 28, 28)))
    opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=3, note="x")
    restored = conv_autoencoder()                         # float32: values are cast on load
    ropt = optim.Adam(restored.parameters())
    meta = load_checkpoint(tmp_path / "c.npz", restored, ropt)
    assert meta["epoch"] == 3 and meta["note"] == "x"
    for (name, p), q in zip(model.named_parameters(), restored.parameters()):
        assert q.dtype == np.float32
        np.testing.assert_allclose(q.data, p.data.astype(np.float32), rtol=0, atol=0)
    s = ropt.state[next(restored.parameters())]
    assert s["step"] == 1 and s["exp_avg"].dtype == np.float32
    assert ropt.param_groups[0]["weight_decay"] == 1e-5
    with pytest.raises(CheckpointError, match="does not fit this model: .*missing keys"):
        load_checkpoint(tmp_path / "c.npz", dense_autoencoder())


@pytest.mark.gpu
def test_checkpoint_from_cupy_loads_on_numpy(tmp_path):
    from scratchnet.backend import is_available
    if not is_available("cupy"):
        pytest.skip("CuPy backend unavailable")
    sn.manual_seed(0)
    model = conv_autoencoder().to("cupy")
    save_checkpoint(tmp_path / "c.npz", model, optim.Adam(model.parameters()))
    code = ("import sys; sys.modules['cupy'] = None\n"        # as on a machine without CuPy
            "from scratchnet.checkpoint import load_checkpoint\n"
            "from scratchnet.models import conv_autoencoder\n"
            f"load_checkpoint({str(tmp_path / 'c.npz')!r}, conv_autoencoder()); print('ok')")
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "ok"


def test_resume_refuses_options_it_would_not_apply(tmp_path):
    sn.manual_seed(0)
    save_checkpoint(tmp_path / "c.npz", conv_autoencoder(), config={"model": "conv"})
    r = run_script("--resume", tmp_path / "c.npz", "--model", "dense", "--lr", "0.1",
                   "--out", tmp_path / "new")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--lr, --model cannot be changed" in r.stderr.splitlines()[-1]
    assert not (tmp_path / "new").exists()


def test_presets_and_explicit_options_combine():
    sys.path.insert(0, str(ROOT / "examples"))
    import train_denoiser as app
    parser = app.build_parser()

    def config(*argv):
        return app.make_config(parser.parse_args(argv), parser, app.explicit_options(list(argv)))
    c = config("--preset", "unet")
    assert (c.model, c.width, c.lr, c.lr_schedule, c.epochs) == ("unet", 32, 2e-3, "cosine", 10)
    c = config("--preset", "unet", "--width", "8", "--lr", "0.01")
    assert (c.width, c.lr, c.lr_schedule) == (8, 0.01, "cosine")
    c = config("--preset", "unet", "--model", "conv")
    assert (c.model, c.width) == ("conv", None)
    assert config().lr_schedule == "constant" and config().model == "conv"


@pytest.mark.gpu
@pytest.mark.realdata
def test_a_cupy_run_through_the_app_matches_the_numpy_run(real_data, tmp_path):
    from conftest import FAKE_CUPY
    from scratchnet.backend import is_available
    if not is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    mse = {}
    for backend in ("numpy", "cupy"):
        r = run_script("--backend", backend, "--epochs", 1, "--limit-train", 2000, "--limit-test", 500,
                       "--data-dir", real_data, "--out", tmp_path / backend, "--no-progress")
        assert r.returncode == 0, r.stderr
        mse[backend] = json.loads((tmp_path / backend / "metrics.json").read_text())["final"]["test_mse"]
    # The stand-in draws the training noise from NumPy's stream, so only float32 rounding could
    # differ; a real GPU draws different (Philox) noise, so the runs only agree statistically.
    assert mse["cupy"] == pytest.approx(mse["numpy"], rel=1e-5 if FAKE_CUPY else 0.05)
