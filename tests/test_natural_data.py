"""The natural image sets (Train400, BSD68, Set12): found as MNIST is, checked by sha256,
downloaded (from a local HTTP server standing in for the authors' repository), one-line errors."""
import functools
import hashlib
import http.server
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchnet.data import DatasetError, datasets, download_natural, load_natural, natural
from scratchnet.data.__main__ import main as data_cli

NAMES = ["01.png", "02.png", "03.png"]


def _png(seed: int, size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated world: no SCRATCHNET_DATA, a fake Debian dir and cache, and a 'set12' of
    three small generated PNGs whose hashes are the known ones."""
    files = {name: _png(i) for i, name in enumerate(NAMES)}
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "debian")
    real = natural.natural_hashes
    monkeypatch.setattr(natural, "natural_hashes", lambda name: (
        {k: hashlib.sha256(v).hexdigest() for k, v in files.items()} if name == "set12" else real(name)))
    return tmp_path, files


def _write(folder: Path, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_the_shipped_hash_list_covers_the_three_sets():
    assert [len(natural.natural_hashes(s)) for s in ("train400", "bsd68", "set12")] == [400, 68, 12]
    assert list(natural.natural_hashes("set12"))[:2] == ["01.png", "02.png"]     # sorted order


def test_load_in_sorted_order_with_limit(env):
    tmp, files = env
    _write(tmp / "root" / "natural" / "set12", files)
    images, names = load_natural("set12", tmp / "root", download=False)
    assert names == NAMES and images[0].dtype == np.uint8 and images[0].shape == (12, 10)
    np.testing.assert_array_equal(images[1], np.asarray(Image.open(io.BytesIO(files["02.png"]))))
    assert load_natural("set12", tmp / "root", download=False, limit=2)[1] == NAMES[:2]


def test_search_order_first_hit_wins(env, monkeypatch):
    tmp, files = env
    for where in ("env", "debian", "cache"):
        _write(tmp / where / "natural" / "set12", files)
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp / "debian")
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp / "cache"))
    assert natural.find_natural_dir("set12") == tmp / "debian" / "natural" / "set12"
    monkeypatch.setenv("SCRATCHNET_DATA", str(tmp / "env"))
    assert natural.find_natural_dir("set12") == tmp / "env" / "natural" / "set12"
    _write(tmp / "root" / "natural" / "set12", files)
    assert natural.find_natural_dir("set12", tmp / "root") == tmp / "root" / "natural" / "set12"


def test_missing_without_download_is_one_line_saying_where_and_how(env):
    tmp, _ = env
    with pytest.raises(DatasetError) as exc:
        load_natural("set12", tmp / "root", download=False)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("natural/set12 not found; looked in")
    assert str(tmp / "root" / "natural" / "set12") in msg
    assert "python -m scratchnet.data download --dataset set12" in msg


@pytest.mark.parametrize("inner", ["natural", "natural/set12"])
def test_data_dir_naming_the_set_folder_gets_a_hint(env, inner):
    tmp, files = env
    _write(tmp / "root" / "natural" / "set12", files)
    with pytest.raises(DatasetError, match=rf"--data-dir takes the folder that holds natural/set12/.*"
                                           rf"try --data-dir {tmp / 'root'}\b"):
        load_natural("set12", tmp / "root" / inner, download=False)


def test_a_damaged_file_is_named_and_left_untouched(env):
    tmp, files = env
    folder = tmp / "root" / "natural" / "set12"
    _write(folder, {**files, "02.png": files["02.png"][:-3]})
    with pytest.raises(DatasetError, match=r"02.png: sha256 is .*expected .*natural/set12/02.png; the "
                                           r"file is corrupt"):
        load_natural("set12", tmp / "root", download=False)
    assert (folder / "02.png").read_bytes() == files["02.png"][:-3]


def test_a_file_that_is_no_png_is_a_dataset_error(env, monkeypatch):
    tmp, files = env
    files = {**files, "03.png": b"not a png"}
    monkeypatch.setattr(natural, "natural_hashes",
                        lambda name: {k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    _write(tmp / "root" / "natural" / "set12", files)
    with pytest.raises(DatasetError, match="03.png: not a readable PNG"):
        load_natural("set12", tmp / "root", download=False)


def test_verification_is_remembered_until_the_file_changes(env, monkeypatch):
    tmp, files = env
    _write(tmp / "root" / "natural" / "set12", files)
    calls = []
    real = natural._sha256
    monkeypatch.setattr(natural, "_sha256", lambda data: calls.append(1) or real(data))
    load_natural("set12", tmp / "root", download=False)
    load_natural("set12", tmp / "root", download=False)
    assert len(calls) == 3                                   # hashed once each
    os.utime(tmp / "root" / "natural" / "set12" / "01.png", ns=(0, 10**9))
    load_natural("set12", tmp / "root", download=False)
    assert len(calls) == 4


# --- download against a real local HTTP server ------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(env):
    """Serves testsets/Set12/ as the authors' repository lays it out, and /corrupt/."""
    tmp, files = env
    _write(tmp / "site" / "testsets" / "Set12", files)
    _write(tmp / "site" / "corrupt", {k: v[:-1] + b"\x01" for k, v in files.items()})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp / "site")))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_load_downloads_a_missing_set_into_the_cache(env, server, monkeypatch):
    tmp, files = env
    monkeypatch.setattr(natural, "_REPOSITORY", server)
    images, names = load_natural("set12")
    assert names == NAMES
    for name in NAMES:
        assert (tmp / "cache" / "natural" / "set12" / name).read_bytes() == files[name]
    assert not list((tmp / "cache" / "natural" / "set12").glob(".*"))     # no temporary left


