"""Scoring (MSE, PSNR, SSIM) and examples/evaluate_denoiser.py: metrics, pairing, repeatability,
every shipped model type end to end on generated data, and bad input."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import scratchnet as sn
from scratchnet.checkpoint import save_checkpoint
from scratchnet.data import add_noise
from scratchnet.evaluation import mean_ssim, score_images, score_model
from scratchnet.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "evaluate_denoiser.py"
sys.path.insert(0, str(ROOT / "examples"))
import evaluate_denoiser as app  # noqa: E402


def digits(n=64, seed=0):
    """Blurry strokes on black, like MNIST, in [0, 1]: (n, 1, 28, 28) float32."""
    r = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 28), np.float32)
    for i in range(n):
        r0, c0 = r.integers(4, 14, 2)
        x[i, 0, r0:r0 + 12, c0:c0 + 3] = 1
        x[i, 0, r0:r0 + 3, c0:c0 + 10] = r.uniform(0.5, 1)
    return x


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    clean = digits(20)
    assert mean_ssim(clean, clean) == pytest.approx(1.0)
    values = [mean_ssim(clean, add_noise("gaussian", clean, f, rng=sn.backend.default_rng(0)))
              for f in (0.05, 0.2, 0.5, 1.0)]
    assert all(a > b for a, b in zip(values, values[1:])) and values[0] < 1


def test_mean_ssim_is_the_mean_of_scikit_image_per_image():
    clean = digits(30)
    noisy = add_noise("gaussian", clean, 0.3, rng=sn.backend.default_rng(1))
    per_image = [structural_similarity(c[0].astype(float), n[0].astype(float), data_range=1.0)
                 for c, n in zip(clean, noisy)]
    assert mean_ssim(clean, noisy, chunk=7) == pytest.approx(np.mean(per_image), abs=1e-12)


def test_noisy_input_psnr_falls_monotonically_with_the_factor():
    clean = digits(40)
    psnrs = [score_images(clean, add_noise("gaussian", clean, f, rng=sn.backend.default_rng(1234)))["psnr"]
             for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:]))


def test_score_model_restores_the_mode_and_matches_a_direct_computation():
    sn.manual_seed(0)
    model = build_model("unet", 4)
    clean = digits(10)
    noisy = add_noise("gaussian", clean, 0.5, rng=sn.backend.default_rng(0))
    scores = score_model(model, clean, noisy, batch_size=3)
    assert model.training
    out = model.eval()(noisy)
    assert scores["mse"] == pytest.approx(float(((out - clean) ** 2).mean()), rel=1e-6)
    assert scores["ssim"] == pytest.approx(mean_ssim(clean, out), abs=1e-9)


@pytest.fixture
def checkpoints(tmp_path):
    """One trained-looking checkpoint of every shipped model type."""
    paths = []
    for name, width in (("conv", None), ("dense", None), ("unet", 4)):
        sn.manual_seed(0)
        model = build_model(name, width)
        model(digits(8))                                 # batch norm: some running statistics
        config = {"model": name, "width": width, "dataset": "mnist", "noise": "gaussian",
                  "noise_factor": 0.4}
        run = tmp_path / f"run-{name}"
        run.mkdir()
        save_checkpoint(run / "checkpoint.npz", model, config=config)
        paths.append(run / "checkpoint.npz")
    return paths


@pytest.fixture
def fake_test_split(monkeypatch):
    images = (digits(48, seed=3) * 255).astype(np.uint8)[:, 0]
    monkeypatch.setattr(app, "load_dataset", lambda name, split, *a, **k: (images, np.zeros(48, np.uint8)))
    return images


def test_sweep_end_to_end_for_every_model_type_is_repeatable(checkpoints, fake_test_split, tmp_path):
    outs = [tmp_path / "eval1", tmp_path / "eval2"]
    for out in outs:
        assert app.main([*map(str, checkpoints), "--out", str(out), "--no-progress"]) == 0
    for name in ("sweep.csv", "sweep.json", "quality_vs_noise.png", "examples_vs_noise.png"):
        assert (outs[0] / name).stat().st_size > 0
    runs = [json.loads((o / "sweep.json").read_text()) for o in outs]
    assert runs[0]["rows"] == runs[1]["rows"]                        # identical numbers
    assert runs[0]["factors"] == [0.1, 0.25, 0.4, 0.5, 0.75, 1.0]     # training factor added
    models = {r["model"] for r in runs[0]["rows"]}
    assert models == {"noisy input", "conv (mnist)", "dense (mnist)", "unet w4 (mnist)"}
    lines = (outs[0] / "sweep.csv").read_text().splitlines()
    assert lines[0] == "model,dataset,noise,factor,mse,psnr,ssim,checkpoint" and len(lines) == 1 + 6 * 4


def test_every_model_sees_the_same_noisy_images(checkpoints, fake_test_split, tmp_path, monkeypatch):
    seen, calls = {}, []
    real = app.score_model

    def spy(model, clean, noisy, *a, **k):          # 3 checkpoints per level, level by level
        level = len(calls) // 3
        calls.append(level)
        seen.setdefault(level, set()).add(hashlib.sha256(np.ascontiguousarray(noisy)).hexdigest())
        return real(model, clean, noisy, *a, **k)

    monkeypatch.setattr(app, "score_model", spy)
    assert app.main([*map(str, checkpoints), "--out", str(tmp_path / "e"), "--no-progress",
                     "--factors", "0.2,0.6"]) == 0
    assert len(seen) == 3 and all(len(hashes) == 1 for hashes in seen.values())   # per level
    assert len(set.union(*seen.values())) == 3                    # and the levels differ


def test_checkpoints_of_different_datasets_are_each_scored_on_their_own(checkpoints, fake_test_split,
                                                                        tmp_path):
    meta_dataset = tmp_path / "run-fashion"
    meta_dataset.mkdir()
    save_checkpoint(meta_dataset / "checkpoint.npz", build_model("conv"),
                    config={"model": "conv", "dataset": "fashion-mnist", "noise": "gaussian",
                            "noise_factor": 0.5})
    assert app.main([str(checkpoints[0]), str(meta_dataset / "checkpoint.npz"), "--out",
                     str(tmp_path / "e"), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "e" / "sweep.json").read_text())["rows"]
    assert {(r["model"], r["dataset"]) for r in rows if r["model"] != "noisy input"} == {
        ("conv (mnist)", "mnist"), ("conv (fashion-mnist)", "fashion-mnist")}


def test_labels_name_model_and_recipe_and_stay_distinct(checkpoints, fake_test_split, tmp_path):
    named = tmp_path / "mnist_conv.npz"                  # a renamed checkpoint: its own name
    named.write_bytes(checkpoints[0].read_bytes())
    assert app.main([str(named), str(checkpoints[0]), str(checkpoints[0]), str(checkpoints[2]),
                     "--factors", "0.5", "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "e" / "sweep.json").read_text())["rows"]
    assert [r["model"] for r in rows if r["factor"] == 0.5] == [
        "noisy input", "conv (mnist) [mnist_conv]", "conv (mnist) [run-conv] #1",
        "conv (mnist) [run-conv] #2", "unet w4 (mnist)"]


def test_labels_name_the_settings_that_differ(tmp_path):
    entries = [app.Entry(tmp_path / f"r{i}" / "checkpoint.npz", None,
                         {"model": "unet", "width": 32, "lr": lr, "lr_schedule": sched}, "mnist")
               for i, (lr, sched) in enumerate([(1e-3, "constant"), (2e-3, "cosine"), (1e-3, "constant")])]
    app.label_entries(entries)
    assert [e.label for e in entries] == [
        "unet w32 (mnist), lr 0.001, lr_schedule constant [r0]",
        "unet w32 (mnist), lr 0.002, lr_schedule cosine",
        "unet w32 (mnist), lr 0.001, lr_schedule constant [r2]"]


@pytest.mark.parametrize("index,message", [("-1", "expected an index >= 0, got -1"),
                                           ("48", "48 is past the last of the 48 mnist test images")])
def test_example_index_outside_the_test_set_is_refused(checkpoints, fake_test_split, tmp_path, capsys,
                                                       index, message):
    with pytest.raises(SystemExit) as exc:
        app.main([str(checkpoints[0]), "--example-index", index, "--out", str(tmp_path / "e"),
                  "--no-progress"])
    assert exc.value.code == 2 and not (tmp_path / "e").exists()
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("make,args,message", [
    (lambda d: None, ["--out", "NEW"], "does not exist"),
    (lambda d: (d / "t.npz").write_bytes(b"PK\x03\x04 truncated"), ["--out", "NEW"], "not a readable"),
    (lambda d: (d / "t.npz").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)), ["--out", "NEW"], "not an .npz archive"),
    (lambda d: None, ["--factors", "0.1,a", "--out", "NEW"], "--factors"),
    (lambda d: None, ["--factors", "-0.1", "--out", "NEW"], "--factors"),
    (lambda d: (d / "EXISTS").mkdir(), ["--out", "EXISTS"], "already exists"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, make, args, message):
    make(tmp_path)
    args = [str(tmp_path / a) if a in ("NEW", "EXISTS") else a for a in args]
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "t.npz"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "NEW").exists()


# --- non-finite scores ------------------------------------------------------------------------
def test_psnr_of_nan_is_nan_never_the_best_score():
    import math
    from scratchnet.evaluation import psnr
    assert math.isnan(psnr(float("nan"))) and math.isnan(psnr(-1.0))
    assert psnr(0.0) == math.inf and psnr(float("inf")) == -math.inf
    assert abs(psnr(0.01) - 20.0) < 1e-12


def test_strict_json_has_no_nan_or_infinity(tmp_path):
    import json
    from scratchnet.fileio import atomic_write_json
    atomic_write_json(tmp_path / "m.json", {"psnr": float("nan"), "rows": [1.5, float("inf"), (float("-inf"), 2)]})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"psnr": None, "rows": [1.5, None, [None, 2]]}
