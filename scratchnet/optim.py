"""Optimizers with PyTorch's semantics: SGD, Adam (coupled L2) and AdamW (decoupled decay).

Every update is done in place on ``param.data`` with Python-float coefficients, so a float32
model keeps float32 parameters and float32 optimizer state. On CuPy, Adam updates *every*
parameter of a group in one kernel launch, and ``zero_grad`` clears every gradient in one
(``backend.RawOp`` over a table of the arrays' addresses, ``backend.pointer_table``), instead of
about fifteen array operations per parameter; the per-parameter array code beside it is the
reference, and the kernel rounds every operation as NumPy does, so both give the same bits.
"""
from __future__ import annotations

import math
import operator
import sys
from typing import Any, Iterable

from . import lr_scheduler
from .backend import RawOp, get_array_module, pointer_table, to_backend
from .lr_scheduler import CosineAnnealingLR
from .nn.module import Parameter

Array = Any

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "CosineAnnealingLR", "lr_scheduler"]
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
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
            self._validate(group)
            self.param_groups.append(group)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self._tables: dict[tuple[int, str], tuple[list[Any], tuple[Any, Any, int]]] = {}

    def _validate(self, group: dict[str, Any]) -> None:
        _check_range("learning rate", group["lr"], 0.0)
        _check_range("weight_decay", group.get("weight_decay", 0.0), 0.0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradient of every parameter to zeros.

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
        for i, group in enumerate(self.param_groups):
            grads = [p.grad for p in group["params"]]
            fused = _ZERO.kernel(grads[0]) if _same_kind(grads) else None
            if fused is not None:                 # every gradient of the group, one launch
                table, offsets, total = self._table((i, "zero"), [grads])
                fused(*_grid(total), table, offsets, len(grads))
                continue
            for p in group["params"]:
                p.zero_grad()

    def step(self) -> None:
        """Update every parameter with ``requires_grad`` (a frozen one is left as it is)."""
        for i, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.requires_grad]
            if len(params) != len(group["params"]):
                group = {**group, "params": params}
            for p in params:
                state = self.state.setdefault(p, {})
                _follow(p, state)
            if params and not self._fused_update(i, group):
                for p in params:
                    self._update(p, self.state[p], group)

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _fused_update(self, index: int, group: dict[str, Any]) -> bool:
        """Update the whole group in one kernel where the subclass has one; True if done."""
        return False

    def _table(self, key: tuple[int, str], rows: list[list[Any]]) -> tuple[Any, Any, int]:
        """``backend.pointer_table(*rows)`` (and the element count), rebuilt only when one of
        the arrays is not the one it was built from (after ``.to()``, a new ``p.data``, a
        loaded state); the cache holds those arrays, so their addresses stay valid."""
        arrays = [a for row in rows for a in row]
        hit = self._tables.get(key)
        if hit is None or len(hit[0]) != len(arrays) or not all(map(operator.is_, hit[0], arrays)):
            hit = (arrays, (*pointer_table(*rows), sum(a.size for a in rows[0])))
            self._tables[key] = hit
        return hit[1]

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


def _same_kind(arrays: list[Any]) -> bool:
    """All of one array type and dtype, and C-contiguous: what a one-launch kernel needs."""
    a0 = arrays[0]
    return all(type(a) is type(a0) and a.dtype == a0.dtype and a.flags.c_contiguous for a in arrays)


