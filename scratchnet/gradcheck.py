"""Check a module's hand-written backward against central finite differences, in float64.

    report = gradcheck(nn.Conv2d(2, 3, 3, padding=1), x)      # raises GradcheckError on failure
    print(report)                                               # one line per checked tensor

The scalar being differentiated is ``f = sum(module(*inputs) * G)`` with G a fixed *random*
upstream gradient (an all-ones G would not notice a permuted or transposed gradient). Then
df/dT for every input T and every parameter T is what ``module.backward(G)`` must return /
accumulate. Numerically, along a direction D:

    (f(T + eps*D) - f(T - eps*D)) / (2*eps)  ~=  sum(df/dT * D)

Small tensors are checked element by element (D = one-hot); large ones along random unit
directions plus a random sample of single elements. An element passes when
``|analytic - numeric| <= atol + rtol*|numeric|`` (PyTorch's gradcheck defaults), and both are
finite: a NaN or an infinity anywhere (in the forward output, a gradient backward returned,
a finite difference) is a failure with its own message, never a pass.

Accumulation is part of the contract: ``backward`` must *add* dL/dparam into ``param.grad``
(``+=``), never assign it: accumulating gradients over several batches, and a parameter
that two consumers share, both rely on that sum. With ``check_accumulation=True`` (the
default) backward runs twice, after two forward passes on the same values:

    1. from zeroed grads, giving G0 = what one backward alone contributes;
    2. from grads pre-filled with random non-zero values R (|R| in [0.5, 1.5]), giving G1.

The analytic parameter gradient compared with finite differences is then the *difference*
G1 - R, and each parameter is also judged on its own: G1 = G0 (elementwise, to rounding)
means backward threw R away, and its row reads "grad was overwritten, not accumulated (+=)";
G1 - R differing from G0 in any other way means backward changed what grad held before it.
Either is a failure even where G0 itself is right.

Course: [2. Checking gradients](../learn/02-gradcheck.md).
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .backend import get_array_module, to_backend, to_numpy
from .random import default_rng

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "TensorCheck", "rel_error",
           "OVERWRITTEN"]

Array = Any

OVERWRITTEN = "grad was overwritten, not accumulated (+=)"


class GradcheckError(AssertionError):
    """A backward pass disagrees with finite differences."""


def rel_error(a: Array, b: Array) -> float:
    """``max(|a - b| / max(|a| + |b|, 1e-12))``, element-wise over two arrays of any backend."""
    a, b = to_numpy(a).astype("float64"), to_numpy(b).astype("float64")
    return float((abs(a - b) / (abs(a) + abs(b)).clip(min=1e-12)).max(initial=0.0))


@dataclass
class TensorCheck:
    """The outcome for one tensor (an input or a parameter)."""
    name: str
    shape: tuple[int, ...]
    method: str                 # "elementwise", or "4 directions + 32 elements"
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0  # |a - n| / max(|a|, |n|, atol): near-zero values judged absolutely
    worst: str = "-"            # where max_rel_error occurred, with both values
    failures: int = 0
    problem: str = ""           # a failure besides the values, e.g. OVERWRITTEN
    nonfinite: int = 0          # compared values where the analytic or numeric one is NaN/inf

    @property
    def passed(self) -> bool:
        return self.failures == 0 and not self.problem


@dataclass
class GradcheckReport:
    module: str
    checks: list[TensorCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    @property
    def worst(self) -> TensorCheck | None:
        return max(self.checks, key=lambda c: c.max_rel_error, default=None)

    def __str__(self) -> str:
        head = f"gradcheck {self.module}: {'passed' if self.passed else 'FAILED'}, " \
               f"worst relative error {self.max_rel_error:.2e}"
        rows = [f"  {'ok  ' if c.passed else 'FAIL'} {c.name:<14} {str(c.shape):<18} "
                f"{c.method:<28} max rel {c.max_rel_error:.2e}  max abs {c.max_abs_error:.2e}  "
                f"worst at {c.worst}" + (f"  ({c.failures} failing)" if c.failures else "")
                + (f"  {_nonfinite_note(c.nonfinite)}" if c.nonfinite else "")
                + (f"  {c.problem}" if c.problem else "")
                for c in self.checks]
        return "\n".join([head] + rows)


def _nonfinite_note(n: int) -> str:
    return (f"{n} value{'s' if n != 1 else ''} not finite (NaN or inf in the analytic or the "
            "numeric gradient)")


def _all_finite(a: Array) -> bool:
    """No NaN and no infinity in a host array (NaN < inf is False)."""
    return bool((abs(a) < math.inf).all())


def _check_settings(eps: float, atol: float, rtol: float) -> None:
    """eps must be a finite number > 0 and the tolerances finite numbers >= 0: a NaN
    tolerance or step would make every comparison False, i.e. every check pass."""
    for name, value, positive in (("eps", eps, True), ("atol", atol, False), ("rtol", rtol, False)):
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value))
        if not ok or (value <= 0 if positive else value < 0):
            raise ValueError(f"gradcheck: {name} must be a finite number "
                             f"{'> 0' if positive else '>= 0'}, got {value!r}")


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = []
    for n in reversed(shape):
        i, r = divmod(i, n)
        idx.append(r)
    return tuple(reversed(idx))


def gradcheck(module: Any, *inputs: Array, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, max_elementwise: int = 512,
              n_directions: int = 4, n_samples: int = 32, raise_exception: bool = True,
              check_accumulation: bool = True, parameters: bool = True) -> GradcheckReport:
    """Compare ``module.backward`` with central differences for every input and parameter.

    The module is deep-copied and cast to float64 (the original is untouched); inputs are
    cast to float64 on the module's backend, except integer ones (a classifier's class
    indices), which keep their dtype.

    Args:
        module: a Module; ``module(*inputs)`` runs forward, ``module.backward(G)`` returns the
            gradient for the first input (or a tuple, one per differentiable input).
        inputs: the forward arguments (e.g. ``x``, or ``pred, target`` for a loss). Inputs
            beyond those backward returns gradients for are held fixed.
        eps: the finite-difference step (PyTorch's gradcheck default).
        atol: the absolute tolerance (PyTorch's gradcheck default).
        rtol: the relative tolerance (PyTorch's gradcheck default).
        seed: seeds the upstream gradient, directions and sampled elements, and the values
            the parameters' grads start from in the accumulation check.
        max_elementwise: tensors with at most this many elements are checked element-wise.
        n_directions: for larger tensors, the number of random unit directions.
        n_samples: for larger tensors, the number of randomly sampled single elements.
        raise_exception: raise GradcheckError with the report when a check fails.
        check_accumulation: also require backward to *add* into ``param.grad``: a second
            backward starts from random non-zero grads, the parameters' analytic gradient is
            grad after minus grad before, and a parameter whose grad was assigned instead
            fails with [`OVERWRITTEN`][scratchnet.gradcheck.OVERWRITTEN] (see the module docstring). False: one backward
            from zeroed grads, which cannot tell ``=`` from ``+=``.
        parameters: check every parameter's gradient too; False checks the inputs' only
            (how a model routes gradients between its layers, at the cost of one tensor).

    Returns:
        A GradcheckReport: per tensor the worst relative/absolute error and where.

    Raises:
        GradcheckError: a check failed (with ``raise_exception``), or the forward output is
            not finite, or backward returned no gradient or one of the wrong shape.
        ValueError: eps, atol or rtol is not a finite number (eps > 0, tolerances >= 0).
    """
    _check_settings(eps, atol, rtol)
    work = copy.deepcopy(module).to(dtype="float64")
    backend = work.backend if next(work.parameters(), None) is not None else \
        get_array_module(*inputs).__name__
    xs = [to_backend(x, backend) for x in inputs]
    xs = [x.astype(x.dtype if x.dtype.kind in "iu" else "float64") for x in xs]   # own copies
    rng = default_rng(seed, "numpy")          # host draws: the same G on every backend

    label = repr(module).split("\n")[0].rstrip("(")
    out = work(*xs)
    if not bool(get_array_module(out).isfinite(out).all()):
        raise GradcheckError(f"gradcheck {label}: the forward output is not finite (NaN or inf) "
                             "at these inputs; a gradient cannot be checked there")
    upstream = to_backend(rng.standard_normal(out.shape), backend)
    work.zero_grad()
    grads = work.backward(upstream)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for i, g in enumerate(grads):
        if not hasattr(g, "shape"):
            which = "the input" if len(grads) == 1 else f"input[{i}]"
            raise GradcheckError(f"gradcheck {label}: backward returned "
                                 f"{'None (a missing return?)' if g is None else type(g).__name__}"
                                 f" as the gradient for {which}; expected an array of its shape")

    params: dict[int, Any] = {}               # a parameter registered twice is judged once
    named = list(work.named_parameters()) if parameters else []
    for _, p in named:
        params.setdefault(id(p), p)
    analytic = {key: p.grad.copy() for key, p in params.items()}
    problems: dict[int, str] = {}
    if check_accumulation and params:
        analytic, problems = _accumulate_from_random(work, xs, upstream, params, analytic, seed)

    def f() -> float:
        return float((work(*xs) * upstream).sum())

    targets = [(f"input[{i}]" if len(grads) > 1 else "input", xs[i], g, "")
               for i, g in enumerate(grads)]
    targets += [(name, p.data, analytic[id(p)], problems.get(id(p), "")) for name, p in named]

    report = GradcheckReport(module=label)
    for name, T, grad, problem in targets:
        if tuple(grad.shape) != tuple(T.shape):
            raise GradcheckError(f"gradcheck {report.module}: gradient for {name} has shape "
                                 f"{tuple(grad.shape)}, expected {tuple(T.shape)}")
        check = _check_tensor(name, T, grad, f, rng, eps, atol, rtol, max_elementwise,
                              n_directions, n_samples)
        check.problem = problem
        report.checks.append(check)
    if raise_exception and not report.passed:
        raise GradcheckError(str(report))
    return report


def _accumulate_from_random(work: Any, xs: list[Array], upstream: Array, params: dict[int, Any],
                            fresh: dict[int, Array], seed: int
                            ) -> tuple[dict[int, Array], dict[int, str]]:
    """Run forward and backward again with every grad pre-filled with random values R.

    Args:
        fresh: per parameter (by id) the grad one backward left from zeros (G0).

    Returns:
        (analytic, problems): per parameter the host array G1 - R (grad after minus grad
        before: what this backward added), and a message for each parameter whose backward
        did not simply add G0 (`OVERWRITTEN` where G1 = G0).
    """
    # its own stream, so the directions and sampled elements are those of a check without it
    rng = default_rng(None if seed is None else (seed, 1), "numpy")
    before = {}
    for key, p in params.items():
        r = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1.0, 1.0], p.shape)
        before[key] = r                           # |R| >= 0.5: no element starts near zero
        p.grad[...] = to_backend(r, get_array_module(p.grad))
    work(*xs)
    work.backward(upstream)

    analytic, problems = {}, {}
    for key, p in params.items():
        g1, r, g0 = to_numpy(p.grad), before[key], to_numpy(fresh[key])
        if tuple(g1.shape) != tuple(r.shape) or tuple(g0.shape) != tuple(r.shape):
            analytic[key] = g1 if tuple(g1.shape) != tuple(r.shape) else g0   # shape error
            continue
        analytic[key] = g1 - r
        if not (_all_finite(g0) and _all_finite(g1)):
            continue                              # reported by the comparison as not finite
        tol = 1e-9 * (abs(g0) + abs(r))           # rounding of (R + G0) - R, and no more
        overwritten = abs(g1 - g0) <= tol
        added = abs(g1 - r - g0) <= tol
        n_over = int(overwritten.sum())
        if n_over == g1.size:
            problems[key] = OVERWRITTEN
        elif n_over:
            problems[key] = (f"grad was overwritten at {n_over} of {g1.size} elements, "
                             "not accumulated (+=)")
        elif not added.all():
            problems[key] = ("a backward from non-zero grad did not add what it adds to zeros: "
                             "grad before backward was changed, not accumulated (+=)")
    return analytic, problems


def _check_tensor(name, T, grad, f, rng, eps, atol, rtol, max_elementwise, n_directions,
                  n_samples) -> TensorCheck:
    flat, gflat = T.reshape(-1), to_numpy(grad).reshape(-1)
    check = TensorCheck(name, tuple(T.shape), "elementwise")

    def record(analytic: float, numeric: float, where: str) -> None:
        if not (math.isfinite(analytic) and math.isfinite(numeric)):
            check.failures += 1                   # NaN compares False: never let it pass
            check.nonfinite += 1
            check.max_abs_error = check.max_rel_error = math.inf
            check.worst = f"{where} (analytic {analytic:.6g}, numeric {numeric:.6g})"
            return
        err = abs(analytic - numeric)
        rel = err / max(abs(analytic), abs(numeric), atol)
        if err > atol + rtol * abs(numeric):
            check.failures += 1
        check.max_abs_error = max(check.max_abs_error, err)
        if rel >= check.max_rel_error and not check.nonfinite:
            check.max_rel_error = rel
            check.worst = f"{where} (analytic {analytic:.6g}, numeric {numeric:.6g})"

    def element(i: int) -> None:
        orig = float(flat[i])
        flat[i] = orig + eps
        fp = f()
        flat[i] = orig - eps
        fm = f()
        flat[i] = orig
        record(float(gflat[i]), (fp - fm) / (2 * eps), str(_unravel(i, check.shape)))

    if T.size <= max_elementwise:
        for i in range(T.size):
            element(i)
        return check

    check.method = f"{n_directions} directions + {n_samples} elements"
    orig = T.copy()
    for k in range(n_directions):
        d = rng.standard_normal(T.shape)
        d /= math.sqrt(float((d * d).sum()))
        d_dev = to_backend(d, get_array_module(T))
        T[...] = orig + eps * d_dev
        fp = f()
        T[...] = orig - eps * d_dev
        fm = f()
        T[...] = orig
        record(float((to_numpy(grad) * d).sum()), (fp - fm) / (2 * eps), f"direction {k}")
    for i in rng.choice(T.size, size=min(n_samples, T.size), replace=False):
        element(int(i))
    return check
