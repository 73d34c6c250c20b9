"""Datasets, verification, download (against a local HTTP server), batches and noise."""
import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import idx2numpy
import numpy as np
import pytest

from scratchnet.backend import default_rng, to_numpy
from scratchnet.data import (BatchLoader, DatasetError, add_gaussian_noise, add_noise,
                             add_salt_and_pepper_noise, add_speckle_noise, datasets,
                             download_dataset, images_to_array, load_dataset, read_idx,
                             verify_dataset)
from scratchnet.data.__main__ import main as data_cli

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def _make_raw(n_train=12, n_test=5, seed=0):
    r = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": r.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": r.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": r.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": r.integers(0, 10, n_test, dtype=np.uint8)}
    return {k: idx2numpy.convert_to_string(v) for k, v in arrays.items()}, arrays


def _write(folder: Path, raw: dict, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated world: no SCRATCHNET_DATA, a fake Debian dir and cache, and 'mnist' whose
    known hashes are those of small generated files."""
    raw, arrays = _make_raw()
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "debian")
    spec = dataclasses.replace(datasets.DATASETS["mnist"],
                               sha256={k: hashlib.sha256(v).hexdigest() for k, v in raw.items()},
                               mirrors=())
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    return dataclasses.make_dataclass("Env", ["tmp", "raw", "arrays"])(tmp_path, raw, arrays)


@pytest.mark.parametrize("gz", [True, False])
def test_load_gz_and_raw(env, gz):
    _write(env.tmp / "root" / "mnist", env.raw, gz=gz)
    images, labels = load_dataset("mnist", "train", root=env.tmp / "root", download=False)
    np.testing.assert_array_equal(images, env.arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(labels, env.arrays["train-labels-idx1-ubyte"])
    assert images.dtype == np.uint8 and images.shape == (12, 28, 28)
    test_images, _ = load_dataset("mnist", "test", root=env.tmp / "root", download=False)
    assert test_images.shape == (5, 28, 28)


def test_recompressed_copy_passes_verification(env):
    folder = env.tmp / "root" / "mnist"
    _write(folder, env.raw)
    for name, data in env.raw.items():     # different gz bytes, same content
        (folder / (name + ".gz")).write_bytes(gzip.compress(data, compresslevel=1, mtime=123))
    assert len(verify_dataset("mnist", env.tmp / "root")) == 4


def test_search_order_first_hit_wins(env, monkeypatch):
    for i, place in enumerate(["root", "envdir", "debian", "cache"]):
        raw, _ = _make_raw(seed=0)
        _write(env.tmp / place / "mnist", raw)
        (env.tmp / place / "mnist" / "marker").write_text(place)
    monkeypatch.setenv("SCRATCHNET_DATA", str(env.tmp / "envdir"))
    find = datasets.find_dataset_dir
    assert find("mnist", root=env.tmp / "root").name == "mnist"
    assert (find("mnist", root=env.tmp / "root") / "marker").read_text() == "root"
    assert (find("mnist") / "marker").read_text() == "envdir"
    monkeypatch.delenv("SCRATCHNET_DATA")
    assert (find("mnist") / "marker").read_text() == "debian"
    monkeypatch.setattr(datasets, "DEBIAN_DIR", env.tmp / "nowhere")
    assert (find("mnist") / "marker").read_text() == "cache"


def test_missing_without_download_says_where_and_how(env):
    with pytest.raises(DatasetError, match=r"mnist \(train\) not found; looked in .*debian/mnist.*"
                                           r"python -m scratchnet.data download"):
        load_dataset("mnist", download=False)
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", download=False)


@pytest.mark.parametrize("damage,match", [
    (lambda b: b[:-100], "truncated"),
    (lambda b: b"\x00\x00\x09\x03" + b[4:], "wrong magic number"),
    (lambda b: b + b"xx", "trailing bytes"),
])
def test_damaged_files_are_named(env, damage, match):
    path = env.tmp / "f.idx"
    path.write_bytes(damage(env.raw["train-images-idx3-ubyte"]))
    with pytest.raises(DatasetError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_is_a_dataset_error(env):
    folder = env.tmp / "root" / "mnist"
    _write(folder, env.raw)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("mnist", root=env.tmp / "root", download=False)


def test_hash_mismatch_names_file_and_leaves_it(env):
    folder = env.tmp / "root" / "mnist"
    raw = dict(env.raw)
    tampered = bytearray(raw["train-images-idx3-ubyte"])
    tampered[-1] ^= 0xFF
    raw["train-images-idx3-ubyte"] = bytes(tampered)
    _write(folder, raw)
    before = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz: sha256 .* left untouched"):
        load_dataset("mnist", root=env.tmp / "root", download=False)
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == before


def test_wrong_image_size_and_count_mismatch(env):
    folder = env.tmp / "root" / "mnist"
    raw, _ = _make_raw()
    raw["train-images-idx3-ubyte"] = idx2numpy.convert_to_string(np.zeros((12, 20, 20), np.uint8))
    _write(folder, raw)
    with pytest.raises(DatasetError, match=r"shape \(12, 20, 20\), expected \(N, 28, 28\)"):
        load_dataset("mnist", root=env.tmp / "root", download=False, verify=False)
    raw["train-images-idx3-ubyte"] = idx2numpy.convert_to_string(np.zeros((11, 28, 28), np.uint8))
    _write(folder, raw)
    with pytest.raises(DatasetError, match="11 images but 12 labels"):
        load_dataset("mnist", root=env.tmp / "root", download=False, verify=False)


def test_unknown_names():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_dataset("mnist", "val")


def test_verification_is_remembered_until_the_file_changes(env, monkeypatch):
    _write(env.tmp / "root" / "mnist", env.raw)
    calls = []
    real = datasets._sha256
    monkeypatch.setattr(datasets, "_sha256", lambda d: calls.append(1) or real(d))
    load_dataset("mnist", root=env.tmp / "root", download=False)
    assert len(calls) == 2
    load_dataset("mnist", root=env.tmp / "root", download=False)
    assert len(calls) == 2                                  # remembered
    path = env.tmp / "root" / "mnist" / "train-labels-idx1-ubyte.gz"
    os.utime(path, ns=(0, 10**9))
    load_dataset("mnist", root=env.tmp / "root", download=False)
    assert len(calls) == 3                                  # the touched file is hashed again


# --- download against a real local HTTP server ------------------------------------------
@pytest.fixture
def server(tmp_path, env):
    """Serves /good/ (right files), /corrupt/ (wrong content); anything else is a 404."""
    site = tmp_path / "site"
    _write(site / "good", env.raw)
    bad = {k: v[:-1] + b"\x01" for k, v in env.raw.items()}
    _write(site / "corrupt", bad)
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_tries_mirrors_until_a_verified_copy(env, server):
    mirrors = [f"{server}/missing/", f"{server}/corrupt/", f"{server}/good/"]
    folder = download_dataset("mnist", env.tmp / "root", mirrors=mirrors)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f + ".gz" for f in FILES)
    images, _ = load_dataset("mnist", root=env.tmp / "root", download=False)
    np.testing.assert_array_equal(images, env.arrays["train-images-idx3-ubyte"])


def test_download_failure_lists_every_mirror_and_leaves_nothing(env, server):
    mirrors = [f"{server}/missing/", f"{server}/corrupt/"]
    with pytest.raises(DatasetError, match=r"404.*sha256 mismatch.*--data-dir"):
        download_dataset("mnist", env.tmp / "root", mirrors=mirrors)
    assert not (env.tmp / "root").exists()      # no partial or bad file, no new folder left


def test_load_downloads_into_cache_by_default(env, server, monkeypatch):
    spec = dataclasses.replace(datasets.DATASETS["mnist"], mirrors=(f"{server}/good/",))
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    images, _ = load_dataset("mnist", "test")
    assert images.shape == (5, 28, 28)
    assert (env.tmp / "cache" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_unwritable_download_dir(env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetError, match="cannot write to"):
        download_dataset("mnist", blocker)


def test_cli_verify_and_errors(env, capsys):
    _write(env.tmp / "root" / "mnist", env.raw)
    assert data_cli(["verify", "--dataset", "mnist", "--root", str(env.tmp / "root")]) == 0
    assert "train-images-idx3-ubyte: ok" in capsys.readouterr().out
    assert data_cli(["verify", "--dataset", "fashion-mnist", "--root", str(env.tmp / "root")]) == 1
    assert capsys.readouterr().err.startswith("error: fashion-mnist not found")


# --- arrays, batches, noise --------------------------------------------------------------
def test_images_to_array(xp):
    x = images_to_array(np.array([[[0, 255], [51, 102]]], np.uint8), xp.__name__, "float32")
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(to_numpy(x).ravel(), [0, 1, 0.2, 0.4], rtol=1e-6)


def test_batches_cover_everything_and_shuffle_by_seed(xp):
    data = xp.arange(10, dtype=xp.float32)
    plain = [to_numpy(b).tolist() for b in BatchLoader(data, 4)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(BatchLoader(data, 4, drop_last=True)) == 2
    a = BatchLoader(data, 3, shuffle=True, seed=5)
    e0 = np.concatenate([to_numpy(b) for b in a])
    e1 = np.concatenate([to_numpy(b) for b in a])
    assert sorted(e0) == list(range(10)) and not np.array_equal(e0, e1)   # new order each epoch
    b = BatchLoader(data, 3, shuffle=True, seed=5)
    b.epoch = 1                                                           # resume at epoch 1
    np.testing.assert_array_equal(np.concatenate([to_numpy(x) for x in b]), e1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        BatchLoader(data, 0)


def test_gaussian_noise_statistics_clip_and_seed(xp):
    x = xp.full((200, 1, 28, 28), 0.5, dtype=xp.float32)
    raw = add_gaussian_noise(x, 0.1, clip=False, rng=default_rng(0, xp.__name__))
    assert raw.dtype == np.float32
    d = to_numpy(raw) - 0.5
    assert abs(d.mean()) < 2e-3 and abs(d.std() - 0.1) < 2e-3
    clipped = to_numpy(add_gaussian_noise(x, 2.0, rng=default_rng(0, xp.__name__)))
    assert clipped.min() == 0 and clipped.max() == 1
    again = add_gaussian_noise(x, 0.1, clip=False, rng=default_rng(0, xp.__name__))
    np.testing.assert_array_equal(to_numpy(again), to_numpy(raw))
    with pytest.raises(ValueError, match="noise factor must be >= 0"):
        add_gaussian_noise(x, -1)


def test_salt_pepper_and_speckle(xp):
    x = xp.full((100, 1, 28, 28), 0.5, dtype=xp.float32)
    sp = to_numpy(add_salt_and_pepper_noise(x, 0.2, rng=default_rng(1, xp.__name__)))
    assert sp.dtype == np.float32
    assert abs((sp == 0).mean() - 0.1) < 0.01 and abs((sp == 1).mean() - 0.1) < 0.01
    assert abs((sp == 0.5).mean() - 0.8) < 0.01
    sk = to_numpy(add_speckle_noise(x, 0.2, clip=False, rng=default_rng(2, xp.__name__)))
    assert abs((sk - 0.5).std() - 0.1) < 2e-3          # x * factor * N(0,1), x = 0.5
    zero = to_numpy(add_speckle_noise(xp.zeros((3, 3), xp.float32), 1.0, rng=default_rng(3, xp.__name__)))
    assert not zero.any()                               # multiplicative: black stays black
    with pytest.raises(ValueError, match="unknown noise 'pink'"):
        add_noise("pink", x, 0.1)


# --- the real files ------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_mnist_facts(real_data):
    train_x, train_y = load_dataset("mnist", "train", root=real_data, download=False)
    test_x, test_y = load_dataset("mnist", "test", root=real_data, download=False)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                             5851, 5949]
    assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x = train_x.astype(np.float64) / 255
    assert round(x.mean(), 4) == 0.1307 and round(x.std(), 4) == 0.3081


@pytest.mark.realdata
def test_real_fashion_mnist_facts(real_data):
    train_x, train_y = load_dataset("fashion-mnist", "train", root=real_data, download=False)
    test_x, test_y = load_dataset("fashion-mnist", "test", root=real_data, download=False)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y).tolist() == [6000] * 10
    assert np.bincount(test_y).tolist() == [1000] * 10


@pytest.mark.realdata
def test_real_files_verify(real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path))
    for name in ("mnist", "fashion-mnist"):
        assert len(verify_dataset(name, real_data)) == 4
