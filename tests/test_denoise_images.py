"""examples/denoise_images.py on photographs: every image at its own size, format and bit depth
(8/16-bit grayscale and colour PNG, JPEG, TIFF), names that never clash, --sigma's PSNR, the
shipped model, and bad input: one line each, exit 2, nothing written."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

import scratchnet as sn
from scratchnet import pretrained
from scratchnet.checkpoint import load_model, save_checkpoint
from scratchnet.data import NoiseSpec
from scratchnet.images import read_image
from scratchnet.models import DnCNN

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import denoise_images  # noqa: E402


def _checkpoint(path: Path, identity: bool = False, channels: int = 1) -> Path:
    """A small photo DnCNN; ``identity``: its last convolution is zero, so it returns its
    input unchanged (every value that goes in comes out: a test of the image plumbing)."""
    sn.manual_seed(0)
    model = DnCNN(3, 4, channels)
    if identity:
        model.layers[-1].weight.data[...] = 0
        model.layers[-1].bias.data[...] = 0
    save_checkpoint(path, model, config={
        "model": "dncnn", "width": 4, "depth": 3, "channels": channels, "dataset": "train400",
        "noise": dataclasses.asdict(NoiseSpec.from_sigma(sigma_range=(0, 55)))})
    return path


@pytest.fixture
def identity(tmp_path):
    return _checkpoint(tmp_path / "identity.npz", identity=True)


def run(*args):
    return denoise_images.main([str(a) for a in args])


R = np.random.default_rng(0)
GRAY16 = R.integers(30000, 40000, (21, 34), dtype=np.uint16)     # all far above 255
RGB16 = R.integers(0, 65536, (21, 34, 3), dtype=np.uint16)
RGB8 = R.integers(0, 256, (21, 34, 3), dtype=np.uint8)


def _save(path: Path, kind: str) -> np.ndarray:
    """Write a test image of ``kind``; returns the pixel values it holds."""
    if kind == "png16-rgb":
        with open(path, "wb") as fh:
            png.Writer(34, 21, greyscale=False, bitdepth=16).write(fh, RGB16.reshape(21, -1))
        return RGB16
    if kind == "png16-la":
        values = np.dstack([GRAY16, RGB16[..., 0]])
        with open(path, "wb") as fh:
            png.Writer(34, 21, greyscale=True, alpha=True, bitdepth=16).write(fh, values.reshape(21, -1))
        return values
    if kind == "tif16-rgb":
        tifffile.imwrite(path, RGB16, photometric="rgb")
        return RGB16
    values = {"png8": RGB8[..., 0], "png16": GRAY16, "png-rgb": RGB8, "png-rgba": np.dstack([RGB8, RGB8[..., :1]]),
              "png-la": np.dstack([RGB8[..., 0], RGB8[..., 1]]), "tif8": RGB8[..., 1], "tif16": GRAY16,
              "jpg": RGB8, "jpg-gray": RGB8[..., 2]}[kind]
    mode = "LA" if kind == "png-la" else None
    Image.fromarray(values, mode=mode).save(path)
    return values


CASES = {"png8": "x.png", "png16": "x.png", "png-rgb": "x.png", "png16-rgb": "x.png", "png16-la": "x.png",
         "png-rgba": "x.png", "png-la": "x.png", "tif8": "x.tif", "tif16": "x.tiff",
         "tif16-rgb": "x.tif", "jpg": "x.jpg", "jpg-gray": "x.jpeg"}


@pytest.mark.parametrize("kind", list(CASES))
def test_every_format_and_bit_depth_comes_out_as_it_went_in(identity, tmp_path, kind):
    """Through the identity model a lossless image comes back bit for bit: same size, mode,
    bit depth (a 16-bit PNG is not clipped at 255 into a blank image), alpha kept."""
    src = tmp_path / CASES[kind]
    values = _save(src, kind)
    assert run("--checkpoint", identity, "--out", tmp_path / "out", src) == 0
    out = tmp_path / "out" / (src.stem + "_denoised" + src.suffix.lower())
    a, b = read_image(src), read_image(out)
    assert (b.bits, b.format, b.pixels.shape) == (a.bits, a.format, a.pixels.shape)
    if kind.startswith("jpg"):
        assert np.abs(b.pixels - a.pixels).mean() < 4 / 255         # JPEG: lossy, quality 95
    else:
        scale = 65535 if a.bits == 16 else 255
        np.testing.assert_array_equal(np.rint(b.pixels * scale).astype(values.dtype), values)
    if kind.startswith("png16"):
        with Image.open(out) as im:
            assert im.mode == {"png16": "I;16", "png16-rgb": "RGB", "png16-la": "RGBA"}[kind]   # Pillow's view
        assert png.Reader(bytes=out.read_bytes()).read()[3]["bitdepth"] == 16


def test_a_16_bit_png_is_denoised_at_16_bits(tmp_path):
    """A real denoiser on a 16-bit PNG: the output follows the image (not a blank one, as
    when the input was clipped at 255) and keeps 16-bit precision."""
    ck = _checkpoint(tmp_path / "c.npz")
    y, x = np.mgrid[0:48, 0:64]
    values = (20000 + 300 * x + 200 * y).astype(np.uint16)                # a smooth ramp
    Image.fromarray(values).save(tmp_path / "ramp.png")
    assert run("--checkpoint", ck, "--out", tmp_path / "out", tmp_path / "ramp.png") == 0
    with Image.open(tmp_path / "out" / "ramp_denoised.png") as im:
        out = np.asarray(im).astype(float)
    assert out.std() > 1000 and np.corrcoef(out.ravel(), values.ravel())[0, 1] > 0.9
    assert len(np.unique(out)) > 256                                       # more than 8 bits


def test_inputs_sharing_a_stem_never_overwrite_each_other(identity, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    values = {"a/x.png": R.integers(0, 256, (16, 16), dtype=np.uint8),
              "a/x.jpg": R.integers(0, 256, (16, 16), dtype=np.uint8),
              "b/x.png": R.integers(0, 256, (16, 16), dtype=np.uint8),
              "b/X.png": R.integers(0, 256, (16, 16), dtype=np.uint8)}
    for name, v in values.items():
        Image.fromarray(v).save(tmp_path / name)
    inputs = [tmp_path / n for n in values]
    assert run("--checkpoint", identity, "--out", tmp_path / "out", *inputs, tmp_path / "a") == 0
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(outputs) == 4, outputs                       # a/x.png named twice: once
    printed = dict(line.split(" (", 1)[0:1] + [line.rsplit(" -> ", 1)[1].split(" (")[0]]
                   for line in capsys.readouterr().out.splitlines())
    for name, v in values.items():
        if name.endswith(".png"):                          # lossless: each output is its input
            with Image.open(printed[str(tmp_path / name)]) as im:
                np.testing.assert_array_equal(np.asarray(im), v)


def test_sigma_adds_seeded_noise_writes_it_and_reports_psnr(identity, tmp_path, capsys):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "p.png")
    assert run("--checkpoint", identity, "--out", tmp_path / "o1", "--sigma", 25, tmp_path / "p.png") == 0
    line = capsys.readouterr().out
    assert re.search(r"noisy \d+\.\d\d dB -> denoised \d+\.\d\d dB \(sigma 25\)", line), line
    with Image.open(tmp_path / "o1" / "p_noisy.png") as im:
        noisy = np.asarray(im).astype(float)
    assert 20 < (noisy - RGB8[..., 0]).std() < 30
    assert run("--checkpoint", identity, "--out", tmp_path / "o2", "--sigma", 25, tmp_path / "p.png") == 0
    with Image.open(tmp_path / "o2" / "p_noisy.png") as im:
        np.testing.assert_array_equal(np.asarray(im), noisy)


def test_a_sigma_outside_the_blind_range_gets_a_note(identity, tmp_path, capsys):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "p.png")
    assert run("--checkpoint", identity, "--out", tmp_path / "o", "--sigma", 80, tmp_path / "p.png") == 0
    assert "note: sigma 80 is outside the 0-55 the model was trained for" in capsys.readouterr().err


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    d = tmp_path / "bad"
    d.mkdir()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(d / "tiny.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).convert("P").save(d / "palette.png")
    Image.fromarray(RGB8).convert("CMYK").save(d / "cmyk.jpg")
    frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 128)]
    frames[0].save(d / "anim.png", save_all=True, append_images=frames[1:])
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (d / "text.jpg").write_text("not a jpeg")
    return {"tiny": (d / "tiny.png", "the image is 1x1 pixels; at least 8x8 is needed"),
            "palette": (d / "palette.png", "a palette image (mode P)"),
            "cmyk": (d / "cmyk.jpg", "a CMYK image"),
            "animated": (d / "anim.png", "an animated PNG of 2 frames"),
            "broken": (d / "broken.png", "not an image file Pillow can read"),
            "text": (d / "text.jpg", "not an image file Pillow can read")}


def test_bad_inputs_one_line_each_exit_2_nothing_written(identity, tmp_path, capsys):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "good.png")
    bad = _bad_inputs(tmp_path)
    code = run("--checkpoint", identity, "--out", tmp_path / "out", tmp_path / "good.png",
               *[p for p, _ in bad.values()])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "out").exists()
    assert len(err) == len(bad) + 1 and err[-1].startswith("nothing was written")
    for path, message in bad.values():
        assert sum(str(path) in line and message in line for line in err) == 1, (path, err)


def test_the_pixel_cap_and_a_model_that_cannot_take_the_image(tmp_path, capsys):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "p.png")
    ident = _checkpoint(tmp_path / "i.npz", identity=True)
    assert run("--checkpoint", ident, "--out", tmp_path / "o", "--max-pixels", 100, tmp_path / "p.png") == 2
    err = capsys.readouterr().err
    assert "34x21 is 714 pixels, more than the limit of 100" in err and "--max-pixels" in err
    assert not (tmp_path / "o").exists()
    colour = _checkpoint(tmp_path / "rgb.npz", channels=3)
    assert run("--checkpoint", colour, "--out", tmp_path / "o", tmp_path / "p.png") == 2
    assert "the model takes 3-channel images, this one has 1 channel" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--sigma", "300"], "argument --sigma: expected a sigma in [0, 255]"),
    (["--sigma", "-1"], "argument --sigma: expected a finite number >= 0"),
    (["--noise-factor", "0.3"], "argument --noise-factor: for digit checkpoints"),
    (["--checkpoint", "missing.npz"], "argument --checkpoint: checkpoint missing.npz does not exist"),
])
def test_usage_errors_are_one_line_exit_2(identity, tmp_path, args, message):
    Image.fromarray(RGB8[..., 0]).save(tmp_path / "p.png")
    args = args if "--checkpoint" in args else ["--checkpoint", str(identity), *args]
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "denoise_images.py"), *args,
                        "--out", str(tmp_path / "o"), str(tmp_path / "p.png")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert message in r.stderr and not (tmp_path / "o").exists()


def test_a_folder_with_no_images(identity, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        run("--checkpoint", identity, "--out", tmp_path / "o", tmp_path / "empty")
    assert exc.value.code == 2 and "is a folder with no images" in capsys.readouterr().err


def test_help_says_what_happens_to_each_kind_of_checkpoint_with_examples():
    text = denoise_images.build_parser().format_help()
    for words in ("Without --checkpoint, the blind grayscale DnCNN shipped", "photographs (",
                  "digits (checkpoints trained on mnist", "16-bit", "exits\nwith status 2",
                  "examples:", "python examples/denoise_images.py photo.jpg"):
        assert words in text, words


# --- the shipped model --------------------------------------------------------------------
def test_the_shipped_model_loads_like_a_checkpoint_and_is_small():
    path = pretrained.path()
    assert path.stat().st_size <= 2 * 2**20
    model, meta = load_model(path)
    config = meta["config"]
    assert (config["model"], config["dataset"]) == ("dncnn", "train400")
    assert NoiseSpec.from_config(config).factor_range == (0.0, 55 / 255)
    assert "test" in meta and set(meta["test"]["sigmas"]) == {"15", "25", "50"}


def test_without_checkpoint_the_shipped_model_denoises_a_photo(tmp_path, capsys):
    from skimage import data
    Image.fromarray(data.camera()[:96, :128]).save(tmp_path / "camera.png")
    assert run("--out", tmp_path / "o", "--sigma", 25, tmp_path / "camera.png") == 0
    line = capsys.readouterr().out
    noisy, denoised = (float(line.split(k)[1].split(" dB")[0]) for k in ("noisy ", "denoised "))
    assert denoised > noisy + 5
    with Image.open(tmp_path / "o" / "camera_denoised.png") as im:
        assert im.size == (128, 96)
