"""The losses: mean squared error, L1, binary cross-entropy on probabilities and on logits,
and the cross-entropy of a softmax over classes.

Each takes PyTorch's ``reduction`` ('mean', the default; 'sum'; 'none'), as a keyword
(PyTorch's deprecated ``size_average`` and ``reduce`` are not accepted). ``loss(input,
target)`` returns a 0-d array on the inputs' backend (``float(loss)`` works), or with
'none' one loss per entry; ``loss.backward()`` returns dL/dinput, times ``grad_output``
when one is given (with 'none' it must be given: an array of the input's shape).
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import backend_name, get_array_module
from .module import Module

Array = Any


class _Loss(Module):
    """The reduction argument, and the checks of input and target, shared by the losses."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in F.REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                             f"'none', got {reduction!r}")
        self.reduction = reduction

    def _keep_weights(self, **weights: Array | None) -> None:
        """PyTorch's optional ``weight`` (and ``pos_weight``), kept as buffers so that
        ``to()`` moves and casts them."""
        for key, w in weights.items():
            if w is None:
                object.__setattr__(self, key, None)
            elif hasattr(w, "shape") and hasattr(w, "dtype") and w.dtype.kind == "f":
                self.register_buffer(key, w)
            else:
                raise TypeError(f"{type(self).__name__}: {key} must be None or a floating-point "
                                f"array, got {getattr(w, 'dtype', type(w).__name__)}")

    def _check(self, input: Array, target: Array, **weights: Array | None) -> None:
        name = type(self).__name__
        if getattr(input, "shape", None) != getattr(target, "shape", None):
            raise ValueError(f"{name}: input shape {getattr(input, 'shape', None)} and target "
                             f"shape {getattr(target, 'shape', None)} differ; they must match")
        if input.dtype != target.dtype:
            raise TypeError(f"{name}: input dtype {input.dtype} and target dtype {target.dtype} "
                            "differ; cast one of them")
        self._check_backends(input, target)
        for key, w in weights.items():
            if w is None:
                continue
            if w.dtype != input.dtype or get_array_module(w) is not get_array_module(input):
                raise TypeError(f"{name}: {key} is a {w.dtype} {backend_name(w)} array, the input "
                                f"a {input.dtype} {backend_name(input)} one; cast or move {key} "
                                "(loss.to(...) moves and casts it)")

    def _check_backends(self, input: Array, target: Array) -> None:
        if get_array_module(target) is not get_array_module(input):
            raise TypeError(f"{type(self).__name__}: input is on {backend_name(input)}, target on "
                            f"{backend_name(target)}; move one of them")

    def _keep(self, grad_output: Array | float) -> Any:
        if self.reduction == "none" and not hasattr(grad_output, "shape"):
            raise ValueError(f"{type(self).__name__}(reduction='none').backward needs "
                             "grad_output, an array of the input's shape (one loss per entry)")
        return self._pop_cache(grad_output)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """``loss = mean((input - target)**2)`` over all M elements (PyTorch's reduction='mean').

    Args:
        reduction: 'mean', 'sum' (``sum((input - target)**2)``) or 'none' (the squares).

    ``loss = mse(pred, target)`` returns a 0-d array on the inputs' backend (``float(loss)``
    works); ``mse.backward()`` returns ``dL/dpred = 2 * (pred - target) / M``, times
    ``grad_output`` when one is given (`functional.mse_backward`); without the ``/ M`` for
    'sum' and 'none'. Only the difference is kept.
    """

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        if self.reduction == "mean":
            loss, self._cache = F.mse_loss(input, target)
        else:
            loss, self._cache = F.mse_loss(input, target, self.reduction)
        return loss

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        diff = self._keep(grad_output)
        if self.reduction == "mean":               # the call an exercise's override expects
            return F.mse_backward(diff, grad_output)
        return F.mse_backward(diff, grad_output, self.reduction)


