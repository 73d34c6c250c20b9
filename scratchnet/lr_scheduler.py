"""Learning-rate schedules with PyTorch's names, arguments and step counting.

Import it as in PyTorch: ``from scratchnet.optim.lr_scheduler import StepLR`` (or
``scratchnet.optim.lr_scheduler.StepLR``). A scheduler sets ``group["lr"]`` of every
parameter group of its optimizer; call ``scheduler.step()`` after ``optimizer.step()``:

    scheduler = StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        train_one_epoch()               # optimizer.step() per batch
        scheduler.step()                # once per epoch here: the rate halves every 10

Step counting is PyTorch's: constructing a scheduler is its first step (``last_epoch``
becomes 0 and the rate is the schedule's value at 0); each ``step()`` adds one. The
schedules are PyTorch's *chainable* forms (each step changes the current rate, so two
schedulers on one optimizer compose as they do there), except ``CosineAnnealingLR``, a
function of the step count alone (see its docstring). ``state_dict()`` holds plain values
only, so ``scratchnet.save`` writes it. Only ``ReduceLROnPlateau`` reads a metric:
``scheduler.step(val_loss)``.

Course: [8. Optimisers](../learn/08-optimisers.md) (CosineAnnealingLR).
"""
from __future__ import annotations

import bisect
import math
import numbers
import types
import warnings
from collections import Counter
from typing import Any, Callable, Iterable

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "ReduceLROnPlateau", "OneCycleLR"]

_EPOCH_DEPRECATED = ("scheduler.step(epoch) is deprecated, as in PyTorch: call "
                     "scheduler.step() once per step; with an epoch the closed form is used")


def _number(owner: str, name: str, value: Any, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float within [low, high] (bounds excluded where ``*_open``), or a
    one-line ValueError naming the scheduler and the argument."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        raise ValueError(f"{owner}: {name} must be a finite number"
                         f"{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}")
    return float(value)


def _integer(owner: str, name: str, value: Any, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_optimizer(owner: str, optimizer: Any) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "lr" in g for g in groups):
        raise TypeError(f"{owner}: expected a scratchnet optimizer (with param_groups), got "
                        f"{type(optimizer).__name__}")


