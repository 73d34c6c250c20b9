"""MNIST and Fashion-MNIST from standard IDX files: find, read, verify, download.

Where files are looked for, first hit wins (``<dir>/<name>/<file>[.gz]``):
    1. ``root`` (``--data-dir``)    2. ``$SCRATCHNET_DATA``
    3. ``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist`` package)
    4. the per-user cache ``$SCRATCHNET_CACHE`` or ``~/.cache/scratchnet``
Missing files are downloaded (unless ``download=False``) into ``root`` when given, else into
the cache, from the known mirrors in turn; a download is written to a temporary file and
renamed only after its sha256 matched.

Verification is by content: the sha256 of each *decompressed* file, so a re-compressed copy
passes. A file that passed is remembered in ``<cache>/verified.json`` under its path, size and
modification time, so it is hashed once, not on every start (``verify_dataset`` re-hashes).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import idx2numpy
import numpy
from tqdm.auto import tqdm

from ..backend import as_dtype, get_backend
from ..fileio import WriteError, atomic_write_text

__all__ = ["DatasetError", "DATASETS", "SPLITS", "load_dataset", "images_to_array",
           "find_dataset_dir", "search_dirs", "verify_dataset", "download_dataset", "read_idx",
           "cache_dir"]

DEBIAN_DIR = Path("/usr/share/datasets")
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IMAGE_SIZE = (28, 28)


class DatasetError(Exception):
    """A user-fixable problem with the data: missing, corrupt, wrong content, unwritable."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    sha256: dict[str, str]          # standard file name (decompressed) -> sha256
    mirrors: tuple[str, ...]        # base URLs; the file is <mirror><name>.gz
    classes: tuple[str, ...]
    install_hint: str


