"""Weights shipped with the package, loaded like any run's checkpoint.

    from scratchnet import pretrained
    from scratchnet.checkpoint import load_model
    model, meta = load_model(pretrained.path())           # the blind grayscale DnCNN

``dncnn-blind.npz`` is the checkpoint of a DnCNN (depth 10, width 32) trained on Train400 with
Gaussian noise of a sigma drawn per patch in [0, 55]; the command, its wall time and its
scores are in docs/photos.md. Its ``meta["config"]`` is the run's configuration.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT", "path", "names"]

DEFAULT = "dncnn-blind"


def names() -> list[str]:
    """The shipped models' names (file names without .npz)."""
    return sorted(f.name[:-4] for f in resources.files(__name__).iterdir() if f.name.endswith(".npz"))


def path(name: str = DEFAULT) -> Path:
    """The file of a shipped model (FileNotFoundError, naming what is shipped, if missing)."""
    target = Path(str(resources.files(__name__).joinpath(f"{name}.npz")))
    if not target.is_file():
        raise FileNotFoundError(f"no shipped model {name!r} in {target.parent} (shipped: "
                                f"{', '.join(names()) or 'none'})")
    return target