def _per_group(owner: str, name: str, optimizer: Any, value: Any) -> list[Any]:
    """One value per parameter group: a list or tuple of that length, or one value for all."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} has {len(value)} values; the optimizer has "
                             f"{n} parameter groups")
        return list(value)
    return [value] * n


class LRScheduler:
    """Base class: sets each parameter group's ``lr`` to ``get_lr()`` at every step.

    Args:
        optimizer: the optimizer whose learning rates are set.
        last_epoch: the index of the last step taken; -1 (the default) starts the schedule
            and records each group's current ``lr`` as its ``initial_lr``. Another value
            resumes one and needs ``initial_lr`` in the groups, as a loaded optimizer state
            has it (``optimizer.load_state_dict``). To resume, ``scheduler.load_state_dict``
            is simpler, as in PyTorch.

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: the number of ``step()`` calls since the schedule started (0 after
            construction).
    """

    def __init__(self, optimizer: Any, last_epoch: int = -1):
        owner = type(self).__name__
        _check_optimizer(owner, optimizer)
        last_epoch = _integer(owner, "last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{owner}: param_groups[{i}] has no 'initial_lr' to resume "
                                   f"from (last_epoch={last_epoch}); load the optimizer's state "
                                   "first, or start the schedule with last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The constructor's step: ``last_epoch`` -1 -> 0 (or k -> k + 1 when resuming)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each group at ``last_epoch`` (called by ``step``)."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` (or the constructor) set, one per group."""
        return list(self._last_lr)

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one step and set every group's ``lr``.

        Args:
            epoch: deprecated, as in PyTorch: jumps to this step (with the schedule's
                closed form where it has one). Call ``step()`` without it.
        """
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            warnings.warn(_EPOCH_DEPRECATED, UserWarning, stacklevel=2)
            self.last_epoch = _integer(type(self).__name__, "epoch", epoch, 0)
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, as plain values (``scratchnet.save`` writes it)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (the optimizer's own state is separate)."""
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(last_epoch)``.

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the step count returning a factor, or a list of such
            functions, one per parameter group.
        last_epoch: see `LRScheduler`.

    ``state_dict()`` saves a callable object's attributes, not plain functions or lambdas
    (as in PyTorch): recreate the scheduler with the same function before loading.
    """

    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
                 last_epoch: int = -1):
        _check_optimizer("LambdaLR", optimizer)
        self.lr_lambdas = _per_group("LambdaLR", "lr_lambda", optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda must be callable, got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else dict(fn.__dict__)
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        self.__dict__.update(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps:
    ``lr = initial_lr * gamma ** (last_epoch // step_size)``.

    Args:
        optimizer: the optimizer.
        step_size: steps between decays (a positive int).
        gamma: the factor (default 0.1).
        last_epoch: see `LRScheduler`.
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _integer("StepLR", "step_size", step_size, 1)
        self.gamma = _number("StepLR", "gamma", gamma, 0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone:
    ``lr = initial_lr * gamma ** (number of milestones <= last_epoch)``.

    Args:
        optimizer: the optimizer.
        milestones: step counts (a milestone given twice decays twice there).
        gamma: the factor (default 0.1).
        last_epoch: see `LRScheduler`.
    """

    def __init__(self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones = Counter(_integer("MultiStepLR", "a milestone", m, 0) for m in milestones)
        self.gamma = _number("MultiStepLR", "gamma", gamma, 0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect.bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["milestones"] = dict(self.milestones)       # a plain {step: count} dict
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.milestones = Counter({int(k): int(v) for k, v in self.milestones.items()})


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` at every step: ``lr = initial_lr * gamma ** last_epoch``.

    Args:
        optimizer: the optimizer.
        gamma: the factor per step.
        last_epoch: see `LRScheduler`.
    """

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1):
        self.gamma = _number("ExponentialLR", "gamma", gamma, 0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine decay of every group's learning rate from its initial value to ``eta_min``.

    After ``k`` calls of ``step()`` (one per optimizer step, or per epoch, as you choose) the
    learning rate is ``eta_min + (lr0 - eta_min) * (1 + cos(pi * k / T_max)) / 2``: lr0 at
    k = 0, eta_min at k = T_max (past T_max the cosine rises again, as in PyTorch). This is
    PyTorch's ``CosineAnnealingLR`` in closed form, so the rate depends only on ``k`` and a
    resumed run continues exactly; alone on its optimizer it gives PyTorch's rates (to
    rounding), but it does not compose with a second scheduler as PyTorch's chainable
    form does.

    Args:
        optimizer: the optimizer.
        T_max: steps from lr0 down to eta_min (a positive int).
        eta_min: the lowest rate.
        last_epoch: the number of steps already taken, ``k`` (0, or PyTorch's default -1,
            starts the schedule). This is the one scheduler whose ``last_epoch`` argument
            counts steps taken rather than PyTorch's "index of the last step" (which is one
            less): ``CosineAnnealingLR(opt, T_max, last_epoch=k)`` continues at step ``k``.
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, last_epoch: int = 0):
        if not isinstance(T_max, int) or isinstance(T_max, bool) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        _check_optimizer("CosineAnnealingLR", optimizer)
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = max(_integer("CosineAnnealingLR", "last_epoch", last_epoch, -1), 0)
        self._step_count, self._is_initial = 1, False
        for group, lr in zip(optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def get_lr(self) -> list[float]:
        k = self.last_epoch
        return [self.eta_min + (lr0 - self.eta_min) * (1 + math.cos(math.pi * k / self.T_max)) / 2
                for lr0 in self.base_lrs]

    _get_closed_form_lr = get_lr


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by ``factor`` when a metric has stopped improving.

    ``scheduler.step(metric)`` once per evaluation (e.g. the validation loss per epoch).
    A metric is an improvement when it beats the best so far by more than the threshold
    (mode "min", threshold_mode "rel": ``metric < best * (1 - threshold)``; "abs":
    ``metric < best - threshold``; mode "max" mirrors both). After more than ``patience``
    evaluations without one, each group's rate becomes ``max(lr * factor, min_lr)``
    (unchanged when that moves it by ``eps`` or less), then ``cooldown`` evaluations pass
    before bad ones count again.

    Args:
        optimizer: the optimizer.
        mode: "min" (a loss) or "max" (an accuracy, a PSNR).
        factor: the reduction, in [0, 1).
        patience: evaluations without improvement tolerated (a reduction happens on the
            next one).
        threshold: the least improvement that counts.
        threshold_mode: "rel" or "abs".
        cooldown: evaluations to wait after a reduction.
        min_lr: the lowest rate, one for all groups or a list with one per group.
        eps: the smallest change of a rate worth making.
    """

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0, eps: float = 1e-8):
        owner = "ReduceLROnPlateau"
        _check_optimizer(owner, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _number(owner, "factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _integer(owner, "patience", patience, 0)
        self.threshold = _number(owner, "threshold", threshold, 0.0)
        self.cooldown = _integer(owner, "cooldown", cooldown, 0)
        self.eps = _number(owner, "eps", eps, 0.0)
        self.min_lrs = [_number(owner, "min_lr", v, 0.0)
                        for v in _per_group(owner, "min_lr", optimizer, min_lr)]
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` improves on ``best`` by more than the threshold."""
        if self.mode == "min":
            return current < (best * (1 - self.threshold) if self.threshold_mode == "rel"
                              else best - self.threshold)
        return current > (best * (1 + self.threshold) if self.threshold_mode == "rel"
                          else best + self.threshold)

    def step(self, metrics: Any, epoch: int | None = None) -> None:
        """Record one evaluation of the metric (a number or a 0-d array).

        Args:
            metrics: the value to judge (``float(metrics)`` must work).
            epoch: deprecated, as in PyTorch; sets ``last_epoch``.
        """
        current = float(metrics)
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATED, UserWarning, stacklevel=2)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0                  # bad evaluations in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._current_lrs()

    def get_lr(self) -> list[float]:
        return self._current_lrs()


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up from ``max_lr / div_factor`` to ``max_lr``, then anneal to
    ``max_lr / (div_factor * final_div_factor)``, with momentum cycled the other way.

    Step it after every batch; ``total_steps`` (or ``epochs * steps_per_epoch``) steps in
    all, and one more ``step()`` is a ValueError, as in PyTorch. Phases end at step
    ``pct_start * total_steps - 1`` and ``total_steps - 1`` (with ``three_phase`` the
    warm-up is mirrored before a final annealing, as in fastai). Within a phase the value
    goes from start to end by ``end + (start - end) * (1 + cos(pi * pct)) / 2`` ("cos") or
    linearly ("linear"), ``pct`` the fraction of the phase done.

    Args:
        optimizer: the optimizer (SGD's ``momentum`` or Adam's beta1 is cycled when
            ``cycle_momentum``).
        max_lr: the peak rate, one or a list with one per group.
        total_steps: steps in the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: see ``total_steps``.
        steps_per_epoch: see ``total_steps``.
        pct_start: the share of the cycle spent warming up (a float in [0, 1]).
        anneal_strategy: "cos" or "linear".
        cycle_momentum: cycle momentum between ``max_momentum`` and ``base_momentum``.
        base_momentum: the momentum at the peak rate.
        max_momentum: the momentum at the start and the end.
        div_factor: initial_lr = max_lr / div_factor.
        final_div_factor: min_lr = initial_lr / final_div_factor.
        three_phase: the fastai-style schedule with a mirrored warm-up.
        last_epoch: see `LRScheduler`.
    """

    def __init__(self, optimizer: Any, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85, max_momentum: float | list[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        owner = "OneCycleLR"
        _check_optimizer(owner, optimizer)
        if total_steps is not None:
            self.total_steps = _integer(owner, "total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_integer(owner, "epochs", epochs, 1)
                                * _integer(owner, "steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError(f"{owner}: give total_steps, or epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"{owner}: pct_start must be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        div_factor = _number(owner, "div_factor", div_factor, 0.0, low_open=True)
        final_div_factor = _number(owner, "final_div_factor", final_div_factor, 0.0, low_open=True)
        up = float(pct_start * self.total_steps) - 1
        phases = [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum")]
        if three_phase:
            phases += [(float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                        "base_momentum", "max_momentum"),
                       (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            phases += [(self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._schedule_phases = [dict(end_step=e, start_lr=a, end_lr=b, start_momentum=c,
                                      end_momentum=d) for e, a, b, c, d in phases]
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups,
                                   _per_group(owner, "max_lr", optimizer, max_lr)):
                group["initial_lr"] = _number(owner, "max_lr", peak, 0.0) / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError(f"{owner}: cycle_momentum needs an optimizer with momentum or "
                                 "betas (SGD, Adam); pass cycle_momentum=False")
            self.use_beta1 = "betas" in defaults
            if last_epoch == -1:
                for group, top, bottom in zip(
                        optimizer.param_groups,
                        _per_group(owner, "max_momentum", optimizer, max_momentum),
                        _per_group(owner, "base_momentum", optimizer, base_momentum)):
                    self._set_momentum(group, top)
                    group["max_momentum"], group["base_momentum"] = top, bottom
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times; the cycle has {self.total_steps} "
                             "steps (total_steps, or epochs * steps_per_epoch)")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[phase["start_momentum"]],
                                                               group[phase["end_momentum"]], pct))
                    break
                start = end
        return lrs