def _grid(total: int, threads: int = 256) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``total`` elements."""
    return max(1, min(-(-total // threads), 2048)), threads


def _scalar(v: Any) -> Any:
    """A 0-d array (as read back from an .npz file) becomes a Python number again."""
    return v.item() if hasattr(v, "item") else v


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and (coupled) weight decay.

    g = grad + weight_decay*p;  buf = momentum*buf + (1 - dampening)*g (buf = g at step 1);
    g = g + momentum*buf if nesterov else buf;  p -= lr*g.
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


class Adam(Optimizer):
    """Adam with PyTorch's exact semantics (weight decay is L2 added to the gradient).

    With t the step count:
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

    def _init_state(self, p: Parameter, state: dict[str, Any]) -> None:
        if not state:
            xp = get_array_module(p.data)
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))

    def _coefficients(self, group: dict[str, Any], t: int) -> tuple[float, float]:
        """(step_size, bias_correction2_sqrt) at step ``t``."""
        (beta1, beta2), lr = group["betas"], group["lr"]
        return lr / (1 - beta1 ** t), math.sqrt(1 - beta2 ** t)

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any]) -> None:
        self._init_state(p, state)
        xp = get_array_module(p.data)
        (beta1, beta2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        state["step"] += 1
        step_size, bias_correction2_sqrt = self._coefficients(group, state["step"])
        g, m, v = p.grad, state["exp_avg"], state["exp_avg_sq"]
        if wd and self.decoupled:
            p.data *= 1 - lr * wd
        elif wd:
            g = g + wd * p.data
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        denom = xp.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += group["eps"]
        p.data -= step_size * m / denom

    def _fused_update(self, index: int, group: dict[str, Any]) -> bool:
        """The update above for every parameter of the group in one launch (CuPy): the
        parameters must share a dtype and a step count, as they do unless some were added
        to the optimizer later; otherwise the per-parameter code runs."""
        params = group["params"]
        kernel = _ADAM_MULTI.kernel(params[0].data)
        if kernel is None:
            return False
        for p in params:
            self._init_state(p, self.state[p])
        states = [self.state[p] for p in params]
        rows = [[p.data for p in params], [p.grad for p in params],
                [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]]
        t = states[0]["step"] + 1
        if not _same_kind([a for row in rows for a in row]) or any(s["step"] + 1 != t for s in states):
            return False
        for s in states:
            s["step"] = t
        (beta1, beta2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        step_size, bias_correction2_sqrt = self._coefficients(group, t)
        coupled_wd, decay = (0.0, 1 - lr * wd) if (self.decoupled and wd) else (float(wd), 1.0)
        table, offsets, total = self._table((index, "adam"), rows)
        coefficients = (coupled_wd, decay, beta1, 1 - beta1, beta2, 1 - beta2, step_size,
                        bias_correction2_sqrt, group["eps"])
        kernel(*_grid(total), table, offsets, len(params), *map(float, coefficients))
        return True


# Shared by the one-launch kernels: which tensor of the table element k belongs to, and
# IEEE operations that the compiler may not fuse into multiply-adds (NumPy rounds each one).
_MULTI_TENSOR = r"""
__device__ __forceinline__ int tensor_of(const long long* offsets, int P, long long k) {
    int lo = 0, hi = P;                               // offsets[lo] <= k < offsets[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (offsets[mid] <= k) lo = mid; else hi = mid;
    }
    return lo;
}
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }
#define FOR_EACH_ELEMENT(k, total) \
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < (total); \
         k += (long long)gridDim.x * blockDim.x)
"""

# Adam's update (the array code in Adam._update, operation for operation) of every element of
# every parameter: table = (p, grad, exp_avg, exp_avg_sq) addresses of P tensors each.
_ADAM_MULTI = RawOp(_MULTI_TENSOR + r"""
extern "C" __global__ void scratchnet_adam_multi(
        const long long* table, const long long* offsets, long long P, double wd_,
        double decay_, double beta1_, double omb1_, double beta2_, double omb2_,
        double step_size_, double bc2_, double eps_) {
    const T wd = (T)wd_, decay = (T)decay_, beta1 = (T)beta1_, omb1 = (T)omb1_;
    const T beta2 = (T)beta2_, omb2 = (T)omb2_, step_size = (T)step_size_, bc2 = (T)bc2_;
    const T eps = (T)eps_;
    FOR_EACH_ELEMENT(k, offsets[P]) {
        const int t = tensor_of(offsets, (int)P, k);
        const long long j = k - offsets[t];
        T* p = (T*)table[t] + j;
        T* m = (T*)table[2 * P + t] + j;
        T* v = (T*)table[3 * P + t] + j;
        T g = ((const T*)table[P + t])[j];
        T pv = *p;
        if (decay != (T)1) pv = mul_rn(pv, decay);          // AdamW: p *= 1 - lr*wd
        if (wd != (T)0) g = add_rn(g, mul_rn(wd, pv));      // Adam: g = grad + wd*p
        const T mv = add_rn(mul_rn(*m, beta1), mul_rn(omb1, g));
        const T vv = add_rn(mul_rn(*v, beta2), mul_rn(omb2, mul_rn(g, g)));
        const T denom = add_rn(div_rn(sqrt_rn(vv), bc2), eps);
        *p = sub_rn(pv, div_rn(mul_rn(step_size, mv), denom));
        *m = mv;
        *v = vv;
    }
}
""", "scratchnet_adam_multi")

# zero_grad of every gradient in the table, one launch.
_ZERO = RawOp(_MULTI_TENSOR + r"""
extern "C" __global__ void scratchnet_zero_multi(const long long* table, const long long* offsets,
                                                 long long P) {
    FOR_EACH_ELEMENT(k, offsets[P]) {
        const int t = tensor_of(offsets, (int)P, k);
        ((T*)table[t])[k - offsets[t]] = (T)0;
    }
}
""", "scratchnet_zero_multi")


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr*weight_decay, then the Adam step on grad."""

    decoupled = True

    def __init__(self, params: Iterable[Parameter] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
