"""``scratchnet.save`` / ``scratchnet.load``: state dicts in one file, without pickle.

    scratchnet.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "epoch": 12}, "run.pt")
    state = scratchnet.load("run.pt")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])

What can be saved: nested dicts, lists and tuples of arrays (NumPy or CuPy), NumPy
scalars, numbers, strings, booleans and None, which is what ``model.state_dict()``,
``optimizer.state_dict()`` and ``scheduler.state_dict()`` return. A model or any other
object is refused: PyTorch pickles those, and unpickling a file runs code from it; save
``model.state_dict()`` instead and load it into a freshly built model.

The file is an ``.npz`` archive (whatever the name you give it): the arrays, each copied to
the host first (so a file written from CuPy loads on a machine without a GPU), and one JSON
document, ``__tree__``, holding the structure with the plain values. It is written
atomically (a crash leaves the previous file), read with ``allow_pickle=False``, and
``numpy.load`` can read it too.
"""
from __future__ import annotations

import io
import json
import os
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy

from .backend import get_backend, to_backend, to_numpy
from .fileio import atomic_write

__all__ = ["save", "load", "SerializationError"]

_FORMAT, _VERSION = "scratchnet.save", 1
_TREE = "__tree__"
_TAGS = ("__array__", "__tuple__", "__dict__", "__scalar__")


class SerializationError(ValueError):
    """A file that ``scratchnet.load`` cannot read (damaged, cut short, or not written by
    ``scratchnet.save``)."""


def _where(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


def _encode(obj: Any, arrays: dict[str, numpy.ndarray], path: str) -> Any:
    """The JSON form of ``obj``; arrays go into ``arrays`` under their index."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and type(obj) in (int, float):
        return obj
    if isinstance(obj, numpy.generic):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"scratchnet.save: {path} is a NumPy {obj.dtype} scalar; only "
                            "boolean and numeric scalars are saved")
        return {"__scalar__": obj.dtype.str, "value": obj.item()}
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, type):
        host = to_numpy(obj)
        if host.dtype.kind not in "biufc":
            raise TypeError(f"scratchnet.save: {path} is an array of dtype {host.dtype}; only "
                            "boolean and numeric arrays are saved (no pickle)")
        key = str(len(arrays))
        arrays[key] = host
        return {"__array__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, arrays, _where(path, k)) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, arrays, f"a key of {path}"), _encode(v, arrays, _where(path, k))]
                             for k, v in obj.items()]}
    kind = type(obj).__name__
    hint = (" (save its state_dict(), and load that into a newly built object: "
            "x.load_state_dict(scratchnet.load(path)))" if hasattr(obj, "state_dict") else "")
    raise TypeError(f"scratchnet.save: {path} is a {kind}, which would need pickle; save holds "
                    f"dicts, lists, tuples, arrays, numbers, strings and None{hint}")


def _decode(obj: Any, arrays: Any, xp: types.ModuleType) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays, xp) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        host = arrays[obj["__array__"]]
        return host if xp is numpy else to_backend(host, xp)
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays, xp) for v in obj["__tuple__"])
    if "__scalar__" in obj:
        return numpy.dtype(obj["__scalar__"]).type(obj["value"])
    if "__dict__" in obj:
        return {_decode(k, arrays, xp): _decode(v, arrays, xp) for k, v in obj["__dict__"]}
    return {k: _decode(v, arrays, xp) for k, v in obj.items()}


def save(obj: Any, f: str | os.PathLike) -> None:
    """Write a state dict (or any nesting of dicts, lists, tuples, arrays and plain values)
    to the file ``f``, atomically.

    Args:
        obj: what to save; arrays may live on any backend.
        f: the file's path (any name; ``"model.pt"`` works as in PyTorch).

    Raises:
        TypeError: ``obj`` holds something other than the above (the message names where).
        scratchnet.fileio.WriteError: the file cannot be written (the previous one is kept).
    """
    arrays: dict[str, numpy.ndarray] = {}
    tree = {"format": _FORMAT, "version": _VERSION, "object": _encode(obj, arrays, "obj")}
    arrays[_TREE] = numpy.array(json.dumps(tree))

    def write(fh: Any) -> None:
        buf = io.BytesIO()
        numpy.savez(buf, **arrays)
        fh.write(buf.getvalue())

    atomic_write(f, write)


def load(f: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None) -> Any:
    """Read what `save` wrote.

    Args:
        f: the file's path.
        map_location: where the arrays go: None, "cpu" or "numpy" (host NumPy arrays, the
            default, whatever backend they were saved from), or "cuda" / "cupy" (CuPy arrays).
            ``model.load_state_dict`` moves arrays to the model's backend anyway.
        weights_only: accepted for PyTorch code; loading never runs code from the file.

    Returns:
        The saved object, with dicts, lists, tuples and NumPy scalars as they were saved.

    Raises:
        FileNotFoundError: no such file.
        SerializationError: the file is damaged, cut short, or was not written by ``save``.
    """
    path = Path(f)
    xp = get_backend("numpy" if map_location is None else map_location)
    if not path.is_file():
        raise FileNotFoundError(f"scratchnet.load: {path} does not exist"
                                + (" (it is a directory)" if path.is_dir() else ""))
    if not zipfile.is_zipfile(path):
        raise SerializationError(f"scratchnet.load: {path} is not a file written by "
                                 "scratchnet.save (not an .npz archive, or one cut short)")
    try:
        with open(path, "rb") as fh, numpy.load(fh, allow_pickle=False) as z:
            if _TREE not in z.files:
                raise SerializationError(
                    f"scratchnet.load: {path} is an .npz archive but was not written by "
                    "scratchnet.save (no __tree__ entry); numpy.load reads it, and a training "
                    "checkpoint is read with scratchnet.checkpoint.load_checkpoint")
            arrays = {k: z[k] for k in z.files}
        tree = json.loads(str(arrays.pop(_TREE)))
        if not isinstance(tree, dict) or tree.get("format") != _FORMAT:
            raise ValueError("its __tree__ entry is not a scratchnet.save structure")
        if tree.get("version") != _VERSION:
            raise ValueError(f"format version {tree.get('version')!r}; this scratchnet reads "
                             f"version {_VERSION}")
        return _decode(tree["object"], arrays, xp)
    except SerializationError:
        raise
    except Exception as exc:       # a damaged archive can fail in zip, .npy, JSON or the tree
        raise SerializationError(f"scratchnet.load: {path} is damaged or not a scratchnet.save "
                                 f"file ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
