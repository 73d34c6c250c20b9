"""Atomic file writing, shared by checkpoints, datasets, figures and metrics. A failed write
(disk full, no permission) leaves the previous file intact, no temporary file behind, and
raises `WriteError` naming the file and the reason."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


class WriteError(Exception):
    """An output file could not be written (disk full, permissions, ...); names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it over
    ``path``: readers see the old file or the new one, never half of one (also after a
    crash or Ctrl-C in the middle of writing)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.chmod(tmp, 0o666 & ~_umask())          # mkstemp makes 0600; use the usual mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {path} ({exc.strerror or exc})") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively through dicts,
    lists and tuples: Python's json writes them as ``NaN`` / ``Infinity``, which strict JSON
    readers (JavaScript's JSON.parse, jq, most other languages) reject."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as strict JSON (non-finite numbers as null, see `strict_json`),
    indented, atomically."""
    atomic_write_text(path, json.dumps(strict_json(value), indent=2, allow_nan=False))


def atomic_write_csv(path: str | os.PathLike, fields: list[str], rows: list[dict]) -> None:
    """A CSV file with a header of ``fields`` (keys of the rows not among them are left out)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
