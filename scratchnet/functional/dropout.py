"""Dropout ("inverted" dropout, as in PyTorch) and its backward pass.

In training, each entry is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``, so
its expected value is unchanged and evaluation needs no rescaling: there dropout is the
identity. The backward pass routes the gradient through the same entries with the same
scale; the boolean mask of kept entries (one byte per entry) is what it needs.
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op
from ..random import default_rng, draw_seed

Array = Any

__all__ = ["dropout", "dropout_backward"]


def _scale(p: float) -> float:
    """``1 / (1 - p)``, and 0 for ``p = 1`` (every entry dropped)."""
    return 0.0 if p == 1 else 1.0 / (1 - p)


@op
def dropout(x: Array, p: float = 0.5, training: bool = True, rng: Any = None
            ) -> tuple[Array, Array | None]:
    """Zero each entry with probability p and scale the others by ``1 / (1 - p)``.

    Args:
        x: any shape.
        p: the probability of dropping an entry, in [0, 1].
        training: False (evaluation) or ``p = 0`` returns x itself.
        rng: a generator on x's backend (`scratchnet.random.default_rng`) to draw the mask
            from; None seeds one from `scratchnet.manual_seed`'s generator.

    Returns:
        (y, keep): y the shape of x, and the boolean mask of kept entries for
        `dropout_backward` (None when x was returned as it is).

    Math: ``keep = u >= p`` with ``u ~ U[0, 1)`` per entry, so ``P(keep) = 1 - p``, and
    ``y = x * keep / (1 - p)``, whose expectation is x.
    """
    if not training or p == 0:
        return x, None
    xp = get_array_module(x)
    if rng is None:
        rng = default_rng(draw_seed(), xp)
    keep = rng.random(x.shape, dtype=x.dtype) >= p
    return xp.where(keep, x * _scale(p), 0), keep


@op
def dropout_backward(gy: Array, keep: Array | None, p: float) -> Array:
    """dL/dx of `dropout`.

    Args:
        gy: the upstream gradient, the shape of x.
        keep: the mask `dropout` returned (None: it returned x as it is).
        p: the forward pass's p.

    Returns:
        dx: ``gy * keep / (1 - p)``, or gy itself when keep is None.
    """
    if keep is None:
        return gy
    return get_array_module(gy).where(keep, gy * _scale(p), 0)
