"""Optimizers with PyTorch's semantics: SGD, Adam (coupled L2) and AdamW (decoupled decay).

Every update is done in place on ``param.data`` with Python-float coefficients, so a float32
model keeps float32 parameters and float32 optimizer state. Adam's update of one parameter is
the op `adam_step` (swappable with `scratchnet.override`, like every layer's backward);
`adam_update` runs it over a parameter group and `zero_grads` clears a group's gradients. On
CuPy both run as one kernel launch for the whole group (`scratchnet.kernels.optim`), which
rounds every operation as the array code here does, so both give the same bits.

Course: [8. Optimisers](../learn/08-optimisers.md).
"""
from __future__ import annotations

import math
import sys
from typing import Any, Iterable

from . import lr_scheduler
from .backend import get_array_module, to_backend
from .lr_scheduler import CosineAnnealingLR
from .nn.module import Parameter
from .ops import op

Array = Any

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "CosineAnnealingLR", "lr_scheduler", "adam_step",
           "adam_update", "adam_coefficients", "zero_grads"]
sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler   # from scratchnet.optim.lr_scheduler import ...


def _check_range(name: str, value: float, low: float, high: float | None = None,
                 high_inclusive: bool = False) -> None:
    ok = value >= low and (high is None or (value <= high if high_inclusive else value < high))
    if not ok:
        upper = "" if high is None else (f" and <= {high}" if high_inclusive else f" and < {high}")
        raise ValueError(f"invalid {name} {value!r}: expected a number >= {low}{upper}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad and (de)serialisation.

    Args:
        params: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ...}``
            (parameter groups, as in PyTorch).
        defaults: hyperparameters used where a group does not set its own.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], defaults: dict[str, Any]):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
                if id(p) in seen:            # it would be updated twice per step
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} is "
                                     "given twice; pass each parameter once (model.parameters() "
                                     "lists shared ones once)")
                seen.add(id(p))
            self._validate(group)
            self.param_groups.append(group)
        self.state: dict[Parameter, dict[str, Any]] = {}

    def _validate(self, group: dict[str, Any]) -> None:
        _check_range("learning rate", group["lr"], 0.0)
        _check_range("weight_decay", group.get("weight_decay", 0.0), 0.0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradient of every parameter to zeros (the op `zero_grads`, per group).

        Args:
            set_to_none: accepted for PyTorch code; either value gives zeros. PyTorch
                (default True) drops the gradient tensor so that its next backward can
                assign instead of add; here every backward *adds* into ``param.grad``
                (``+=``), so the array stays and is zero-filled, and ``p.grad`` is never
                None. One consequence: a parameter that took no part in the last backward
                still gets an update from its zero gradient (momentum, weight decay), as in
                PyTorch with ``set_to_none=False``; freeze it (``requires_grad = False``) or
                leave it out of the optimizer to skip it.
        """
        for group in self.param_groups:
            zero_grads([p.grad for p in group["params"]])

    def step(self) -> None:
        """Update every parameter with ``requires_grad`` (a frozen one is left as it is)."""
        for group in self.param_groups:
            for p in _trained(group):
                state = self.state.setdefault(p, {})
                _follow(p, state)
                self._update(p, state, group)

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{hyperparameters, "params": [index]}]}``."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index[p] = len(index)
                ids.append(index[p])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state; arrays move to each parameter's backend/dtype."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter groups "
                             "do not match this optimizer's parameters")
        params = [p for group in self.param_groups for p in group["params"]]
        for own, saved in zip(self.param_groups, groups):
            own.update({k: (tuple(v) if isinstance(v, list) else v)
                        for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            xp = get_array_module(p.data)
            self.state[p] = {k: (xp.array(to_backend(v, xp), dtype=p.dtype)     # a copy
                                 if getattr(v, "ndim", 0) > 0 else _scalar(v)) for k, v in s.items()}


def _follow(p: Parameter, state: dict[str, Any]) -> None:
    """Optimizer state follows its parameter: after ``model.to("float64")`` or ``.to("cupy")``
    (or a new ``p.data``) the moment buffers are converted too, values kept, so an update never
    mixes precisions or devices. Runs every step, so the usual case (same array type, same
    dtype) is checked without asking which backend an array belongs to."""
    data = p.data
    for k, v in state.items():
        if getattr(v, "ndim", 0) > 0 and (type(v) is not type(data) or v.dtype != data.dtype):
            xp = get_array_module(data)
            state[k] = xp.asarray(to_backend(v, xp), dtype=data.dtype)


def _trained(group: dict[str, Any]) -> list[Parameter]:
    """The group's parameters with ``requires_grad`` (the ones a step updates)."""
    return [p for p in group["params"] if p.requires_grad]


def _scalar(v: Any) -> Any:
    """A 0-d array (as read back from an .npz file) becomes a Python number again."""
    return v.item() if hasattr(v, "item") else v


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and (coupled) weight decay.

    The update, with ``buf = g`` at step 1:

        g = grad + weight_decay*p;  buf = momentum*buf + (1 - dampening)*g
        g = g + momentum*buf if nesterov else buf;  p -= lr*g
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check_range("momentum", group["momentum"], 0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            buf = state["momentum_buffer"]
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g


def adam_coefficients(lr: float, betas: tuple[float, float], step: int) -> tuple[float, float]:
    """``(lr / (1 - beta1**t), sqrt(1 - beta2**t))`` at step t: the bias corrections, folded
    into the step size and the denominator as PyTorch folds them."""
    beta1, beta2 = betas
    return lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step)


@op
def adam_step(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, step: int,
              lr: float, betas: tuple[float, float], eps: float, weight_decay: float
              ) -> tuple[Array, Array, Array]:
    """One Adam update of one parameter, as PyTorch's Adam does it (weight decay as L2).

    Args:
        param: the parameter's values, updated in place.
        grad: dL/dparam.
        exp_avg: m, the running average of gradients (zeros before the first step), in place.
        exp_avg_sq: v, the running average of squared gradients, in place.
        step: t, the number of this update (1 for the first).
        lr: the learning rate.
        betas: (beta1, beta2).
        eps: added to the denominator.
        weight_decay: the L2 coefficient (0 for none).

    Returns:
        (param, exp_avg, exp_avg_sq): the three arrays, updated. (A replacement may return
        new arrays instead; the optimizer copies them into its own.)

    Math:

        g     = grad + weight_decay * param
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        param = param - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    which is ``param - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected
    ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``.
    """
    xp = get_array_module(param)
    beta1, beta2 = betas
    step_size, bias_correction2_sqrt = adam_coefficients(lr, betas, step)
    g = grad + weight_decay * param if weight_decay else grad
    exp_avg *= beta1
    exp_avg += (1 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * (g * g)
    denom = xp.sqrt(exp_avg_sq)
    denom /= bias_correction2_sqrt
    denom += eps
    param -= step_size * exp_avg / denom
    return param, exp_avg, exp_avg_sq


@op
def adam_update(params: list[Array], grads: list[Array], exp_avgs: list[Array],
                exp_avg_sqs: list[Array], steps: list[int], lr: float,
                betas: tuple[float, float], eps: float, weight_decay: float,
                decoupled: bool = False) -> None:
    """`adam_step` for every parameter of a group, in place.

    Args:
        params: the parameters' arrays.
        grads: their gradients.
        exp_avgs: their first moments.
        exp_avg_sqs: their second moments.
        steps: each parameter's step number t for this update.
        lr: the learning rate.
        betas: (beta1, beta2).
        eps: added to the denominator.
        weight_decay: L2 (Adam), or the decoupled decay ``p *= 1 - lr*weight_decay`` before
            the step (AdamW, with ``decoupled``).
        decoupled: AdamW's decay instead of L2.
    """
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        wd = weight_decay
        if decoupled and wd:
            p *= 1 - lr * wd
            wd = 0.0
        for own, new in zip((p, m, v), adam_step(p, g, m, v, t, lr, betas, eps, wd)):
            if new is not own:
                own[...] = new


@op
def zero_grads(grads: list[Array]) -> None:
    """Set every array of ``grads`` to zero, in place (an optimizer's ``zero_grad``)."""
    for g in grads:
        g.fill(0)


class Adam(Optimizer):
    """Adam with PyTorch's exact semantics (weight decay is L2 added to the gradient).

    With t the step count (the update is `adam_step`):

        g = grad + weight_decay * p
        m = beta1*m + (1 - beta1)*g;   v = beta2*v + (1 - beta2)*g*g
        p -= lr/(1 - beta1**t) * m / (sqrt(v)/sqrt(1 - beta2**t) + eps)
    """

    decoupled = False

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check_range("eps", group["eps"], 0.0)
        if len(group["betas"]) != 2:
            raise ValueError(f"invalid betas {group['betas']!r}: expected a pair")
        for i, b in enumerate(group["betas"]):
            _check_range(f"beta{i + 1}", b, 0.0, 1.0)

    def step(self) -> None:
        for group in self.param_groups:
            params = _trained(group)
            if not params:
                continue
            states = [self.state.setdefault(p, {}) for p in params]
            for p, state in zip(params, states):
                _follow(p, state)
                if not state:
                    xp = get_array_module(p.data)
                    state.update(step=0, exp_avg=xp.zeros_like(p.data),
                                 exp_avg_sq=xp.zeros_like(p.data))
                state["step"] += 1
            adam_update([p.data for p in params], [p.grad for p in params],
                        [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                        [s["step"] for s in states], group["lr"], group["betas"], group["eps"],
                        group["weight_decay"], self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr*weight_decay``, then the Adam step on
    grad (`adam_step` without weight decay)."""

    decoupled = True

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