@pytest.mark.parametrize("where,message", [("missing/", "HTTP Error 404"),
                                           ("corrupt/", "sha256 mismatch")])
def test_a_failed_download_is_one_line_and_leaves_nothing(env, server, where, message):
    tmp, _ = env
    with pytest.raises(DatasetError) as exc:
        download_natural("set12", tmp / "root", base_url=server + where)
    assert "\n" not in str(exc.value) and message in str(exc.value)
    assert "Without a network: copy the 12 PNG files into DIR/natural/set12/" in str(exc.value)
    assert not (tmp / "root").exists()          # no file and no new folder left behind


def test_unwritable_download_dir(env):
    tmp, _ = env
    (tmp / "file").write_text("x")
    with pytest.raises(DatasetError, match="cannot write to"):
        download_natural("set12", tmp / "file")


def test_cli_verify_where_and_errors(env, capsys):
    tmp, files = env
    _write(tmp / "root" / "natural" / "set12", files)
    assert data_cli(["verify", "--dataset", "set12", "--root", str(tmp / "root")]) == 0
    assert "set12: 3 files ok" in capsys.readouterr().out
    assert data_cli(["where", "--dataset", "set12", "--root", str(tmp / "root")]) == 0
    assert f"set12: {tmp / 'root' / 'natural' / 'set12'}" in capsys.readouterr().out
    (tmp / "root" / "natural" / "set12" / "01.png").write_bytes(b"x")
    assert data_cli(["verify", "--dataset", "set12", "--root", str(tmp / "root")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "01.png: sha256" in err


# --- the real files ---------------------------------------------------------------------
@pytest.mark.realdata
def test_real_sets_verify_and_have_the_published_sizes(real_photos, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path / "cache"))
    sums = {line.split()[1][2:]: line.split()[0]
            for line in (real_photos / "natural" / "SHA256SUMS").read_text().splitlines()}
    shipped = {f"{s}/{f}": h for s in ("train400", "bsd68", "set12")
               for f, h in natural.natural_hashes(s).items()}
    assert shipped == sums                          # the package's copy is the data's list
    for name, count in (("set12", 12), ("bsd68", 68)):
        assert len(natural.verify_natural(name, real_photos)) == count
    images, _ = load_natural("set12", real_photos, download=False)
    assert [im.shape for im in images] == [(256, 256)] * 7 + [(512, 512)] * 5
    images, _ = load_natural("bsd68", real_photos, download=False)
    assert {im.shape for im in images} == {(321, 481), (481, 321)}
    images, _ = load_natural("train400", real_photos, download=False, limit=5)
    assert [im.shape for im in images] == [(180, 180)] * 5
