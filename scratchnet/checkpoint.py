"""Checkpoints as one ``.npz`` file, written atomically, readable on a NumPy-only machine.

Layout: ``model/<param name>`` arrays, ``optim/<index>/<key>`` optimizer state arrays, and
``meta``: one JSON string (optimizer hyperparameters, epoch, config, history, ...). Every
array is copied to the host first, so a checkpoint written from CuPy loads without a GPU.
"""
from __future__ import annotations

import io
import json
import os
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


def load_checkpoint(path: str | os.PathLike, model: Module | None = None,
                    optimizer: Optimizer | None = None) -> dict[str, Any]:
    """Read a checkpoint; load it into ``model``/``optimizer`` when given.

    Returns:
        The ``meta`` dict, plus ``"model_state"`` (host arrays by parameter name).
    Raises:
        CheckpointError: unreadable file, or a model/optimizer it does not fit.
    """
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            damaged = fh.read(4) == b"PK\x03\x04"        # a zip's start, but no end: cut short
        raise CheckpointError(
            f"checkpoint {path} is not a readable scratchnet checkpoint (a truncated or damaged "
            ".npz archive)" if damaged else f"checkpoint {path} is not an .npz archive "
            "(expected a checkpoint.npz written by examples/train_denoiser.py)")
    try:
        with open(path, "rb") as fh, numpy.load(fh, allow_pickle=False) as f:
            files = {k: f[k] for k in f.files}
        meta = json.loads(str(files.pop("meta")))
        if not isinstance(meta, dict):
            raise ValueError("its meta data is not a JSON object")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:      # a damaged archive can fail anywhere in zip, .npy or JSON
        raise CheckpointError(f"checkpoint {path} is not a readable scratchnet checkpoint "
                              f"({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    state = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    meta["model_state"] = state
    if model is not None:
        try:
            model.load_state_dict(state)
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this model: "
                                  f"{exc.args[0] if exc.args else exc}") from None
    if optimizer is not None:
        saved = meta.get("optimizer")
        if not isinstance(saved, dict) or saved.get("type") != type(optimizer).__name__:
            raise CheckpointError(f"checkpoint {path} holds no {type(optimizer).__name__} state")
        try:
            opt_state: dict[int, dict[str, Any]] = {}
            for key, v in files.items():
                if key.startswith("optim/"):
                    _, i, k = key.split("/", 2)
                    opt_state.setdefault(int(i), {})[k] = v
            for i, scalars in saved["scalars"].items():
                opt_state.setdefault(int(i), {}).update(scalars)
            optimizer.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
        except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit "
                                  f"({type(exc).__name__}: {exc})") from None
    return meta


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
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its model '{config['model']}': "
                              f"{exc.args[0] if exc.args else exc}") from None
    return model, meta
