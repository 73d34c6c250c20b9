"""Checkpoints as one ``.npz`` file, written atomically, readable on a NumPy-only machine.

Layout: ``model/<param name>`` arrays, ``optim/<index>/<key>`` optimizer state arrays, and
``meta``: one JSON string (optimizer hyperparameters, epoch, config, history, ...). Every
array is copied to the host first, so a checkpoint written from CuPy loads without a GPU.
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy

from .backend import to_numpy
from .fileio import atomic_write
from .nn.module import Module
from .optim import Optimizer

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_model"]


class CheckpointError(Exception):
    """A checkpoint that cannot be read, or that does not fit the model."""


def save_checkpoint(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None,
                    **meta: Any) -> None:
    """Save model parameters, optimizer state and JSON-serialisable ``meta`` atomically."""
    arrays = {f"model/{k}": to_numpy(v) for k, v in model.state_dict().items()}
    info: dict[str, Any] = dict(meta)
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for i, state in sd["state"].items():
            for k, v in state.items():
                if getattr(v, "ndim", 0) > 0:
                    arrays[f"optim/{i}/{k}"] = to_numpy(v)
                else:
                    scalars.setdefault(str(i), {})[k] = v
        info["optimizer"] = {"type": type(optimizer).__name__, "param_groups": sd["param_groups"],
                             "scalars": scalars}
    arrays["meta"] = numpy.array(json.dumps(info))

    def write(fh: Any) -> None:
        buf = io.BytesIO()
        numpy.savez(buf, **arrays)
        fh.write(buf.getvalue())

    atomic_write(path, write)


# What a checkpoint may hold before anything is decompressed. np.savez stores its arrays
# uncompressed, so a member that would inflate to much more than it takes in the file is not
# one of ours (a "zip bomb" would fill the memory); the JSON meta data (config, history, the
# losses of every iteration) of a long run is a few MB.
MAX_INFLATION = 20
MAX_META_BYTES = 64 << 20


class _Archive:
    """A checkpoint's .npz, read header first: every member's shape and dtype are known, and
    checked, before any data is decompressed."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.headers: dict[str, tuple[tuple[int, ...], numpy.dtype]] = {}
        for info in self.zip.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not an array")
            if info.file_size > MAX_INFLATION * info.compress_size + (1 << 20):
                raise ValueError(f"member {info.filename!r} would inflate from "
                                 f"{info.compress_size:,} to {info.file_size:,} bytes, which no "
                                 "checkpoint does (refused unread)")
            with self.zip.open(info) as fh:
                version = numpy.lib.format.read_magic(fh)
                read_header = (numpy.lib.format.read_array_header_1_0 if version == (1, 0)
                               else numpy.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(fh)
            if dtype.hasobject:
                raise ValueError(f"member {info.filename!r} holds Python objects")
            self.headers[info.filename[:-len(".npy")]] = (tuple(shape), dtype)

    def read(self, name: str) -> numpy.ndarray:
        with self.zip.open(name + ".npy") as fh:
            return numpy.lib.format.read_array(fh, allow_pickle=False)

    def close(self) -> None:
        self.zip.close()


def _open(path: Path) -> _Archive:
    """The archive at ``path``, or the one-line CheckpointError that says what it is instead."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"checkpoint {path} is a folder; expected its checkpoint.npz")
    if not stat.S_ISREG(mode):                     # a FIFO or device would block or never end
        raise CheckpointError(f"checkpoint {path} is not a regular file (a pipe or a device); "
                              "expected a checkpoint.npz written by examples/train_denoiser.py")
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as fh:
                damaged = fh.read(4) == b"PK\x03\x04"    # a zip's start, but no end: cut short
            raise CheckpointError(
                f"checkpoint {path} is not a readable scratchnet checkpoint (a truncated or "
                "damaged .npz archive)" if damaged else f"checkpoint {path} is not an .npz "
                "archive (expected a checkpoint.npz written by examples/train_denoiser.py)")
        return _Archive(path)
    except CheckpointError:
        raise
    except Exception as exc:      # a damaged archive can fail anywhere in zip or .npy headers
        raise CheckpointError(f"checkpoint {path} is not a readable scratchnet checkpoint "
                              f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None


def _read_meta(archive: _Archive) -> dict[str, Any]:
    shape, dtype = archive.headers.get("meta", ((None,), None))
    if shape != () or dtype is None or dtype.kind != "U":
        raise ValueError("it has no meta data")
    if dtype.itemsize > MAX_META_BYTES:
        raise ValueError(f"its meta data is {dtype.itemsize:,} bytes, more than any run writes")
    meta = json.loads(str(archive.read("meta")))
    if not isinstance(meta, dict):
        raise ValueError("its meta data is not a JSON object")
    return meta


class _DoesNotFit(ValueError):
    """The archive is readable but holds another model's state."""


def _check_fits(archive: _Archive, model: Module) -> None:
    """Names and shapes of the model's state against the archive's headers (nothing read)."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k[len("model/"):]: shape for k, (shape, _) in archive.headers.items()
             if k.startswith("model/")}
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if missing or unexpected:
        raise _DoesNotFit(f"missing keys {missing}, unexpected keys {unexpected}")
    for k, shape in own.items():
        if saved[k] != shape:
            raise _DoesNotFit(f"'{k}' has shape {saved[k]}, the model expects {shape}")


def _read_state(archive: _Archive) -> dict[str, numpy.ndarray]:
    state = {}
    for key, (_, dtype) in archive.headers.items():
        if key.startswith("model/"):
            name = key[len("model/"):]
            if dtype.kind not in "fiub":
                raise ValueError(f"'{name}' holds {dtype} values, not numbers")
            value = archive.read(key)
            if value.dtype.kind == "f" and not numpy.isfinite(value).all():
                raise ValueError(f"'{name}' holds NaN or infinite values; weights that diverged "
                                 "cannot be used or resumed")
            state[name] = value
    return state


def load_checkpoint(path: str | os.PathLike, model: Module | None = None,
                    optimizer: Optimizer | None = None) -> dict[str, Any]:
    """Read a checkpoint; load it into ``model``/``optimizer`` when given.

    Every member's header is read and checked first (arrays only, none that would inflate
    far beyond its size in the file, shapes that fit ``model``), so a damaged or hostile file
    costs no more memory than the model it claims to hold; weights with NaN or infinity are
    refused; the model and the optimizer are changed only once everything fits.

    Returns:
        The ``meta`` dict, plus ``"model_state"`` (host arrays by parameter name).
    Raises:
        CheckpointError: unreadable file, or a model/optimizer it does not fit (one line).
    """
    path = Path(path)
    archive = _open(path)
    try:
        try:
            meta = _read_meta(archive)
            if model is not None:
                _check_fits(archive, model)
            meta["model_state"] = _read_state(archive)
            opt_state = None if optimizer is None else _read_optimizer(archive, meta, optimizer)
        except (KeyError, ValueError) as exc:
            what = ("does not fit this model" if isinstance(exc, _DoesNotFit)
                    else "is not a readable scratchnet checkpoint")
            raise CheckpointError(f"checkpoint {path} {what}: "
                                  f"{exc.args[0] if exc.args else exc}".replace("\n", " ")) from None
        except MemoryError:
            raise CheckpointError(f"checkpoint {path}: not enough memory to read it") from None
        except CheckpointError:
            raise
        except Exception as exc:      # a damaged archive can fail anywhere in zip, .npy or JSON
            raise CheckpointError(f"checkpoint {path} is not a readable scratchnet checkpoint "
                                  f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    finally:
        archive.close()
    if model is not None:
        model.load_state_dict(meta["model_state"])       # fits: checked above
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit "
                                  f"({type(exc).__name__}: {exc})") from None
    return meta


def _read_optimizer(archive: _Archive, meta: dict[str, Any], optimizer: Optimizer
                    ) -> dict[str, Any]:
    """The optimizer's state dict from the archive, checked against its parameters: one
    entry per parameter index, every moment of its parameter's shape, every scalar and
    hyperparameter a number of the right kind (the optimizer's own validation)."""
    saved = meta.get("optimizer")
    if not isinstance(saved, dict) or saved.get("type") != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint {archive.path} holds no {type(optimizer).__name__} state")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups) or any(
            not isinstance(g, dict) or len(g.get("params", ())) != len(own["params"])
            for g, own in zip(groups, optimizer.param_groups)):
        raise ValueError("the optimizer's parameter groups do not match the model's parameters")
    for group, own in zip(groups, optimizer.param_groups):
        hyper = {k: v for k, v in group.items() if k != "params"}
        for k, v in hyper.items():
            default = own.get(k)
            if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"optimizer setting {k} is {v!r}, expected a finite number")
        optimizer._validate({**own, **{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in hyper.items()}})
    state: dict[int, dict[str, Any]] = {}
    for key, (shape, dtype) in archive.headers.items():
        if key.startswith("optim/"):
            _, i, k = key.split("/", 2)
            index = int(i)
            if not 0 <= index < len(params) or shape != tuple(params[index].shape) or dtype.kind != "f":
                raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {shape} "
                                 f"({dtype}); its parameter is {tuple(params[index].shape) if 0 <= index < len(params) else 'missing'}")
            state.setdefault(index, {})[k] = archive.read(key)
    scalars = saved.get("scalars", {})
    if not isinstance(scalars, dict):
        raise ValueError("the optimizer's scalar state is not a mapping")
    for i, values in scalars.items():
        if not isinstance(values, dict) or not 0 <= int(i) < len(params) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                for v in values.values()):
            raise ValueError(f"the optimizer's scalar state for parameter {i} is {values!r}")
        state.setdefault(int(i), {}).update(values)
    return {"state": state, "param_groups": groups}


def load_model(path: str | os.PathLike) -> tuple[Module, dict[str, Any]]:
    """Rebuild the model a training checkpoint describes and load its weights.

    Returns:
        (model, meta): the model (host, float32 unless saved otherwise, in training mode) and
        the checkpoint's meta dict (``meta["config"]`` is the run's configuration).
    Raises:
        CheckpointError: unreadable, not written by a training run, or not fitting its model.
    """
    from .models import build_model             # models build on nn; imported late on purpose
    meta = load_checkpoint(path)
    config = meta.get("config")
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"checkpoint {path} has no run configuration (it was not written by "
                              "examples/train_denoiser.py)")
    try:
        model = build_model(config["model"], config.get("width"), config.get("depth"),
                            config.get("channels"))
        model.load_state_dict(meta["model_state"])
    except (KeyError, ValueError, TypeError) as exc:      # TypeError: e.g. a model ["conv"]
        raise CheckpointError(f"checkpoint {path} does not fit its model '{config['model']}': "
                              f"{exc.args[0] if exc.args else exc}") from None
    return model, meta
