"""Crash tests: the real command line killed, interrupted, raced, starved of disk and fed
diverging settings, and every file reader a user can point at fuzzed with hypothesis. Each
failure must end in one line (no traceback), with nothing a user made lost."""
import errno
import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import scratchnet as sn
from scratchnet import fileio, nn, optim
from scratchnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scratchnet.data import DatasetError, read_idx
from scratchnet.experiment import Config, TrainingStopped, train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_denoiser.py"
sys.path.insert(0, str(ROOT / "examples"))
import denoise_images  # noqa: E402
import train_denoiser  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = ["--limit-train", "1024", "--limit-test", "200", "--no-progress"]


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


# --- processes ------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "1")       # the count changes the last bits
    # 8192 images make an epoch last about 2 s here (1024 took 0.3 s, so a kill 0.5 s after
    # epoch 1 sometimes landed after epoch 2's checkpoint); the kill comes 0.2 s into epoch 2.
    common = ["--data-dir", real_data, "--epochs", 3, *SMALL, "--limit-train", 8192]
    assert run(*common, "--out", tmp_path / "straight").returncode == 0
    proc = cli(*common, "--out", tmp_path / "killed", env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:                              # wait for epoch 1's checkpoint
        if line.startswith("epoch 1:"):
            break
    time.sleep(0.2)                                       # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.npz")["epoch"] == 1, \
        "the kill landed after epoch 2's checkpoint: the epoch is too short to kill inside"
    r = run("--resume", tmp_path / "killed" / "checkpoint.npz", "--data-dir", real_data,
            "--out", tmp_path / "resumed", "--no-progress")
    assert r.returncode == 0, r.stderr
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    for k in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][k], b["model_state"][k])
    assert a["history"] == [dict(h, seconds=a["history"][i]["seconds"],
                                 images_per_s=a["history"][i]["images_per_s"])
                            for i, h in enumerate(b["history"])]
    assert a["iteration_losses"] == b["iteration_losses"]


