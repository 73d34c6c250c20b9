"""The natural grayscale images of Gaussian denoising: Train400, BSD68 and Set12.

These are the DnCNN paper's training and test sets (Zhang et al., IEEE TIP 2017), 8-bit
grayscale PNG files as published in the authors' repository, github.com/cszn/DnCNN. They are
found as MNIST is (`scratchnet.data.datasets`), each set in ``<dir>/natural/<set>/``:

    1. ``root`` (``--data-dir``)    2. ``$SCRATCHNET_DATA``    3. ``/usr/share/datasets``
    4. the per-user cache ``$SCRATCHNET_CACHE`` or ``~/.cache/scratchnet``

Every file is checked against its sha256 in ``natural_sha256.txt`` (shipped with the package, a
copy of the data's ``SHA256SUMS``; a file that passed is remembered and not hashed again).
Missing sets are downloaded, file by file, from the authors' repository into ``root`` when given,
else into the cache, each renamed into place only after its hash matched.

    images, names = load_natural("set12")        # 12 uint8 arrays (H, W) and their file names
"""
from __future__ import annotations

import io
import os
import tempfile
import urllib.error
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy
from PIL import Image

from .datasets import (DatasetError, _fetch, _memo_is_verified, _memo_remember, _sha256,
                       cache_dir, removing_new_folders, search_dirs)

__all__ = ["NATURAL_SETS", "NaturalSet", "find_natural_dir", "load_natural", "verify_natural",
           "download_natural", "natural_hashes"]

_REPOSITORY = "https://raw.githubusercontent.com/cszn/DnCNN/master/"


@dataclass(frozen=True)
class NaturalSet:
    name: str                 # the folder under natural/
    source: str               # where the authors' repository publishes it
    count: int                # number of images
    role: str                 # what the set is for, in words

    @property
    def url(self) -> str:
        return _REPOSITORY + self.source


NATURAL_SETS = {
    "train400": NaturalSet("train400", "TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400/", 400,
                           "training: 400 Berkeley images of 180x180"),
    "bsd68": NaturalSet("bsd68", "testsets/BSD68/", 68, "test: 68 Berkeley images of 481x321"),
    "set12": NaturalSet("set12", "testsets/Set12/", 12, "test: 12 classic images, 256 and 512 px"),
}


def _set(name: str) -> NaturalSet:
    if name not in NATURAL_SETS:
        raise DatasetError(f"unknown image set {name!r}; expected one of {sorted(NATURAL_SETS)}")
    return NATURAL_SETS[name]


def natural_hashes(name: str) -> dict[str, str]:
    """File name -> sha256 of every image of the set, in sorted file order."""
    _set(name)
    text = resources.files(__package__).joinpath("natural_sha256.txt").read_text()
    out = {}
    for line in text.splitlines():
        sha, path = line.split()
        folder, fname = Path(path).parts[-2:]
        if folder == name:
            out[fname] = sha
    return dict(sorted(out.items()))


def find_natural_dir(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The first ``<dir>/natural/<name>/`` holding every file of the set."""
    files = natural_hashes(name)
    for base in search_dirs(root):
        folder = base / "natural" / name
        if folder.is_dir() and all((folder / f).is_file() for f in files):
            return folder
    return None


def _missing_error(name: str, root: str | os.PathLike | None) -> DatasetError:
    where = ", ".join(str(d / "natural" / name) for d in search_dirs(root))
    hint = ""
    if root is not None and Path(root).name in (name, "natural"):
        up = Path(root).resolve().parent.parent if Path(root).name == name else Path(root).resolve().parent
        hint = (f" --data-dir takes the folder that holds natural/{name}/, not the set's own "
                f"folder: try --data-dir {up}.")
    return DatasetError(f"natural/{name} not found; looked in {where}.{hint} To get it: run "
                        f"`python -m scratchnet.data download --dataset {name}` (needs the "
                        f"network; drop --no-download to let training fetch it), or copy the "
                        f"{NATURAL_SETS[name].count} PNG files into DIR/natural/{name}/ and pass "
                        "DIR with --data-dir or SCRATCHNET_DATA=DIR")


def _check_file(path: Path, sha: str, name: str, memo: bool = True) -> bytes:
    """The file's bytes, after checking its sha256 (skipped when remembered and ``memo``)."""
    try:
        if memo and _memo_is_verified(path, sha):
            return path.read_bytes()
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc}); delete it and "
                           "download again") from None
    got = _sha256(data)
    if got != sha:
        raise DatasetError(f"{path}: sha256 is {got[:16]}..., expected {sha[:16]}... for "
                           f"natural/{name}/{path.name}; the file is corrupt or a different "
                           "image (it was left untouched)")
    _memo_remember(path, got)
    return data