class L1Loss(_Loss):
    """``loss = mean(|input - target|)`` over all M elements.

    Args:
        reduction: 'mean', 'sum' or 'none'.

    Backward (`functional.l1_loss_backward`): ``dL/dinput = sign(input - target) / M``
    (0 where they are equal, as in PyTorch), without ``/ M`` for 'sum' and 'none'. Only the
    difference is kept.
    """

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        loss, self._cache = F.l1_loss(input, target, self.reduction)
        return loss

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        return F.l1_loss_backward(self._keep(grad_output), grad_output, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities:
    ``l = -w * (t * log(x) + (1 - t) * log(1 - x))``, each log clamped at -100 (PyTorch).

    Args:
        weight: None, or a rescaling of each entry's loss (an array broadcastable to the
            input, of its dtype).
        reduction: 'mean', 'sum' or 'none'.

    The input must lie in [0, 1] (a `Sigmoid` output); for logits `BCEWithLogitsLoss` is
    the stable choice. Backward (`functional.binary_cross_entropy_backward`):
    ``dl/dx = w * (x - t) / max(x * (1 - x), 1e-12)``. Input and target are kept.
    """

    def __init__(self, weight: Array | None = None, *, reduction: str = "mean"):
        super().__init__(reduction)
        self._keep_weights(weight=weight)

    def forward(self, input: Array, target: Array) -> Array:
        self._check(input, target, weight=self.weight)
        if input.size and not (float(input.min()) >= 0 and float(input.max()) <= 1):
            raise ValueError(f"BCELoss: input values must lie in [0, 1] (probabilities), got "
                             f"[{float(input.min()):.4g}, {float(input.max()):.4g}]; for logits "
                             "use BCEWithLogitsLoss")
        self._cache = (input, target)
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        input, target = self._keep(grad_output)
        return F.binary_cross_entropy_backward(grad_output, input, target, self.weight,
                                               self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(input)``, from the logits, without overflow.

    Args:
        weight: None, or a rescaling of each entry's loss (broadcastable to the input).
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: None, or the weight of the positive term (broadcastable to the input,
            e.g. one per class along the last axis), as in PyTorch.

    Math (`functional.binary_cross_entropy_with_logits`), with ``p = pos_weight`` and
    ``s = sigmoid(x)``: ``l = -w * (p * t * log(s) + (1 - t) * log(1 - s))``, computed as
    ``w * (p * t * softplus(-x) + (1 - t) * softplus(x))`` with the log-sum-exp form
    ``softplus(z) = max(z, 0) + log(1 + exp(-|z|))``, which never overflows.
    Backward: ``dl/dx = w * ((1 + (p - 1) * t) * s - p * t)``, which is ``w * (s - t)`` for
    ``p = 1``. Input and target are kept.
    """

    def __init__(self, weight: Array | None = None, *, reduction: str = "mean",
                 pos_weight: Array | None = None):
        super().__init__(reduction)
        self._keep_weights(weight=weight, pos_weight=pos_weight)

    def forward(self, input: Array, target: Array) -> Array:
        self._check(input, target, weight=self.weight, pos_weight=self.pos_weight)
        self._cache = (input, target)
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        input, target = self._keep(grad_output)
        return F.binary_cross_entropy_with_logits_backward(
            grad_output, input, target, self.weight, self.reduction, self.pos_weight)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of the softmax of logits (N, C) against class indices (N,): the loss of
    a classifier, ``l_n = -log(softmax(input[n])[target[n]])`` (PyTorch's
    ``CrossEntropyLoss``, without its class weights, ignore_index and label smoothing).

    Args:
        reduction: 'mean' (over the N samples), 'sum' or 'none' (one loss per sample).

    Math (`functional.cross_entropy`): computed as ``logsumexp(input[n]) - input[n, t_n]``
    with each row's maximum subtracted first, so no ``exp`` overflows. Backward
    (`functional.cross_entropy_backward`): ``dL/dinput = (softmax(input) - onehot(target))
    / N``. The probabilities and the targets are kept.
    """

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input: Array, target: Array) -> Array:
        shape, tshape = getattr(input, "shape", None), getattr(target, "shape", None)
        if len(shape or ()) != 2 or tshape != shape[:1]:
            raise ValueError(f"CrossEntropyLoss: expected logits (N, C) and class indices (N,), "
                             f"got shapes {shape} and {tshape}")
        if input.dtype.kind != "f" or target.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss: expected floating-point logits and integer class "
                            f"indices, got {input.dtype} and {target.dtype}")
        self._check_backends(input, target)
        if target.size and not (0 <= int(target.min()) and int(target.max()) < shape[1]):
            raise ValueError(f"CrossEntropyLoss: class indices must lie in [0, {shape[1]}), got "
                             f"[{int(target.min())}, {int(target.max())}]")
        if self.reduction == "mean":
            loss, probs = F.cross_entropy(input, target)
        else:
            loss, probs = F.cross_entropy(input, target, self.reduction)
        self._cache = (probs, target)
        return loss

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        probs, target = self._keep(grad_output)
        if self.reduction == "mean":               # the call an exercise's override expects
            return F.cross_entropy_backward(probs, target, grad_output)
        return F.cross_entropy_backward(probs, target, grad_output, self.reduction)
