"""Faster bodies of the optimiser's `adam_update` and `zero_grads` on CuPy
(`scratchnet.optim`): *every* parameter of a group in one kernel launch, over a table of the
arrays' addresses (`pointer_table`), instead of about fifteen array operations per parameter.
The kernel rounds every operation as NumPy does, so both give the same bits."""
from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Any

from ..ops import register_faster
from ..optim import adam_coefficients
from . import RawOp, on_gpu, pointer_table

Array = Any

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

# Adam's update (the array code of optim.adam_step, operation for operation) of every element
# of every parameter: table = (p, grad, exp_avg, exp_avg_sq) addresses of P tensors each.
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


def _same_kind(arrays: list[Any]) -> bool:
    """All of one array type and dtype, and C-contiguous: what a one-launch kernel needs."""
    a0 = arrays[0]
    return all(type(a) is type(a0) and a.dtype == a0.dtype and a.flags.c_contiguous for a in arrays)


def _grid(total: int, threads: int = 256) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``total`` elements."""
    return max(1, min(-(-total // threads), 2048)), threads


# Pointer tables of the last few parameter lists: a table is rebuilt only when one of the
# arrays is not the one it was built from (after ``.to()``, a new ``p.data``, a loaded state);
# an entry holds those arrays, so their addresses stay valid while it is cached.
_TABLES: OrderedDict[tuple[Any, ...], tuple[list[Any], tuple[Any, Any, int]]] = OrderedDict()
_MAX_TABLES = 8


def _table(kind: str, rows: list[list[Any]]) -> tuple[Any, Any, int]:
    arrays = [a for row in rows for a in row]
    key = (kind, *map(id, arrays))
    hit = _TABLES.get(key)
    if hit is None or not all(map(operator.is_, hit[0], arrays)):
        hit = (arrays, (*pointer_table(*rows), sum(a.size for a in rows[0])))
        _TABLES[key] = hit
        while len(_TABLES) > _MAX_TABLES:
            _TABLES.popitem(last=False)
    _TABLES.move_to_end(key)
    return hit[1]


def _adam_applies(params: list[Array], grads: list[Array], exp_avgs: list[Array],
                  exp_avg_sqs: list[Array], steps: list[int], *args: Any) -> bool:
    """One launch needs one dtype and one step count (as a group has, unless parameters were
    added to the optimizer later)."""
    return (bool(params) and on_gpu(params[0]) and len(set(steps)) == 1
            and _same_kind([*params, *grads, *exp_avgs, *exp_avg_sqs]))


@register_faster("adam_update", _adam_applies)
def adam_update(params: list[Array], grads: list[Array], exp_avgs: list[Array],
                exp_avg_sqs: list[Array], steps: list[int], lr: float,
                betas: tuple[float, float], eps: float, weight_decay: float,
                decoupled: bool = False) -> None:
    (beta1, beta2), wd = betas, weight_decay
    step_size, bias_correction2_sqrt = adam_coefficients(lr, betas, steps[0])
    coupled_wd, decay = (0.0, 1 - lr * wd) if (decoupled and wd) else (float(wd), 1.0)
    table, offsets, total = _table("adam", [params, grads, exp_avgs, exp_avg_sqs])
    coefficients = (coupled_wd, decay, beta1, 1 - beta1, beta2, 1 - beta2, step_size,
                    bias_correction2_sqrt, eps)
    _ADAM_MULTI.kernel(params[0])(*_grid(total), table, offsets, len(params),
                                  *map(float, coefficients))


@register_faster("zero_grads", lambda grads: bool(grads) and on_gpu(grads[0]) and _same_kind(grads))
def zero_grads(grads: list[Array]) -> None:
    table, offsets, total = _table("zero", [grads])
    _ZERO.kernel(grads[0])(*_grid(total), table, offsets, len(grads))