def _decode(path: Path, data: bytes) -> numpy.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode != "L":
                raise DatasetError(f"{path}: an image of mode {im.mode}, expected 8-bit "
                                   "grayscale (L)")
            return numpy.asarray(im, dtype=numpy.uint8).copy()
    except DatasetError:
        raise
    except Exception as exc:                    # Pillow raises many kinds on damaged files
        raise DatasetError(f"{path}: not a readable PNG ({type(exc).__name__}: {exc})"
                           .replace("\n", " ")) from None


def load_natural(name: str, root: str | os.PathLike | None = None, download: bool = True,
                 limit: int | None = None) -> tuple[list[numpy.ndarray], list[str]]:
    """Load an image set as host arrays, each file checked against its sha256.

    Args:
        name: "train400", "bsd68" or "set12".
        root: a folder searched first (holding ``natural/<name>/``; downloads go there).
        download: fetch a missing set from the authors' repository.
        limit: keep the first ``limit`` images (sorted file order) only.

    Returns:
        (images, names): uint8 arrays (H, W) in sorted file order, and their file names.
    Raises:
        DatasetError: the set is missing (and not downloaded), or a file is damaged.
    """
    hashes = natural_hashes(name)
    folder = find_natural_dir(name, root)
    if folder is None:
        if not download or (root is not None and Path(root).name in (name, "natural")):
            raise _missing_error(name, root)        # the second: it names the set's own folder
        folder = download_natural(name, root)
    names = list(hashes)[:limit]
    images = [_decode(folder / f, _check_file(folder / f, hashes[f], name)) for f in names]
    return images, names


def verify_natural(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Re-hash every file of the set found; returns file name -> path. Raises DatasetError."""
    hashes = natural_hashes(name)
    folder = find_natural_dir(name, root)
    if folder is None:
        raise _missing_error(name, root)
    for f, sha in hashes.items():
        _check_file(folder / f, sha, name, memo=False)
    return {f: folder / f for f in hashes}


def download_natural(name: str, root: str | os.PathLike | None = None,
                     base_url: str | None = None, timeout: float = 30.0,
                     files: Iterable[str] | None = None) -> Path:
    """Download the missing files of a set into ``<root or cache>/natural/<name>/``.

    Each file goes to a temporary file, renamed into place only after its sha256 matched
    (deleted otherwise); files already there are never overwritten.

    Args:
        base_url: where the set's files are (default: the authors' repository).
    Returns:
        The set's folder.
    """
    spec = _set(name)
    folder = Path(root if root is not None else cache_dir()) / "natural" / name
    with removing_new_folders(folder):     # a failed download leaves no new folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-").close()
        except OSError as exc:
            raise DatasetError(f"cannot write to {folder} ({exc.strerror or exc}); choose another "
                               "place with --data-dir/root or SCRATCHNET_CACHE") from None
        base = base_url or spec.url
        hashes = natural_hashes(name)
        for fname in files or hashes:
            if (folder / fname).is_file():
                continue
            url = base + fname
            fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                _fetch(url, tmp, timeout)
                if _sha256(tmp.read_bytes()) != hashes[fname]:
                    raise DatasetError("sha256 mismatch (corrupt download)")
                os.replace(tmp, folder / fname)
                _memo_remember(folder / fname, hashes[fname])
            except (OSError, urllib.error.URLError, DatasetError, ValueError) as exc:
                plain = isinstance(exc, urllib.error.URLError) and not isinstance(
                    exc, urllib.error.HTTPError)
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()                       # its response holds the connection open
                raise DatasetError(
                    f"could not download natural/{name}/{fname} from {url}: "
                    f"{exc.reason if plain else exc}. Without a network: copy the "
                    f"{spec.count} PNG files into DIR/natural/{name}/ and pass DIR with --data-dir "
                    "or SCRATCHNET_DATA=DIR") from None
            finally:
                tmp.unlink(missing_ok=True)
    return folder
