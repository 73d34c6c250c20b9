"""Training on photographs (Train400) as a user runs it: the tiny run through the CLI, a resumed
run bit-identical to a straight one, the NaN guard, Ctrl-C, blind noise, presets and errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import sigint_at_batch
from scratchnet.checkpoint import load_checkpoint, load_model
from scratchnet.data import NoiseSpec
from scratchnet.experiment import (PRESETS, Config, TrainingInterrupted, TrainingStopped,
                                   train)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_denoiser.py"
OUTPUTS = ["samples.png", "noise.png", "loss_iterations.png", "loss_epochs.png", "results.png",
           "metrics.json", "history.csv", "checkpoint.npz"]
TINY = dict(dataset="train400", model="dncnn", depth=3, width=8, batch_size=16, patch_size=24,
            patches_per_image=8, limit_train=8, limit_test=2, lr=1e-3, weight_decay=0.0)


def _quiet(line):
    pass


@pytest.mark.realdata
def test_a_one_epoch_run_on_8_images_through_the_cli(real_photos, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(SCRIPT), "--dataset", "train400", "--sigma", "25",
                        "--limit-train", "8", "--limit-test", "2", "--epochs", "1", "--depth", "4",
                        "--width", "8", "--patches-per-image", "16", "--data-dir", str(real_photos),
                        "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "8 training images (180x180), 2 batches of 64 random 40x40 patches" in r.stdout
    assert "done: bsd68 sigma 25:" in r.stdout
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "finished" and m["config"]["noise"]["clip"] is False
    assert m["config"]["noise"]["factor"] == pytest.approx(25 / 255)
    assert m["validation"]["set"] == "set12" and m["test"]["set"] == "bsd68"
    test = m["test"]["sigmas"]["25"]
    assert len(test["psnr_per_image"]) == 2 and test["psnr"] == pytest.approx(np.mean(test["psnr_per_image"]))
    assert test["noisy_psnr"] == pytest.approx(20.17, abs=0.05)
    assert set(m["final"]["val"]["25"]) == {"psnr", "ssim", "seconds_per_image"}
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,train_mse,val_psnr_25,val_ssim_25,seconds,images_per_s"
    model, meta = load_model(out / "checkpoint.npz")         # what denoise_images will load
    assert model.depth == 4 and meta["test"]["sigmas"]["25"]["psnr"] == test["psnr"]


@pytest.mark.realdata
def test_resume_is_bit_identical_to_a_straight_run(real_photos, tmp_path, monkeypatch):
    """Stopped by Ctrl-C in the middle of epoch 2 and resumed: the same patches, noise, weights,
    losses and scores as a run that never stopped (cosine schedule, blind noise)."""
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "1")       # the count changes the last bits
    cfg = Config(**TINY, epochs=3, lr_schedule="cosine", data_dir=str(real_photos),
                 noise=NoiseSpec.from_sigma(sigma_range=(0, 55)), test_sigmas=[25],
                 patch_scales=[1.0, 0.8])
    train(cfg, tmp_path / "straight", progress=False, log=_quiet)
    real = sigint_at_batch(monkeypatch, 4 + 2)     # epoch 2 (4 batches each), batch 2
    with pytest.raises(TrainingInterrupted, match="interrupted in epoch 2 after batch 2"):
        train(cfg, tmp_path / "first", progress=False, log=_quiet)
    monkeypatch.setattr(NoiseSpec, "apply", real)
    train(cfg, tmp_path / "second", resume=tmp_path / "first" / "checkpoint.npz", progress=False,
          log=_quiet)
    for name in OUTPUTS:
        assert (tmp_path / "second" / name).stat().st_size > 0, name
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "second" / "checkpoint.npz")
    for k in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][k], b["model_state"][k])
    assert a["iteration_losses"] == b["iteration_losses"]
    for h, g in zip(a["history"], b["history"]):
        assert [(v["psnr"], v["ssim"]) for v in h["val"].values()] == \
            [(v["psnr"], v["ssim"]) for v in g["val"].values()]
    assert a["test"]["sigmas"]["25"]["psnr_per_image"] == b["test"]["sigmas"]["25"]["psnr_per_image"]
    assert b["config"]["patch_scales"] == [1.0, 0.8]          # the resumed run kept its scales


@pytest.mark.realdata
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(real_photos, tmp_path, monkeypatch):
    real = NoiseSpec.apply
    calls = []

    def poisoned(spec, x, rng):
        calls.append(1)
        y = real(spec, x, rng)
        return y * np.nan if len(calls) == 4 + 3 else y

    monkeypatch.setattr(NoiseSpec, "apply", poisoned)
    cfg = Config(**TINY, epochs=2, data_dir=str(real_photos), noise=NoiseSpec.from_sigma(25))
    with pytest.raises(TrainingStopped, match=r"loss became nan in epoch 2, batch 3.*epoch 1\)"):
        train(cfg, tmp_path / "run", progress=False, log=_quiet)
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for v in meta["model_state"].values())
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"].startswith("stopped")


@pytest.mark.realdata
def test_blind_runs_are_scored_at_15_25_and_50(real_photos, tmp_path):
    cfg = Config(**{**TINY, "limit_test": 1}, epochs=1, data_dir=str(real_photos),
                 noise=NoiseSpec.from_sigma(sigma_range=(0, 55)))
    lines = []
    m = train(cfg, tmp_path / "run", progress=False, log=lines.append)
    assert set(m["test"]["sigmas"]) == set(m["final"]["val"]) == {"15", "25", "50"}
    noisy = m["validation"]["noisy"]
    assert noisy["15"]["psnr"] > noisy["25"]["psnr"] > noisy["50"]["psnr"]
    assert any(line.startswith("bsd68 (1 images): sigma 15:") for line in lines)


def test_presets():
    cpu = PRESETS["photo-cpu"]
    steps = cpu["epochs"] * -(-400 * cpu["patches_per_image"] // cpu["batch_size"])
    assert steps == 2000 and (cpu["depth"], cpu["width"], cpu["batch_size"]) == (10, 32, 64)
    for name in ("dncnn-s", "dncnn-b"):
        p = PRESETS[name]
        assert (p["depth"], p["width"], p["batch_size"]) == (17, 64, 128)
    assert PRESETS["dncnn-b"]["noise"].factor_range == (0, 55 / 255)
    assert PRESETS["dncnn-s"]["patch_scales"] == PRESETS["dncnn-b"]["patch_scales"] == [1, 0.9, 0.8, 0.7]
    assert "patch_scales" not in cpu                            # its measured runs had none


def _cli(*args):
    sys.path.insert(0, str(ROOT / "examples"))
    import train_denoiser
    return train_denoiser


@pytest.mark.parametrize("args,message", [
    (["--dataset", "train400", "--noise-factor", "0.3"], "argument --noise-factor: photographs take"),
    (["--dataset", "train400", "--no-clip"], "argument --no-clip: photographs take"),
    (["--sigma", "25"], "argument --sigma: only for photographs"),
    (["--dataset", "train400", "--model", "conv"], "argument --model: conv takes 28x28 digits only"),
    (["--dataset", "train400", "--sigma-range", "50", "10"], "LOW must be <= HIGH"),
    (["--dataset", "train400", "--sigma", "256"], "expected a sigma in [0, 255]"),
    (["--dataset", "train400", "--depth", "1"], "DnCNN needs at least 2 convolutions"),
    (["--model", "unet", "--depth", "3"], "only --model dncnn has a depth"),
    (["--patch-scales", "0.9"], "argument --patch-scales: only for photographs"),
    (["--dataset", "train400", "--patch-scales", "1", "0.8", "1"], "the factors must differ"),
    (["--dataset", "train400", "--patch-scales", "0"], "expected a finite number > 0"),
])
def test_bad_arguments_get_one_line_errors(args, message, tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert message in r.stderr and not (tmp_path / "o").exists()


@pytest.mark.realdata
@pytest.mark.parametrize("args,message", [
    (["--patch-size", "200"], "error: train400: patch_size 200 is larger than the images (180x180)"),
    (["--patch-scales", "1", "0.2"],
     "error: train400: scale 0.2 makes the 180x180 images 36x36, smaller than the 40x40 patches")])
def test_patches_that_do_not_fit_the_images_get_one_line(real_photos, args, message, tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--dataset", "train400", "--limit-train", "2",
                        "--data-dir", str(real_photos), *args, "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == message, r.stderr
    assert not (tmp_path / "o").exists()


def test_train400_defaults_to_the_cpu_preset_and_sigma_25():
    train_denoiser = _cli()
    parser = train_denoiser.build_parser()
    argv = ["--dataset", "train400"]
    config = train_denoiser.make_config(parser.parse_args(argv), parser,
                                        train_denoiser.explicit_options(argv))
    assert (config.model, config.depth, config.width, config.epochs) == ("dncnn", 10, 32, 4)
    assert config.noise == NoiseSpec.from_sigma(25)
    argv = ["--preset", "dncnn-b", "--epochs", "2"]
    config = train_denoiser.make_config(parser.parse_args(argv), parser,
                                        train_denoiser.explicit_options(argv))
    assert config.dataset == "train400" and config.noise.blind and config.epochs == 2


@pytest.mark.gpu
@pytest.mark.realdata
def test_a_cupy_run_trains_scores_and_loads_on_numpy(real_photos, tmp_path):
    from scratchnet import backend
    if not backend.is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    cfg = Config(**TINY, epochs=1, backend="cupy", data_dir=str(real_photos),
                 noise=NoiseSpec.from_sigma(sigma_range=(0, 55)), test_sigmas=[25])
    m = train(cfg, tmp_path / "run", progress=False, log=_quiet)
    assert np.isfinite(m["test"]["sigmas"]["25"]["psnr"])
    model, _ = load_model(tmp_path / "run" / "checkpoint.npz")          # written from CuPy
    assert model.backend == "numpy"