@pytest.mark.realdata
def test_two_runs_started_into_one_out_directory(real_data, tmp_path):
    args = ["--data-dir", real_data, "--epochs", 1, "--limit-train", 256, "--limit-test", 64,
            "--no-progress", "--out", tmp_path / "same"]
    procs = [cli(*args), cli(*args)]
    results = [(p.returncode, p.communicate(timeout=600)[1]) for p in procs]
    results = [(p.returncode, err) for p, (_, err) in zip(procs, results)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert "argument --out" in refusal.splitlines()[-1] and "Traceback" not in refusal


# --- disk full --------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("victim", ["checkpoint.npz", "metrics.json", "results.png"])
def test_disk_full_ends_in_one_line_and_keeps_the_last_checkpoint(real_data, tmp_path, monkeypatch,
                                                                  capsys, victim):
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):                        # the victim's second write finds the disk full
        name = os.readlink(f"/proc/self/fd/{fd}")
        if Path(name).name.startswith(f".{victim}."):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    out = tmp_path / "run"
    code = train_denoiser.main(["--data-dir", str(real_data), "--epochs", "3", "--out", str(out),
                                "--limit-train", "256", "--limit-test", "64", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert f"cannot write {out / victim} (No space left on device)" in err[0]
    expected_epoch = 1 if victim == "checkpoint.npz" else 2      # the checkpoint comes first
    assert f"the last good checkpoint (epoch {expected_epoch}) is {out / 'checkpoint.npz'}" in err[0]
    assert load_checkpoint(out / "checkpoint.npz")["epoch"] == expected_epoch
    assert not list(out.glob(".*.part"))                       # no temporary file left behind


# --- diverging runs ---------------------------------------------------------------------------
@pytest.mark.realdata
def test_non_finite_loss_before_any_checkpoint_says_so(real_data, tmp_path, monkeypatch):
    from scratchnet.data import NoiseSpec
    real_apply = NoiseSpec.apply                  # the training batches' noise
    monkeypatch.setattr(NoiseSpec, "apply", lambda spec, x, rng: real_apply(spec, x, rng) * np.nan)
    cfg = Config(data_dir=str(real_data), limit_train=256, limit_test=64, epochs=2, batch_size=32)
    with pytest.raises(TrainingStopped, match="no checkpoint was written yet, so this run cannot "
                                              "be resumed"):
        train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.realdata
@pytest.mark.parametrize("lr", ["1e9", "1e6"])
def test_a_huge_learning_rate_prints_no_numpy_warnings(real_data, tmp_path, lr):
    p = cli("--data-dir", real_data, "--lr", lr, "--epochs", 2, *SMALL, "--out", tmp_path / "run")
    out, err = p.communicate(timeout=600)
    assert "Warning" not in err and "Traceback" not in err, err
    if p.returncode == 1:                                      # it diverged: one honest line
        assert len(err.strip().splitlines()) == 1 and "stopped:" in err
        meta = tmp_path / "run" / "checkpoint.npz"
        assert ("no checkpoint was written yet" in err) == (not meta.exists())
    else:
        assert p.returncode == 0


# --- parameters and dtypes --------------------------------------------------------------------
def test_parameter_data_keeps_shape_and_grad_consistent():
    conv = nn.Conv2d(1, 2, 3)
    with pytest.raises(ValueError, match=r"new array has shape \(5, 5\), the parameter's shape is \(2, 1, 3, 3\)"):
        conv.weight.data = np.zeros((5, 5))
    conv.weight.data = conv.weight.data.astype("float64")
    assert conv.weight.grad.dtype == np.float64 and not conv.weight.grad.any()
    same = conv.weight.grad
    conv.weight.data = conv.weight.data * 2                    # same dtype: grad kept
    assert conv.weight.grad is same


def test_optimizer_state_follows_a_parameter_that_changed_dtype():
    sn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    opt = optim.Adam(model.parameters())
    x = np.random.default_rng(0).random((2, 1, 5, 5), dtype=np.float32)
    model.backward(np.ones_like(model(x)))
    opt.step()
    model.double()
    model.backward(np.ones_like(model(x.astype("float64"))))
    opt.step()
    assert all(v.dtype == np.float64 for s in opt.state.values() for v in s.values() if hasattr(v, "dtype"))


def test_float16_is_refused_with_a_dtype_that_works():
    with pytest.raises(TypeError, match="float16 is not supported; expected 'float32' or 'float64'"):
        nn.Conv2d(1, 1, 3).to("float16")
    with pytest.raises(TypeError) as e:
        nn.Conv2d(1, 1, 3)(np.zeros((1, 1, 4, 4), np.float16))
    assert "float16" not in str(e.value).split(";")[1]          # the hint names a dtype that works


def test_help_shows_each_default_once():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    text = " ".join(r.stdout.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("[default: 10]") == 1 and "(default: 10)" not in text


# --- denoise_images ----------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    sn.manual_seed(0)
    from scratchnet.models import conv_autoencoder
    save_checkpoint(tmp_path / "c.npz", conv_autoencoder(),
                    config={"model": "conv", "noise": "gaussian", "dataset": "mnist"})
    return tmp_path / "c.npz"


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_denoise_images_refuses_an_existing_out_in_one_line(checkpoint, tmp_path, existing):
    target = tmp_path / existing
    target.write_text("x") if existing == "file" else (target.mkdir(), (target / "keep").write_text("k"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "denoise_images.py"), "--checkpoint",
                        str(checkpoint), "--out", str(target), str(tmp_path / "a.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "already exists" in r.stderr
    assert existing == "file" or sorted(p.name for p in target.iterdir()) == ["keep"]


def test_denoise_images_missing_checkpoint_exits_2_and_labels_rows(checkpoint, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exc:
        denoise_images.main(["--checkpoint", str(tmp_path / "none.npz"), str(tmp_path / "a.png")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert denoise_images.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "d"),
                                str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "d" / "a_denoised.png").is_file()


def test_denoise_images_lists_every_bad_file_and_writes_nothing(checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(folder / f"ok{i}.png")
    (folder / "bad1.png").write_bytes(b"not an image")
    (folder / "bad2.jpg").write_bytes(b"\xff\xd8\xff broken jpeg")
    code = denoise_images.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "den"),
                                str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2                                  # every input is checked before any is written
    assert sum("bad1.png" in line for line in err) == 1 and sum("bad2.jpg" in line for line in err) == 1
    assert err[-1] == "nothing was written: 2 inputs cannot be denoised"
    assert not (tmp_path / "den").exists()


# --- fuzzing every reader ------------------------------------------------------------------------
def _valid_checkpoint_bytes() -> bytes:
    sn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    buf = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz-{os.getpid()}.npz"
    save_checkpoint(buf, model, optim.Adam(model.parameters()), config={"model": "conv"}, epoch=1)
    data = buf.read_bytes()
    buf.unlink()
    return data


VALID_CHECKPOINT = _valid_checkpoint_bytes()


def mutated(valid: bytes):
    """Random bytes, or the valid file truncated, with bytes flipped, or with bytes inserted."""
    pos = st.integers(0, len(valid) - 1)
    return st.one_of(
        st.binary(max_size=600),
        pos.map(lambda i: valid[:i]),
        st.tuples(pos, st.integers(1, 255)).map(lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:]),
        st.tuples(pos, st.binary(min_size=1, max_size=16)).map(lambda t: valid[:t[0]] + t[1] + valid[t[0]:]))


@FUZZ
@given(data=mutated(VALID_CHECKPOINT))
def test_fuzz_checkpoint_reader(tmp_path, data):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(data)
    sn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    try:
        load_checkpoint(path, model, optim.Adam(model.parameters()))
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]   # nothing written


def _idx_bytes() -> bytes:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    return b"\x00\x00\x08\x03" + np.array(images.shape, ">u4").tobytes() + images.tobytes()


@FUZZ
@given(data=mutated(_idx_bytes()), compress=st.booleans())
def test_fuzz_idx_reader(tmp_path, data, compress):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        out = read_idx(path)
        assert out.dtype == np.uint8
    except DatasetError as exc:
        assert "\n" not in str(exc)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@FUZZ
@given(data=mutated(_png_bytes()))
def test_fuzz_image_reader(tmp_path, data):
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    try:
        x = denoise_images.load_digit(path, invert=True)
        assert x.shape == (28, 28) and x.dtype == np.float32
    except ValueError as exc:
        assert "not a readable image" in str(exc) and "\n" not in str(exc)
    from scratchnet.images import ImageError, read_image
    try:                                          # the photo reader: decoded whole, or one line
        picture = read_image(path)
        assert picture.pixels.dtype == np.float32 and picture.bits in (8, 16)
    except ImageError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)


# --- a checkpoint's configuration and run state, validated ---------------------------------------
def _resumable(tmp_path, **changes):
    """A training checkpoint whose config or state fields are replaced by ``changes``."""
    from scratchnet import optim as _optim
    from scratchnet.models import conv_autoencoder
    config = Config(limit_train=64, limit_test=32, epochs=2).to_dict()
    meta = {"epoch": 1, "batch": 0, "history": [], "iteration_losses": []}
    for key, value in changes.items():
        if key in meta:
            meta[key] = value
        elif value is KeyError:
            config.pop(key)
        else:
            config[key] = value
    model = conv_autoencoder()
    path = tmp_path / "run" / "checkpoint.npz"
    path.parent.mkdir()
    save_checkpoint(path, model, _optim.Adam(model.parameters()), config=config, **meta)
    return path


@pytest.mark.parametrize("change,message", [
    ({"model": ["conv"]}, "config model is ['conv']; expected one of ['conv', 'dense', 'dncnn', 'unet']"),
    ({"noise": KeyError}, None),        # an old flat checkpoint without the key: gaussian, valid
    ({"dataset": KeyError}, "the run configuration has no 'dataset'"),
    ({"noise": {"kind": "pink", "factor": 0.5}}, "unknown noise 'pink'"),
    ({"noise": {"kind": "gaussian", "factor": float("nan")}}, "noise factor must be a finite number"),
    ({"dtype": "int8"}, "config dtype is 'int8'; expected one of ['float32', 'float64']"),
    ({"epoch": "x"}, "checkpoint field epoch is 'x'; expected an integer >= 0"),
    ({"batch_size": 0}, "config batch_size is 0; expected an integer >= 1"),
    ({"lr": "fast"}, "config lr is 'fast'; expected a finite number > 0"),
    ({"seed": -1}, "config seed is -1; expected an integer >= 0"),
])
def test_a_bad_checkpoint_config_is_one_line_before_any_folder(tmp_path, capsys, change, message):
    path = _resumable(tmp_path, **change)
    out = tmp_path / "resumed"
    if message is None:                 # valid: accepted (then stopped: no data needed here)
        from scratchnet.checkpoint import load_checkpoint as _load
        assert Config.from_dict(_load(path)["config"]).noise.kind == "gaussian"
        return
    with pytest.raises(SystemExit) as exc:
        train_denoiser.main(["--resume", str(path), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert f"argument --resume: checkpoint {path}: " in err[0] and message in err[0], err[0]
    assert not out.exists()


def test_config_validate_names_the_field():
    with pytest.raises(ValueError, match=r"config patch_size is 2.5; expected an integer >= 1"):
        Config(patch_size=2.5).validate()
    with pytest.raises(ValueError, match=r"config test_sigmas is \[25, nan\]"):
        Config(test_sigmas=[25, float("nan")]).validate()
    Config().validate()


def test_seed_minus_one_is_a_usage_error(tmp_path):
    r = run("--seed", "-1", "--out", tmp_path / "r")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "argument --seed: expected an integer >= 0, got '-1'" in r.stderr
    assert not (tmp_path / "r").exists()


def test_a_parameter_given_to_adam_twice_is_refused():
    from scratchnet import nn, optim
    layer = nn.Linear(2, 3)
    with pytest.raises(ValueError, match=r"Adam: a parameter of shape \(3, 2\) is given twice"):
        optim.Adam([layer.weight, layer.bias, layer.weight])
    with pytest.raises(ValueError, match="given twice"):
        optim.SGD([{"params": [layer.weight]}, {"params": [layer.weight], "lr": 0.1}], lr=0.01)


@pytest.mark.realdata
def test_divergence_from_a_huge_weight_decay_names_it(real_data, tmp_path):
    # Adam normalises a merely large decay away; 1e39 * p overflows float32 at the first step
    r = run("--data-dir", real_data, "--epochs", 1, *SMALL, "--weight-decay", "1e39",
            "--out", tmp_path / "r")
    assert r.returncode == 1 and "loss became nan in epoch 1" in r.stderr, r.stderr
    assert "--weight-decay 1e+39 is unusually large (the presets use 1e-5 or 0)" in r.stderr


def test_default_run_names_taken_get_a_suffix(tmp_path):
    import argparse
    parser = argparse.ArgumentParser()
    first = train_denoiser.make_out_dir(tmp_path / "mnist-x", parser, chosen=False)
    second = train_denoiser.make_out_dir(tmp_path / "mnist-x", parser, chosen=False)
    assert (first, second) == (tmp_path / "mnist-x", tmp_path / "mnist-x-2")
    with pytest.raises(SystemExit):
        train_denoiser.make_out_dir(tmp_path / "mnist-x", parser, chosen=True)
