"""Dropout, with PyTorch's semantics; the math is in `scratchnet.functional.dropout`."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_array_module
from ..random import default_rng, draw_seed
from ._checks import check_input, flag, real_number
from .module import Module

Array = Any


class Dropout(Module):
    """In training mode, zero each entry with probability p and scale the others by
    ``1 / (1 - p)``; in eval mode, the identity.

    Args:
        p: the probability of dropping an entry, in [0, 1].
        inplace: accepted so that PyTorch code runs, and changes nothing: the output is a
            new array and the input is left as it was, so it saves no memory.

    Shapes: any -> the same. Backward (`functional.dropout_backward`):
    ``dx = gy * keep / (1 - p)`` with the forward pass's mask ``keep`` (one byte per entry,
    the only thing kept), and ``dx = gy`` in eval mode.

    The masks are reproducible: each layer draws its seed from `scratchnet.manual_seed`'s
    generator at its first training forward (so building a model with dropout draws the
    same weights as without it), and its k-th mask from the stream ``(seed, k)`` on the
    input's backend (`scratchnet.random.default_rng`).
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = real_number(p, "p", "Dropout", 0, 1)
        self.inplace = flag(inplace, "inplace", "Dropout")
        self.seed: int | None = None
        self.masks_drawn = 0

    def _rng(self, x: Array) -> Any:
        """The generator of the next mask (None when no mask is drawn)."""
        if not self.training or self.p == 0:
            return None
        if self.seed is None:
            self.seed = draw_seed()
        self.masks_drawn += 1
        return default_rng((self.seed, self.masks_drawn - 1), get_array_module(x))

    def forward(self, x: Array) -> Array:
        check_input(self, x, "(N, ...)")
        y, keep = F.dropout(x, self.p, self.training, self._rng(x))
        self._cache = (keep,)
        return y

    def backward(self, grad_output: Array) -> Array:
        (keep,) = self._pop_cache(grad_output)
        return F.dropout_backward(grad_output, keep, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
