"""scratchnet: a deep-learning framework written from scratch in NumPy (optionally CuPy)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:      # `python -m scratchnet.<program>` starting: its imports follow
    from ._startup import guard as _guard
    _guard()
from . import backend, functional, nn, optim
from .backend import get_array_module, manual_seed, to_backend, to_numpy
from .gradcheck import GradcheckError, gradcheck
from .nn import no_grad
from .serialization import SerializationError, load, save

__version__ = "0.1.0"
__all__ = ["backend", "functional", "nn", "optim", "gradcheck", "GradcheckError", "manual_seed",
           "get_array_module", "to_numpy", "to_backend", "no_grad", "save", "load",
           "SerializationError", "__version__"]