DATASETS = {
    "mnist": DatasetSpec(
        "mnist",
        {"train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
         "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
         "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
         "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        tuple(str(d) for d in range(10)),
        "run `python -m scratchnet.data download --dataset mnist`"),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        {"train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"),
        "run `python -m scratchnet.data download --dataset fashion-mnist`, or on Debian/Ubuntu "
        "`sudo apt-get install dataset-fashion-mnist`"),
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _split_files(split: str) -> tuple[str, str]:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected 'train' or 'test'")
    return SPLITS[split]


def cache_dir() -> Path:
    """``$SCRATCHNET_CACHE``, else ``$XDG_CACHE_HOME/scratchnet``, else ``~/.cache/scratchnet``."""
    if os.environ.get("SCRATCHNET_CACHE"):
        return Path(os.environ["SCRATCHNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scratchnet"


def search_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """The base directories searched, in order (each holds ``<name>/`` folders).

    A folder given (``--data-dir``) is the only one: a path the user typed is never quietly
    replaced by another. Otherwise ``$SCRATCHNET_DATA``, Debian's datasets folder, the cache."""
    if root is not None:
        return [Path(root)]
    dirs = [Path(os.environ["SCRATCHNET_DATA"])] if os.environ.get("SCRATCHNET_DATA") else []
    return dirs + [DEBIAN_DIR, cache_dir()]


def _locate(folder: Path, fname: str) -> Path | None:
    for candidate in (folder / (fname + ".gz"), folder / fname):
        if candidate.is_file():
            return candidate
    return None


def find_dataset_dir(name: str, split: str | None = None,
                     root: str | os.PathLike | None = None) -> Path | None:
    """The first ``<dir>/<name>/`` holding the split's files (all four when split is None)."""
    _spec(name)
    needed = _split_files(split) if split else [f for s in SPLITS for f in SPLITS[s]]
    for base in search_dirs(root):
        folder = base / name
        if all(_locate(folder, f) for f in needed):
            return folder
    return None


# --- reading ----------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip data (sniffed, whatever its name)."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); delete it and download again") from None


def read_idx(path: str | os.PathLike, data: bytes | None = None) -> numpy.ndarray:
    """Parse an IDX file (``.gz`` or raw) of unsigned bytes, checking its header and size."""
    path = Path(path)
    data = _read_bytes(path) if data is None else data
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DatasetError(f"{path}: wrong magic number {data[:4].hex() or 'none'}; expected an "
                           "IDX file of unsigned bytes (0000080N)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)               # Python ints: no overflow
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(f"{path}: {kind}: header {dims} needs {expected} bytes, file has {len(data)}")
    return idx2numpy.convert_from_string(data)


# --- verification -------------------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _memo_path() -> Path:
    return cache_dir() / "verified.json"


def _memo_key(path: Path) -> tuple[str, str]:
    st = path.stat()
    return str(path.resolve()), f"{st.st_size}:{st.st_mtime_ns}"


def _memo_load() -> dict[str, Any]:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _memo_is_verified(path: Path, sha: str) -> bool:
    key, stamp = _memo_key(path)
    return _memo_load().get(key) == {"stamp": stamp, "sha256": sha}


def _memo_remember(path: Path, sha: str) -> None:
    """Best effort: an unwritable cache only means hashing again next time."""
    key, stamp = _memo_key(path)
    memo = _memo_load()
    memo[key] = {"stamp": stamp, "sha256": sha}
    try:
        atomic_write_text(_memo_path(), json.dumps(memo, indent=1))
    except (OSError, WriteError):
        pass


def _verify_content(path: Path, data: bytes, spec: DatasetSpec, fname: str) -> None:
    """Hash ``data`` (the decompressed file), raise on a mismatch, remember a match."""
    got = _sha256(data)
    if got != spec.sha256[fname]:
        raise DatasetError(f"{path}: sha256 of the decompressed content is {got[:16]}..., "
                           f"expected {spec.sha256[fname][:16]}... for {spec.name}/{fname}; the "
                           "file is corrupt or a different dataset (it was left untouched)")
    _memo_remember(path, got)


def verify_dataset(name: str, root: str | os.PathLike | None = None,
                   files: Iterable[str] | None = None) -> dict[str, Path]:
    """Hash every file of ``name`` found (always re-hashing) and remember the result.

    Returns:
        standard file name -> path verified.
    Raises:
        DatasetError: a file is missing or its content differs.
    """
    spec = _spec(name)
    folder = find_dataset_dir(name, root=root)
    if folder is None:
        raise _missing_error(spec, None, root)
    done = {}
    for fname in files or spec.sha256:
        path = _locate(folder, fname)
        _verify_content(path, _read_bytes(path), spec, fname)
        done[fname] = path
    return done


# --- download -------------------------------------------------------------------------------
def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Stream ``url`` into ``dest`` with a progress bar."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  leave=False) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def download_dataset(name: str, root: str | os.PathLike | None = None,
                     mirrors: Iterable[str] | None = None, timeout: float = 30.0) -> Path:
    """Download the missing files of ``name`` into ``<root or cache>/<name>/``, verified.

    Each file is tried on every mirror in turn; a download goes to a temporary file that is
    renamed only after its decompressed sha256 matched, and deleted otherwise. Files that
    already exist are never overwritten.

    Returns:
        The dataset folder.
    """
    spec = _spec(name)
    folder = Path(root if root is not None else cache_dir()) / name
    with removing_new_folders(folder):
        _download_files(spec, folder, mirrors, timeout)
    return folder


@contextlib.contextmanager
def removing_new_folders(folder: Path) -> Iterator[None]:
    """Run a download into ``folder``; if it fails (or is interrupted), remove the folders
    that did not exist before it (``folder`` and its missing parents) where they are empty."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]     # deepest first
    try:
        yield
    except BaseException:
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()                                                  # only when empty
        raise


def _download_files(spec: DatasetSpec, folder: Path, mirrors: Iterable[str] | None,
                    timeout: float) -> None:
    name = spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise DatasetError(f"cannot write to {folder} ({exc.strerror or exc}); choose another "
                           "place with --data-dir/root or SCRATCHNET_CACHE") from None
    for fname, sha in spec.sha256.items():
        if _locate(folder, fname):
            continue
        errors = []
        for mirror in mirrors or spec.mirrors:
            url = mirror + fname + ".gz"
            fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                _fetch(url, tmp, timeout)
                data = _read_bytes(tmp)
                if _sha256(data) != sha:
                    raise DatasetError("sha256 mismatch (corrupt download)")
                os.replace(tmp, folder / (fname + ".gz"))
                _memo_remember(folder / (fname + ".gz"), sha)
                break
            except (OSError, urllib.error.URLError, DatasetError, ValueError) as exc:
                plain = isinstance(exc, urllib.error.URLError) and not isinstance(
                    exc, urllib.error.HTTPError)          # "HTTP Error 404: ..." says enough
                errors.append(f"{url}: {exc.reason if plain else exc}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise DatasetError(f"could not download {name}/{fname}: " + "; ".join(errors)
                               + f". Without a network: {_copy_hint(spec)}")


def _copy_hint(spec: DatasetSpec) -> str:
    files = ", ".join(f + ".gz" for f in spec.sha256)
    return (f"copy the IDX files ({files}) from a machine that has them into "
            f"DIR/{spec.name}/ and pass DIR with --data-dir or SCRATCHNET_DATA=DIR")


def _names_the_dataset_folder(spec: DatasetSpec, root: Any) -> bool:
    """``--data-dir DIR/mnist`` where ``DIR`` was meant (downloading would make mnist/mnist/)."""
    return root is not None and (Path(root).name == spec.name or
                                 any(_locate(Path(root), f) for f in spec.sha256))


def _missing_error(spec: DatasetSpec, split: str | None, root: Any) -> DatasetError:
    where = ", ".join(str(d / spec.name) for d in search_dirs(root))
    what = f"{spec.name} ({split})" if split else spec.name
    if _names_the_dataset_folder(spec, root):
        return DatasetError(f"{what} not found; looked in {where}. --data-dir takes the folder "
                            f"that holds {spec.name}/, not {spec.name}/ itself: try --data-dir "
                            f"{Path(root).resolve().parent}")
    return DatasetError(f"{what} not found; looked in {where}. To get it: {spec.install_hint} "
                        f"(needs the network; drop --no-download to let training fetch it), or "
                        f"{_copy_hint(spec)}")


# --- public loading ------------------------------------------------------------------------
def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True, verify: bool = True) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Load a split as host arrays.

    Args:
        name: "mnist" or "fashion-mnist".  split: "train" or "test".
        root: a folder searched first (downloads go there when given).
        download: fetch missing files from the mirrors.
        verify: check each file's sha256 (once per file version; remembered afterwards).

    Returns:
        images uint8 (N, 28, 28) and labels uint8 (N,).
    """
    spec = _spec(name)
    image_file, label_file = _split_files(split)
    folder = find_dataset_dir(name, split, root)
    if folder is None:
        if not download or _names_the_dataset_folder(spec, root):
            raise _missing_error(spec, split, root)
        folder = download_dataset(name, root)
    arrays = []
    for fname, ndim in ((image_file, 3), (label_file, 1)):
        path = _locate(folder, fname)
        data = _read_bytes(path)
        if verify and not _memo_is_verified(path, spec.sha256[fname]):
            _verify_content(path, data, spec, fname)
        arr = read_idx(path, data)
        if arr.ndim != ndim or (ndim == 3 and arr.shape[1:] != IMAGE_SIZE):
            want = "(N, 28, 28)" if ndim == 3 else "(N,)"
            raise DatasetError(f"{path}: holds an array of shape {arr.shape}, expected {want}")
        arrays.append(arr)
    images, labels = arrays
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {len(images)} images but {len(labels)} labels in the "
                           f"{split} split")
    return images, labels


def images_to_array(images: numpy.ndarray, backend: str = "numpy", dtype: str = "float32") -> Any:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1] on the backend (one transfer)."""
    xp, dt = get_backend(backend), as_dtype(dtype)
    x = xp.asarray(images)[:, None, :, :].astype(dt)
    x /= 255
    return x
