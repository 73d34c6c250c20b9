"""examples/evaluate_denoiser.py on photographs: checkpoints beside the classical baselines on a
folder of images at several sigmas (per-image CSV, JSON means, the crops figure), the same
noisy images for every method, BM3D's install line, and one-line usage errors."""
import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scratchnet as sn
from scratchnet import baselines
from scratchnet.checkpoint import save_checkpoint
from scratchnet.data import NoiseSpec
from scratchnet.models import DnCNN, conv_autoencoder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import evaluate_denoiser  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    """Three smooth 8-bit grayscale photos (one colour, scored on its luma) of two sizes."""
    d = tmp_path / "photos"
    d.mkdir()
    y, x = np.mgrid[0:40, 0:48]
    for i in range(2):
        Image.fromarray((120 + 80 * np.sin(x / (5 + i)) * np.cos(y / 7)).astype(np.uint8)).save(d / f"p{i}.png")
    rgb = np.dstack([(100 + 60 * np.sin(y / 4)).astype(np.uint8)] * 3)[:, :36]
    Image.fromarray(rgb).save(d / "c.png")
    return d


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "scores.csv").read_text())))


def _checkpoint(path, sigma=25, blind=False, model=None):
    sn.manual_seed(0)
    model = model or DnCNN(3, 4)
    spec = NoiseSpec.from_sigma(sigma_range=(0, 55)) if blind else NoiseSpec.from_sigma(sigma)
    config = ({"model": "dncnn", "width": 4, "depth": 3, "dataset": "train400",
               "noise": dataclasses.asdict(spec)} if isinstance(model, DnCNN)
              else {"model": "conv", "dataset": "mnist"})
    save_checkpoint(path, model, config=config)
    return path


def test_checkpoints_and_baselines_per_image_and_on_average(folder, tmp_path, capsys):
    a = _checkpoint(tmp_path / "a.npz", 25)
    b = _checkpoint(tmp_path / "b.npz", blind=True)
    out = tmp_path / "out"
    assert evaluate_denoiser.main([str(a), str(b), "--images", str(folder), "--sigma", "15", "50",
                                   "--baselines", "wavelet", "tv", "--out", str(out),
                                   "--no-progress"]) == 0
    rows = _rows(out)
    methods = {r["method"] for r in rows}
    assert methods == {"noisy input", "dncnn d3 w4 (train400, gaussian sigma 25)",
                       "dncnn d3 w4 (train400, gaussian sigma 0-55)", "wavelet", "tv"}
    assert len(rows) == 5 * 2 * 3                       # methods x sigmas x images
    summary = json.loads((out / "scores.json").read_text())["summary"]
    noisy = {s["sigma"]: s["psnr"] for s in summary if s["method"] == "noisy input"}
    assert noisy[15] > noisy[50] + 8                     # 20 log10(50 / 15) = 10.5 dB
    wavelet = [s for s in summary if s["method"] == "wavelet" and s["sigma"] == 50][0]
    assert wavelet["psnr"] > noisy[50] + 3 and wavelet["images"] == 3
    mean = np.mean([float(r["psnr"]) for r in rows if r["method"] == "wavelet" and r["sigma"] == "50.0"])
    assert mean == pytest.approx(wavelet["psnr"])         # the mean over the images
    assert (out / "crops.png").stat().st_size > 0
    assert "mean over the images" in capsys.readouterr().out


def test_default_sigmas_are_the_checkpoints_own(folder, tmp_path, capsys):
    a = _checkpoint(tmp_path / "a.npz", 30)
    assert evaluate_denoiser.main([str(a), "--images", str(folder), "--baselines", "--out",
                                   str(tmp_path / "o1"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "o1")
    assert {r["sigma"] for r in rows} == {"30.0"}
    b = _checkpoint(tmp_path / "b.npz", blind=True)
    assert evaluate_denoiser.main([str(b), "--images", str(folder), "--baselines", "--out",
                                   str(tmp_path / "o2"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "o2")
    assert {r["sigma"] for r in rows} == {"15.0", "25.0", "50.0"}


def test_every_method_sees_the_same_noisy_images(folder, tmp_path, monkeypatch):
    seen = []
    real = baselines.denoise_baseline

    def spy(name, noisy, sigma):
        seen.append((name, noisy.copy()))
        return real(name, noisy, sigma)
    monkeypatch.setattr(evaluate_denoiser, "denoise_baseline", spy)
    assert evaluate_denoiser.main(["--images", str(folder), "--sigma", "20", "--baselines", "wavelet",
                                   "tv", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    by = {name: [x for n, x in seen if n == name] for name in ("wavelet", "tv")}
    for x, y in zip(by["wavelet"], by["tv"]):
        np.testing.assert_array_equal(x, y)
    clean = np.asarray(Image.open(folder / "c.png").convert("L"), np.float32) / 255
    assert 17 / 255 < (by["tv"][0] - clean).std() < 23 / 255            # image 0 is c.png


def test_bm3d_missing_is_one_line_saying_how_to_install(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(baselines.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        evaluate_denoiser.main(["--images", str(folder), "--baselines", "bm3d", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install -e ".[baselines]"' in err
    assert evaluate_denoiser.main(["--images", str(folder), "--sigma", "25", "--out",
                                   str(tmp_path / "o2"), "--no-progress"]) == 0
    assert "note: BM3D is left out" in capsys.readouterr().err


@pytest.mark.skipif(not baselines.available("bm3d"), reason="the optional bm3d package is not installed")
def test_bm3d_beats_the_noisy_input(folder, tmp_path):
    assert evaluate_denoiser.main(["--images", str(folder), "--sigma", "25", "--baselines", "bm3d",
                                   "--limit-test", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "o" / "scores.json").read_text())["summary"]
    psnr = {s["method"]: s["psnr"] for s in summary}
    assert psnr["bm3d"] > psnr["noisy input"] + 5


@pytest.mark.parametrize("make,args,message", [
    (None, ["--images", "nowhere"], "argument --images: nowhere is neither a folder nor one of"),
    ("digits", [], "takes 28x28 digits only, not photographs"),
    (None, ["--baselines"], "nothing to score"),
    (None, ["--sigma", "400"], "expected a sigma in [0, 255]"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(folder, tmp_path, capsys, make, args, message):
    ck = []
    if make == "digits":
        ck = [str(_checkpoint(tmp_path / "d.npz", model=conv_autoencoder()))]
    argv = ck + (args if "--images" in args else ["--images", str(folder), *args])
    with pytest.raises(SystemExit) as exc:
        evaluate_denoiser.main(argv + ["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.realdata
def test_the_baselines_reproduce_the_measured_set12_numbers(real_photos, tmp_path):
    """NL-means, TV and wavelet on the first three Set12 images at sigma 25, against values
    measured with this protocol (docs/photos.md gives the whole sets)."""
    assert evaluate_denoiser.main(["--images", "set12", "--data-dir", str(real_photos), "--sigma",
                                   "25", "--limit-test", "3", "--baselines", "wavelet", "tv",
                                   "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "o" / "scores.json").read_text())["summary"]
    psnr = {s["method"]: s["psnr"] for s in summary}
    assert psnr["noisy input"] == pytest.approx(20.17, abs=0.05)
    assert psnr["wavelet"] > psnr["noisy input"] + 5 and psnr["tv"] > psnr["wavelet"]
