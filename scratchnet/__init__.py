"""scratchnet: a deep-learning framework written from scratch in NumPy (optionally CuPy)."""
import sys as _sys

if _sys.argv[:1] == ["-m"]:      # `python -m scratchnet.<program>` starting: its imports follow
    from ._startup import guard as _guard
    _guard()
from . import backend, functional, nn, ops, optim
from . import blocked, kernels  # noqa: F401  (register the faster bodies of the ops)
from .backend import get_array_module, to_backend, to_numpy
from .gradcheck import GradcheckError, gradcheck
from .nn import no_grad
from .ops import override
from .random import manual_seed
from .serialization import SerializationError, load, save

__version__ = "0.1.0"
__all__ = ["backend", "functional", "nn", "ops", "optim", "gradcheck", "GradcheckError",
           "manual_seed", "get_array_module", "to_numpy", "to_backend", "no_grad", "override",
           "save", "load", "SerializationError", "__version__"]
