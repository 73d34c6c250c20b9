"""The losses and their gradients: mean squared error, L1, binary cross-entropy (on
probabilities, and on logits), and the cross-entropy of a softmax over classes.

Every loss takes PyTorch's ``reduction``: ``'mean'`` (the default) averages the M
element-wise losses, ``'sum'`` adds them, ``'none'`` returns them, the shape of the input.
Its backward then scales the element-wise derivative by ``grad_output / M``, by
``grad_output``, or multiplies it by ``grad_output`` entry by entry (an array of the
input's shape), in that order.

Course: [1. A chain by hand](../learn/01-chain.md).
"""
from __future__ import annotations

from typing import Any

from ..backend import get_array_module
from ..ops import op
from .activation import sigmoid

Array = Any

__all__ = ["mse_loss", "mse_backward", "mean_square", "l1_loss", "l1_loss_backward",
           "binary_cross_entropy", "binary_cross_entropy_backward",
           "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
           "cross_entropy", "cross_entropy_backward", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")
_EPSILON = 9.999999960041972e-13   # PyTorch's BCE clamp, 1e-12 as a float32: float(np.float32(1e-12))


def _reduce(loss: Array, reduction: str) -> Array:
    """The element-wise ``loss`` averaged, summed (both as 0-d arrays) or as it is."""
    if reduction == "none":
        return loss
    xp = get_array_module(loss)
    return xp.asarray(loss.mean() if reduction == "mean" else loss.sum())


def _chain(d: Array, grad_output: Array | float, reduction: str) -> Array:
    """The element-wise derivative ``d`` times dL/d(each element's loss)."""
    if reduction == "mean":
        return d * (1.0 / d.size) * grad_output
    return d * grad_output


@op
def mean_square(a: Array) -> Array:
    """The mean of ``a**2`` over all entries, as a 0-d array."""
    xp = get_array_module(a)
    return xp.asarray(xp.mean(a * a))


@op
def mse_loss(input: Array, target: Array, reduction: str = "mean") -> tuple[Array, Array]:
    """``mean((input - target)**2)`` over all M entries (PyTorch's reduction='mean').

    Args:
        input: the prediction, any shape.
        target: the same shape.
        reduction: 'mean', 'sum' (``sum((input - target)**2)``) or 'none' (the squares).

    Returns:
        (loss, diff): the loss (a 0-d array, or the input's shape for 'none'), and
        ``diff = input - target``, what `mse_backward` needs.
    """
    diff = input - target
    if reduction == "mean":
        return mean_square(diff), diff
    return _reduce(diff * diff, reduction), diff


@op
def mse_backward(diff: Array, grad_output: Array | float, reduction: str = "mean") -> Array:
    """dL/dinput of `mse_loss`.

    Args:
        diff: ``input - target``, from the forward pass.
        grad_output: dL/dloss, a number or a 0-d array (1.0 at the end of the chain); for
            reduction 'none' an array of diff's shape.
        reduction: the forward pass's.

    Returns:
        dinput, the shape of diff.

    Math: ``loss = (1/M) * sum of diff**2``, so ``dinput = grad_output * 2 * diff / M``;
    with 'sum' ``dinput = grad_output * 2 * diff``, with 'none' the same entry by entry.
    """
    if reduction != "mean":
        return _chain(2 * diff, grad_output, reduction)
    if isinstance(grad_output, (int, float)):          # one pass over diff, not two
        return diff * (2.0 / diff.size * grad_output)
    return diff * (2.0 / diff.size) * grad_output


@op
def l1_loss(input: Array, target: Array, reduction: str = "mean") -> tuple[Array, Array]:
    """The mean absolute error ``mean(|input - target|)`` (PyTorch's ``F.l1_loss``).

    Args:
        input: the prediction, any shape.
        target: the same shape.
        reduction: 'mean', 'sum' or 'none'.

    Returns:
        (loss, diff): the loss, and ``diff = input - target`` for `l1_loss_backward`.
    """
    diff = input - target
    return _reduce(get_array_module(diff).abs(diff), reduction), diff


@op
def l1_loss_backward(diff: Array, grad_output: Array | float, reduction: str = "mean"
                     ) -> Array:
    """dL/dinput of `l1_loss`.

    Args:
        diff: ``input - target``, from the forward pass.
        grad_output: dL/dloss (an array of diff's shape for reduction 'none').
        reduction: the forward pass's.

    Returns:
        dinput, the shape of diff.

    Math: ``d|diff|/dinput = sign(diff)`` (0 where diff is 0, as in PyTorch), so with
    'mean' ``dinput = grad_output * sign(diff) / M``.
    """
    return _chain(get_array_module(diff).sign(diff), grad_output, reduction)


def _clamped_log(a: Array) -> Array:
    """``max(log(a), -100)`` for ``a >= 0``; a is first raised to 1e-45 (below ``exp(-100)``,
    and still > 0 in float32), so that 0 gives -100 without a log(0) warning."""
    xp = get_array_module(a)
    return xp.maximum(xp.log(xp.maximum(a, 1e-45)), -100)


@op
def binary_cross_entropy(input: Array, target: Array, weight: Array | None = None,
                         reduction: str = "mean") -> Array:
    """Binary cross-entropy of probabilities (PyTorch's ``F.binary_cross_entropy``).

    Args:
        input: probabilities in [0, 1], any shape.
        target: the same shape, usually in [0, 1].
        weight: None, or a rescaling of each element's loss, broadcastable to input.
        reduction: 'mean', 'sum' or 'none'.

    Returns:
        The loss; the arguments are what `binary_cross_entropy_backward` needs.

    Math: ``l = -w * (t * log(x) + (1 - t) * log(1 - x))``, each logarithm clamped at
    -100 as in PyTorch, so that ``x = 0`` or ``x = 1`` gives a finite loss.
    """
    loss = -(target * _clamped_log(input) + (1 - target) * _clamped_log(1 - input))
    return _reduce(loss if weight is None else loss * weight, reduction)


@op
def binary_cross_entropy_backward(grad_output: Array | float, input: Array, target: Array,
                                  weight: Array | None = None, reduction: str = "mean"
                                  ) -> Array:
    """dL/dinput of `binary_cross_entropy`.

    Args:
        grad_output: dL/dloss (an array of input's shape for reduction 'none').
        input: the forward pass's probabilities.
        target: its targets.
        weight: its weight, or None.
        reduction: its reduction.

    Returns:
        dinput, the shape of input.

    Math: ``dl/dx = w * (x - t) / (x * (1 - x))``; the denominator is kept at least
    PyTorch's ``1e-12`` (a float32 constant there, so its value is ``9.99999996e-13``), so
    the gradient stays finite at 0 and 1.
    """
    xp = get_array_module(input)
    d = (input - target) / xp.maximum(input * (1 - input), _EPSILON)
    return _chain(d if weight is None else d * weight, grad_output, reduction)


@op
def binary_cross_entropy_with_logits(input: Array, target: Array, weight: Array | None = None,
                                     reduction: str = "mean", pos_weight: Array | None = None
                                     ) -> Array:
    """Binary cross-entropy of ``sigmoid(input)``, computed from the logits without overflow
    (PyTorch's ``F.binary_cross_entropy_with_logits``).

    Args:
        input: logits, any shape.
        target: the same shape, usually in [0, 1].
        weight: None, or a rescaling of each element's loss, broadcastable to input.
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: None, or the weight of the positive term, broadcastable to input (one
            per class, along the last axis).

    Returns:
        The loss; the arguments are what `binary_cross_entropy_with_logits_backward` needs.

    Math: with ``s = sigmoid(x)``, ``p = pos_weight`` (1 when None) and
    ``-log(s) = softplus(-x)``, ``-log(1 - s) = softplus(x)``,
    ``l = w * (p * t * softplus(-x) + (1 - t) * softplus(x))``, where the log-sum-exp form
    ``softplus(z) = log(exp(0) + exp(z)) = max(z, 0) + log(1 + exp(-|z|))`` (``logaddexp``)
    never overflows and
    both terms are >= 0 for t in [0, 1], so nothing cancels (``x = -30, t = 0`` keeps its 1e-13).
    """
    xp = get_array_module(input)
    softplus, softplus_neg = xp.logaddexp(0, input), xp.logaddexp(0, -input)
    positive = target * softplus_neg if pos_weight is None else pos_weight * target * softplus_neg
    loss = positive + (1 - target) * softplus
    return _reduce(loss if weight is None else loss * weight, reduction)


@op
def binary_cross_entropy_with_logits_backward(grad_output: Array | float, input: Array,
                                              target: Array, weight: Array | None = None,
                                              reduction: str = "mean",
                                              pos_weight: Array | None = None) -> Array:
    """dL/dinput of `binary_cross_entropy_with_logits`.

    Args:
        grad_output: dL/dloss (an array of input's shape for reduction 'none').
        input: the forward pass's logits.
        target: its targets.
        weight: its weight, or None.
        reduction: its reduction.
        pos_weight: its pos_weight, or None.

    Returns:
        dinput, the shape of input.

    Math: ``d softplus(x)/dx = s`` and ``d softplus(-x)/dx = s - 1`` with ``s = sigmoid(x)``,
    so ``dl/dx = w * (p * t * (s - 1) + (1 - t) * s) = w * ((1 + (p - 1) * t) * s - p * t)``,
    which is ``w * (s - t)`` when ``p = 1``.
    """
    s = sigmoid(input)
    if pos_weight is None:
        d = s - target
    else:
        d = (1 + (pos_weight - 1) * target) * s - pos_weight * target
    return _chain(d if weight is None else d * weight, grad_output, reduction)


@op
def cross_entropy(input: Array, target: Array, reduction: str = "mean") -> tuple[Array, Array]:
    """Cross-entropy of the softmax of logits against class indices (PyTorch's
    ``F.cross_entropy``).

    Args:
        input: logits, (N, C): one score per class.
        target: class indices, (N,), integers in [0, C).
        reduction: 'mean' (over the N samples), 'sum' or 'none' (one loss per sample, (N,)).

    Returns:
        (loss, probs): the loss, and ``probs = softmax(input)`` (N, C), what
        `cross_entropy_backward` needs.

    Math: ``l_n = -log(p[n, t_n]) = logsumexp(input[n]) - input[n, t_n]``, computed with the
    row's maximum ``m_n`` subtracted first, ``logsumexp(y) = m + log(sum(exp(y - m)))``, so
    that no ``exp`` overflows and no probability is taken the log of.
    """
    xp = get_array_module(input)
    shifted = input - input.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = xp.log(total[:, 0]) - shifted[xp.arange(len(target)), target]
    return _reduce(loss, reduction), exp / total


@op
def cross_entropy_backward(probs: Array, target: Array, grad_output: Array | float,
                           reduction: str = "mean") -> Array:
    """dL/dinput of `cross_entropy`.

    Args:
        probs: ``softmax(input)``, (N, C), from the forward pass.
        target: its class indices, (N,).
        grad_output: dL/dloss (for reduction 'none' an array of shape (N,), one per sample).
        reduction: the forward pass's.

    Returns:
        dinput, (N, C).

    Math: the softmax's Jacobian and the log's collapse into ``dl_n/dinput[n] = p[n] -
    onehot(t_n)``; with 'mean' ``dinput = grad_output * (probs - onehot(target)) / N``.
    """
    xp = get_array_module(probs)
    d = probs.copy()
    d[xp.arange(len(target)), target] -= 1
    if reduction == "none":
        return d * grad_output[:, None]
    return d * ((1.0 / len(target) if reduction == "mean" else 1.0) * grad_output)
