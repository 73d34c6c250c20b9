"""The exercises, as data: one row of `EXERCISES` per exercise.

A row replaces one or more ops of the library (`scratchnet.ops`) with the learner's functions:
its signature (written once; the stub's ``def`` and the op's parameters must match it, which
the tests check), what it asks, where it is explained, the configurations it is graded on and
the conditions that tell them apart, how a configuration's inputs are drawn, the library layer
that runs the learner's functions for the gradient check, and the catalogue of mistakes: per
returned tensor, what the diagnosis may know about it, and the known wrong answers, each a
message and the formula that plants it. From a row, `Exercise.cases` derives the expected
tensors (the op's own results on the same inputs) and `Exercise.run` the call of the
learner's functions (on copies of the inputs the signature names).
"""
from __future__ import annotations

import contextlib
import inspect
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any, Callable, Iterator

import numpy as np

from .. import functional as F
from .. import models, nn, ops
from ..random import init_rng, manual_seed
from .diagnose import Context

__all__ = ["Exercise", "Case", "Signature", "Mistake", "EXERCISES", "StructureError", "learner_overrides"]

Fns = dict[str, Callable[..., Any]]
Formula = Callable[[NS], Any]          # of a case's namespace: its configuration and inputs


HINT_LEVELS = ("the shapes", "the idea", "the formula")     # `check DIR NAME --hint 1|2|3`


class StructureError(Exception):
    """A learner's function returned the wrong kind of value (not a tuple, too few values)."""


@dataclass(frozen=True)
class Signature:
    """``name(p1, p2=default) -> (out1, out2)``, parsed."""
    name: str
    params: tuple[str, ...]
    defaults: dict[str, Any]
    outputs: tuple[str, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> "Signature":
        name, params, outputs = re.fullmatch(r"\s*(\w+)\((.*)\) -> \(?([\w, ]+?)\)?\s*", text).groups()
        names, defaults = [], {}
        for p in params.split(", "):
            key, _, default = p.partition("=")
            names.append(key)
            if default:
                defaults[key] = eval(default)              # noqa: S307 (our own table)
        return cls(name, tuple(names), defaults, tuple(outputs.split(", ")), text.strip())

    def matches(self, fn: Callable[..., Any], extra_options: bool = False) -> bool:
        """``fn`` takes exactly these parameters, in this order, with these defaults; with
        ``extra_options`` (an op of the library), it may take more after them, each with a
        default: options its layer passes only when they are not the default (a convolution's
        dilation, a loss's reduction), so a learner's function of this signature serves the
        default case."""
        ps = list(inspect.signature(fn).parameters.values())
        own, more = ps[:len(self.params)], ps[len(self.params):]
        if more and not (extra_options and all(p.default is not inspect.Parameter.empty
                                               for p in more)):
            return False
        return (tuple(p.name for p in own) == self.params and self.defaults ==
                {p.name: p.default for p in own if p.default is not inspect.Parameter.empty})


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer of one returned tensor: what it means (a string, or a formula of
    one that quotes the case's sizes), and the formula that plants it, where ``when`` holds."""
    tensor: str
    message: str | Callable[[NS], str]
    formula: Formula
    when: Callable[[NS], bool] = lambda a: True


@dataclass
class Case:
    """One configuration: its inputs, the library's answers, what the diagnosis may know."""
    describe: str
    features: dict[str, Any]
    inputs: NS
    expected: dict[str, np.ndarray]
    contexts: dict[str, Context] = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    """One row of the table.

    ``draw(a, rng)`` returns a configuration's inputs as a dict (a list of dicts for several
    cases); ``tensors`` gives, per returned tensor, ``Context`` fields as values or formulas
    (``sizes`` as (name, formula, meaning), ``masks`` as (message, formula)); ``layer(a)``
    returns the library module and its inputs for the gradient check (None: no check);
    ``views`` compares a returned tensor as another (Adam's parameter as its update);
    ``hints`` are `HINT_LEVELS`' three hints, from the shapes to the formula.
    """
    name: str
    signature: str
    asks: str
    chapter: str
    configs: tuple[dict[str, Any], ...]
    draw: Callable[[NS, np.random.Generator], dict[str, Any] | list[dict[str, Any]]]
    describe: Callable[[NS], str]
    tensors: dict[str, dict[str, Any]]
    mistakes: tuple[Mistake, ...] = ()
    layer: Callable[[NS], tuple[nn.Module, tuple[Any, ...]]] | None = None
    gradcheck: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[tuple[str, Callable[[dict[str, Any]], bool], str], ...] = ()
    views: dict[str, tuple[str, Callable[[Any, NS], Any]]] = field(default_factory=dict)
    check_inplace: bool = True
    checked_by: str = "gradcheck"
    hints: tuple[str, ...] = ()      # the ladder of `check --hint`: the shapes, the idea, the formula

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return tuple(Signature.parse(s) for s in self.signature.split("; "))

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signatures)

    @property
    def file(self) -> str:
        return f"{self.name}.py"

    @property
    def library(self) -> str:
        """Where the ops it replaces live: ``scratchnet/functional/linear.py: linear_backward``."""
        path = Path(inspect.getfile(ops.reference(self.functions[0])))
        return f"{path.relative_to(Path(ops.__file__).parents[1]).as_posix()}: {', '.join(self.functions)}"

    def cases(self) -> Iterator[Case]:
        """Every configuration's cases, from a seed fixed per exercise and configuration."""
        base = zlib.crc32(self.name.encode())
        for i, cfg in enumerate(self.configs):
            with keep_init_rng():
                drawn = self.draw(NS(**cfg), np.random.default_rng([base, i]))
                cases = [self._case(cfg, NS(**{**cfg, **inputs}))
                         for inputs in (drawn if isinstance(drawn, list) else [drawn])]
            yield from cases

    def _case(self, cfg: dict[str, Any], a: NS) -> Case:
        expected, contexts = {}, {}
        for sig in self.signatures:
            value = ops.reference(sig.name)(*(_copy(getattr(a, p)) for p in sig.params))
            values = (value,) if len(sig.outputs) == 1 else value
            expected.update(self._view(n, np.asarray(v), a) for n, v in zip(sig.outputs, values))
        for name, value in expected.items():
            spec = {k: v(a) if callable(v) else v for k, v in self.tensors.get(name, {}).items()}
            spec["sizes"] = tuple((n, f(a), m) for n, f, m in spec.get("sizes", ()))
            spec["masks"] = tuple((m, f(a)) for m, f in spec.get("masks", ()))
            spec.setdefault("axes", _axes(value.ndim))
            contexts[name] = Context(**spec, alternatives=tuple(
                (m.message(a) if callable(m.message) else m.message,
                 np.asarray(m.formula(a), dtype="float64"))
                for m in self.mistakes if m.tensor == name and m.when(a)))
        features = {**cfg, **getattr(a, "features", {})}
        return Case(self.describe(a), features, a, expected, contexts)

    def _view(self, name: str, value: Any, a: NS) -> tuple[str, Any]:
        if name not in self.views:
            return name, value
        shown, f = self.views[name]
        ok = getattr(value, "shape", None) == np.shape(getattr(a, name))
        return shown, (f(np.asarray(value, dtype="float64"), a) if ok else value)

    def run(self, fns: Fns, case: Case) -> tuple[dict[str, Any], list[str]]:
        """The learner's functions on copies of the case's inputs: (outputs by name, the
        arguments they changed in place). Raises StructureError for a wrong kind of result."""
        outputs: dict[str, Any] = {}
        changed: list[str] = []
        for sig in self.signatures:
            fn, args = fns[sig.name], tuple(getattr(case.inputs, p) for p in sig.params)
            copies = tuple(_copy(a) for a in args)
            values = _structure(fn(*copies), sig.outputs, fn)
            outputs.update(self._view(n, v, case.inputs) for n, v in zip(sig.outputs, values))
            changed += [n for n, a, c in zip(sig.params, args, copies) if self.check_inplace and
                        isinstance(a, np.ndarray) and not np.array_equal(a, c, equal_nan=True)]
        return outputs, changed

    def gradcheck_module(self, case: Case) -> tuple[nn.Module, tuple[Any, ...]]:
        """The library module of the gradient check, with the case's weights, and its inputs
        (run it inside `learner_overrides`)."""
        with keep_init_rng():
            return self.layer(case.inputs)


@contextlib.contextmanager
def keep_init_rng() -> Iterator[None]:
    """Layers built for grading draw initial weights; leave ``manual_seed``'s stream as it was."""
    bit_generator = init_rng().bit_generator
    state = bit_generator.state
    try:
        yield
    finally:
        bit_generator.state = state


# --- calling the learner -----------------------------------------------------------------------
def _copy(a: Any) -> Any:
    """A copy of an array; of the U-Net's stages, a fresh forward pass."""
    return np.array(a, copy=True) if isinstance(a, np.ndarray) else \
        a.fresh() if isinstance(a, _Stages) else a


def _structure(value: Any, outputs: tuple[str, ...], fn: Callable[..., Any]) -> tuple[Any, ...]:
    """``value`` as a tuple of ``len(outputs)`` results, or a StructureError."""
    if len(outputs) == 1:
        return (value,)
    if not isinstance(value, (tuple, list)) or len(value) != len(outputs):
        got = ("None (a missing `return`?)" if value is None
               else f"{len(value)} values" if isinstance(value, (tuple, list))
               else f"a single {type(value).__name__}")
        raise StructureError(f"{getattr(fn, '__name__', 'the function')} returned {got}; "
                             f"expected a tuple ({', '.join(outputs)})")
    return tuple(value)


def _checked(fn: Callable[..., Any], sig: Signature) -> Callable[..., Any]:
    """``fn`` as the library calls it: its results' structure checked (a StructureError that
    names it), and arrays of another floating dtype cast to that of its first floating array
    argument (a float64 constant in a float32 run)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        like = next((a.dtype for a in args if getattr(a, "dtype", np.dtype(int)).kind == "f"), None)
        value = fn(*args, **kwargs)
        if value is None:
            raise StructureError(f"{fn.__name__} returned None (a missing `return`?)")
        out = [v.astype(like) if like is not None and getattr(v, "dtype", like) != like
               and v.dtype.kind == "f" else v for v in _structure(value, sig.outputs, fn)]
        return out[0] if len(out) == 1 else tuple(out)
    call.__name__ = getattr(fn, "__name__", sig.name)
    return call


def learner_overrides(exercises: list[Exercise], fns: Fns) -> contextlib.AbstractContextManager:
    """``scratchnet.override`` with the learner's function for every op the exercises
    replace: the library's own layers then run the learner's math."""
    return ops.override(**{s.name: _checked(fns[s.name], s)
                           for ex in exercises for s in ex.signatures})


# --- inputs and formulas -------------------------------------------------------------------------
def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Values at least 4/size apart: no ties and no kink within gradcheck's step."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) + 0.5 * rng.random(shape)) * (4.0 / n) - 2.0


def _axes(ndim: int) -> tuple[str, ...]:
    return {1: ("N",), 2: ("N", "F"), 3: ("N", "C", "L"), 4: ("N", "C", "H", "W")}.get(
        ndim, tuple(f"axis {i}" for i in range(ndim)))


def _pair(p: tuple[int, int]) -> str:
    return f"{p[0]}" if p[0] == p[1] else f"({p[0]}, {p[1]})"


def _with(layer: nn.Module, **values: np.ndarray) -> nn.Module:
    """The layer in float64, with copies of the given parameters and buffers."""
    layer.to(dtype="float64")
    for name, value in values.items():
        if isinstance(getattr(layer, name), nn.Parameter):
            getattr(layer, name).data = value.copy()
        else:
            setattr(layer, name, value.copy())
    return layer


def _batched(a: NS) -> bool:
    return a.N > 1


def _sample_mistakes(tensor: str, f: Callable[[NS, np.ndarray], Any]) -> tuple[Mistake, ...]:
    """A sum over the batch with one sample's contribution only (``f(a, g)``: the right formula
    with the upstream gradient ``g`` in place of ``a.gy``)."""
    def only(a: NS, n: int) -> Any:
        g = np.zeros_like(a.gy)
        g[n] = a.gy[n]
        return f(a, g)
    return (Mistake(tensor, "yours is the contribution of the last sample only: each sample's "
                    "contribution must be added (+=), not assigned (=), or use one product over "
                    "the whole batch", lambda a: only(a, -1), _batched),
            Mistake(tensor, "yours is the contribution of the first sample only: the loop over "
                    "the batch stops early, or the other samples are not added",
                    lambda a: only(a, 0), _batched))


BATCH = ("N", lambda a: a.N, "the batch size")
_NO_STRIDE = ("yours places the windows as if the stride were 1: window (oh, ow) starts at row "
              "oh*SH - PH and column ow*SW - PW")
_SHARED = ("yours is wrong only on pixels covered by more than one window: contributions from "
           "overlapping windows must be added (+=), not assigned (=)")


def _shared(a: NS, col_shape: tuple[int, ...]) -> np.ndarray:
    """Pixels covered by more than one window (where contributions must add up)."""
    return np.asarray(F.col2im(np.ones(col_shape), a.s, a.p, a.size)) > 1


def _strided(a: NS) -> bool:
    return max(a.s) > 1


def _placed(a: NS) -> str:
    return f"stride {_pair(a.s)}, padding {_pair(a.p)}"


def _windows(a: NS) -> str:
    return f"x {a.x.shape}, kernel {_pair(a.k)}, {_placed(a)}"


def _batch(hint: str) -> tuple[str, Callable[[dict[str, Any]], bool], str]:
    """The condition "batch > 1" of a configuration, with what it points at."""
    return ("batch > 1", lambda c: c["N"] > 1, hint)


def _image(**spec: Any) -> dict[str, Any]:
    """An image-shaped tensor: axes N, C, H, W, the last two spatial, the padding ``a.p``."""
    return {"axes": ("N", "C", "H", "W"), "spatial": (2, 3), "padding": lambda a: a.p, **spec}


# --- linear, relu, sigmoid, mse ------------------------------------------------------------------
LINEAR = Exercise(
    "linear", "linear_backward(gy, x, weight) -> (dx, dweight, dbias)",
    "the backward pass of a fully connected layer y = x @ weight.T + bias",
    "docs/learn/01-chain.md",
    (dict(N=3, I=4, O=5), dict(N=1, I=3, O=2), dict(N=4, I=3, O=3), dict(N=2, I=5, O=5)),
    lambda a, r: dict(x=_normal(r, a.N, a.I), gy=_normal(r, a.N, a.O), weight=_normal(r, a.O, a.I),
                      bias=_normal(r, a.O)),
    lambda a: f"x {a.x.shape}, weight {a.weight.shape}",
    {"dx": dict(axes=("N", "in"), sizes=(BATCH,)), "dweight": dict(axes=("out", "in"), sizes=(BATCH,)),
     "dbias": dict(axes=("out",), sizes=(BATCH,))},
    (Mistake("dx", "yours multiplies gy by weight transposed: weight is (out, in), so dx = gy @ "
             "weight", lambda a: a.gy @ a.weight.T, lambda a: a.I == a.O),
     *_sample_mistakes("dweight", lambda a, g: g.T @ a.x),
     *_sample_mistakes("dbias", lambda a, g: g.sum(axis=0))),
    hints=("dx has x's shape (N, in), dweight weight's (out, in), dbias (out,): each is gy (N, "
           "out) combined with one other array so that exactly those axes remain",
           "differentiate y[n, o] = sum_i x[n, i] * weight[o, i] + bias[o] for one entry of x, "
           "of weight and of bias; weight and bias serve every sample, so their gradients sum "
           "over n",
           "dx = gy @ weight, dweight = gy.T @ x, dbias = gy.sum(axis=0)"),
    layer=lambda a: (_with(nn.Linear(a.I, a.O), weight=a.weight, bias=a.bias), (a.x,)),
    conditions=(_batch("the sum over the batch: every sample adds its own contribution"),
                ("in == out", lambda c: c["I"] == c["O"],
                 "a transpose that only goes unnoticed in shape when the weight is square")))


def _away_from_zero(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = r.standard_normal(shape)
    return np.sign(x) * (np.abs(x) + 0.05)


RELU = Exercise(
    "relu", "relu_backward(gy, x) -> dx", "the backward pass of ReLU, y = max(x, 0)",
    "docs/learn/01-chain.md, docs/learn/05-elementwise-and-pooling.md",
    (dict(shape=(2, 3, 4, 5)), dict(shape=(5, 7)), dict(shape=(1, 2, 3, 3))),
    lambda a, r: dict(x=_away_from_zero(r, a.shape), gy=_normal(r, *a.shape)),
    lambda a: f"x {a.x.shape}", {},
    (Mistake("dx", "yours is the mask [x > 0] itself: multiply gy by it", lambda a: a.x > 0),
     Mistake("dx", "yours is gy unchanged: the mask [x > 0] is missing", lambda a: a.gy),
     Mistake("dx", "yours is gy * x where x > 0: the derivative of max(x, 0) is 1 there (a step), "
             "not x", lambda a: a.gy * a.x * (a.x > 0)),
     Mistake("dx", "yours keeps gy where x <= 0: the mask is inverted", lambda a: a.gy * (a.x <= 0))),
    layer=lambda a: (nn.ReLU(), (a.x,)),
    hints=("dx has the shape of x and gy: entry by entry, no sum",
           "the derivative of max(x, 0) is a step, 1 where x > 0 and 0 elsewhere; the chain rule"
           " multiplies gy by it",
           "dx = gy * (x > 0)"))


def _draw_sigmoid(a: NS, r: np.random.Generator) -> dict[str, Any]:
    x = 3 * _normal(r, *a.shape)
    return dict(x=x, gy=_normal(r, *a.shape), y=np.asarray(F.sigmoid(x)))


def _sigmoid_again(a: NS) -> np.ndarray:
    sy = np.asarray(F.sigmoid(a.y))
    return a.gy * sy * (1 - sy)


SIGMOID = Exercise(
    "sigmoid", "sigmoid_backward(gy, y) -> dx", "the backward pass of the sigmoid, from its output y",
    "docs/learn/05-elementwise-and-pooling.md",
    (dict(shape=(2, 3, 4, 4)), dict(shape=(6, 5)), dict(shape=(1, 1, 5, 5))),
    _draw_sigmoid, lambda a: f"x {a.x.shape}", {},
    (Mistake("dx", "yours applies the sigmoid to y again: the layer keeps its output y = sigmoid(x), "
             "so the derivative is y * (1 - y) as it stands", _sigmoid_again),
     Mistake("dx", "yours is y * (1 - y) alone: multiply it by gy, the gradient arriving from above",
             lambda a: a.y * (1 - a.y)),
     Mistake("dx", "the factor (1 - y) is missing: dy/dx = y * (1 - y)", lambda a: a.gy * a.y),
     Mistake("dx", "the factor y is missing: dy/dx = y * (1 - y)", lambda a: a.gy * (1 - a.y))),
    layer=lambda a: (nn.Sigmoid(), (a.x,)),
    hints=("dx has the shape of y: entry by entry, no sum",
           "d sigmoid(x) / dx = sigmoid(x) * (1 - sigmoid(x)), and y is sigmoid(x) already; the "
           "chain rule multiplies gy by it",
           "dx = gy * y * (1 - y)"))


def _draw_mse(a: NS, r: np.random.Generator) -> dict[str, Any]:
    pred, target = _normal(r, *a.shape), _normal(r, *a.shape)
    return dict(pred=pred, target=target, diff=pred - target, grad_output=float(0.5 + r.random()),
                N=a.shape[0], M=pred.size, features=dict(N=a.shape[0]))


MSE = Exercise(
    "mse", "mse_backward(diff, grad_output) -> dpred",
    "the gradient of the mean squared error mean((pred - target)**2) for pred",
    "docs/learn/01-chain.md",
    (dict(shape=(2, 3, 4, 4)), dict(shape=(3, 7)), dict(shape=(1, 1, 5, 5))),
    _draw_mse, lambda a: f"pred {a.pred.shape}, grad_output {a.grad_output:.4g}",
    {"dpred": dict(square=True, sizes=(("M", lambda a: a.M, "the number of entries of pred, over "
                                        "which the mean is taken"), BATCH))},
    (Mistake("dpred", lambda a: f"yours divides by N, the batch size; the mean is over all M = "
             f"{a.M} entries of pred, so divide by M",
             lambda a: 2 * a.diff * a.grad_output / a.N, _batched),
     Mistake("dpred", lambda a: f"yours leaves out grad_output (dL/dloss, here {a.grad_output:.4g}): "
             "multiply by it; it is 1.0 only at the end of the chain", lambda a: 2 * a.diff / a.M)),
    layer=lambda a: (nn.MSELoss(), (a.pred, a.target)),
    hints=("dpred has the shape of diff; grad_output is one number; the mean runs over M = "
           "diff.size entries",
           "loss = (1/M) * sum_k diff[k]**2 and d diff / d pred = 1: differentiate one term of "
           "the sum, then multiply by grad_output (the chain rule)",
           "dpred = grad_output * 2 * diff / diff.size"))


def _draw_cross_entropy(a: NS, r: np.random.Generator) -> dict[str, Any]:
    logits, target = a.scale * _normal(r, a.N, a.C), r.integers(0, a.C, a.N)
    _, probs = F.cross_entropy(logits, target)
    onehot = np.eye(a.C)[target]
    return dict(input=logits, target=target, probs=np.asarray(probs), onehot=onehot,
                grad_output=float(0.5 + r.random()))


def _softmax(y: np.ndarray, axis: int = 1, shift: bool = True) -> np.ndarray:
    """exp(logsumexp's log-probabilities), over ``axis``; without the shift by the maximum,
    as a learner's overflowing version computes it (0 where exp overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = y.max(axis=axis, keepdims=True) if shift else 0
        return np.exp(y - m - np.log(np.exp(y - m).sum(axis=axis, keepdims=True)))


CROSS_ENTROPY = Exercise(
    "cross_entropy",
    "cross_entropy(input, target) -> (loss, probs); "
    "cross_entropy_backward(probs, target, grad_output) -> dinput",
    "a classifier's loss: the cross-entropy of the softmax of logits, and its gradient",
    "docs/learn/01-chain.md",
    (dict(N=4, C=3, scale=1.0), dict(N=1, C=5, scale=1.0), dict(N=3, C=4, scale=800.0),
     dict(N=5, C=2, scale=2.0)),
    _draw_cross_entropy,
    lambda a: f"logits {a.input.shape}" + (f" up to {a.scale:g} in size" if a.scale > 10 else "")
    + f", grad_output {a.grad_output:.4g}",
    {"dinput": dict(axes=("N", "C"), sizes=(("N", lambda a: a.N, "the batch size, over which "
                                                 "the mean is taken"),
                                                ("C", lambda a: a.C, "the number of classes"))),
     "loss": dict(axes=(), sizes=(BATCH,)),
     "probs": dict(axes=("N", "C"))},
    (Mistake("dinput", "yours is probs alone: the gradient of -log p[n, t_n] is p - onehot(t_n) "
             "(subtract 1 at each sample's target)", lambda a: a.probs * a.grad_output / a.N),
     Mistake("dinput", lambda a: f"yours lacks the 1/N of the mean over the N = {a.N} samples",
             lambda a: (a.probs - a.onehot) * a.grad_output, _batched),
     Mistake("dinput", lambda a: f"yours leaves out grad_output (dL/dloss, here "
             f"{a.grad_output:.4g}): multiply by it", lambda a: (a.probs - a.onehot) / a.N),
     Mistake("probs", "yours normalises each class over the batch (axis 0): the softmax runs "
             "over the classes of each sample (axis 1)", lambda a: _softmax(a.input, 0), _batched),
     Mistake("probs", "yours is 0 in the rows whose scores overflow exp (beyond about 709): "
             "subtract each row's maximum before exp (log-sum-exp)",
             lambda a: _softmax(a.input, shift=False), lambda a: a.scale > 10),
     Mistake("loss", "yours is the sum over the samples: the loss is their mean",
             lambda a: a.N * F.cross_entropy(a.input, a.target)[0], _batched)),
    hints=("input is (N, C), one row of C scores per sample; target (N,) holds each sample's "
           "class; loss is one number, probs and dinput are (N, C)",
           "softmax then -log of the target's probability, averaged over the samples; exp of a "
           "large score overflows, and shifting a row by a constant changes no probability; "
           "backward: the Jacobians of the log and the softmax collapse into one difference",
           "m = input.max(axis=1, keepdims=True); logp = input - m - log(exp(input - m).sum("
           "axis=1, keepdims=True)); loss = -logp[arange(N), target].mean(); probs = exp(logp);"
           " dinput = grad_output * (probs - onehot(target)) / N"),
    layer=lambda a: (nn.CrossEntropyLoss(), (a.input, a.target)),
    conditions=(("large logits", lambda c: c["scale"] > 10,
                 "exp of a large score overflows: subtract each row's maximum before exp "
                 "(log-sum-exp), and take the log before the exp, not of probabilities that "
                 "underflow to 0"),
                _batch("the mean over the N samples")))


# --- convolution ---------------------------------------------------------------------------------
_CONV_CONFIGS = (
    dict(N=2, C=2, OC=3, H=5, W=5, k=(3, 3), s=(1, 1), p=(0, 0)),
    dict(N=2, C=2, OC=3, H=5, W=5, k=(3, 3), s=(1, 1), p=(1, 1)),
    dict(N=2, C=2, OC=3, H=7, W=7, k=(3, 3), s=(2, 2), p=(0, 0)),
    dict(N=1, C=2, OC=3, H=5, W=5, k=(3, 3), s=(1, 1), p=(0, 0)),
    dict(N=2, C=3, OC=3, H=6, W=5, k=(3, 2), s=(2, 1), p=(1, 0)),
    dict(N=3, C=1, OC=2, H=4, W=6, k=(2, 3), s=(1, 2), p=(0, 1)),
)
_CONV_CONDITIONS = (
    ("stride > 1", lambda c: max(c["s"]) > 1,
     "look at how the stride places each window (oh*SH + i, ow*SW + j)"),
    ("padding > 0", lambda c: max(c["p"]) > 0,
     "look at the padding: the padded border, and the offset it adds to every index"),
    _batch("look at the batch axis: col and argmax keep it last, and every sample contributes"),
    ("a non-square kernel", lambda c: c["k"][0] != c["k"][1],
     "KH and KW (or H and W) are mixed up somewhere"),
    ("different strides or paddings along H and W",
     lambda c: c["s"][0] != c["s"][1] or c["p"][0] != c["p"][1],
     "SH and SW, or PH and PW, are mixed up somewhere"),
)


def _conv_exercise(name: str, signature: str, asks: str, own_col: bool = False, **row: Any
                   ) -> Exercise:
    """A row graded on the convolution's configurations, gradchecked through nn.Conv2d."""
    def draw(a: NS, r: np.random.Generator) -> dict[str, Any]:
        x, weight, bias = _normal(r, a.N, a.C, a.H, a.W), _normal(r, a.OC, a.C, *a.k), _normal(r, a.OC)
        y, col = F.conv2d(x, weight, bias, a.s, a.p)
        gy = _normal(r, *y.shape)
        return dict(x=x, weight=weight, bias=bias, gy=gy, size=(a.H, a.W), stride=a.s, padding=a.p,
                    col=_normal(r, *col.shape) if own_col else np.ascontiguousarray(col))
    return Exercise(
        name, signature, asks, "docs/learn/03-convolution.md", _CONV_CONFIGS, draw,
        row.pop("describe", _windows),
        layer=lambda a: (_with(nn.Conv2d(a.C, a.OC, a.k, a.s, a.p), weight=a.weight, bias=a.bias),
                         (a.x,)), conditions=_CONV_CONDITIONS, **row)


_PIXELS = ("OH*OW", lambda a: a.gy.shape[2] * a.gy.shape[3], "the number of output pixels")
_RESHAPED = ("it has the shape of the transpose but not its entries (a reshape regroups the "
             "entries in memory order, it does not swap axes); the transpose is ")
_CONV_IMAGE = _image(sizes=(BATCH,), masks=((_SHARED, lambda a: _shared(a, a.col.shape)),))


def _grad_input(a: NS, weight: np.ndarray | None = None, stride: tuple[int, int] | None = None
                ) -> np.ndarray:
    w = a.weight if weight is None else np.ascontiguousarray(weight)
    return np.asarray(F.conv2d_grad_input(a.gy, w, a.size, stride or a.s, a.p))


CONV2D_GRAD_WEIGHT = _conv_exercise(
    "conv2d_grad_weight", "conv2d_grad_weight(gy, col) -> dweight",
    "the weight gradient of a convolution from its im2col matrix",
    tensors={"dweight": dict(axes=("OC", "C", "KH", "KW"), flip_axes=(2, 3), sizes=(BATCH, _PIXELS))},
    hints=("dweight is (OC, C, KH, KW), gy (N, OC, OH, OW), col (C, KH, KW, OH, OW, N) with the "
           "batch axis last: the sum runs over n, oh and ow, which gy and col order differently",
           "bring gy to (OC, OH, OW, N) so that its positions line up with col's, flatten both "
           "to matrices with L = OH*OW*N columns, take one matrix product, reshape it to (OC, C,"
           " KH, KW)",
           "g = gy.transpose(1, 2, 3, 0).reshape(OC, -1); dweight = (g @ col.reshape(C*KH*KW, "
           "-1).T).reshape(OC, C, KH, KW)"),
    mistakes=(*_sample_mistakes("dweight", lambda a, g: F.conv2d_grad_weight(g, a.col)),
              Mistake("dweight", "yours multiplies by col.reshape(-1, C*KH*KW): " + _RESHAPED
                      + "col.reshape(C*KH*KW, -1).T", lambda a: (a.gy.transpose(1, 2, 3, 0).reshape(
                          a.OC, -1) @ a.col.reshape(-1, a.C * a.k[0] * a.k[1])).reshape(
                          a.OC, a.C, *a.k))))

CONV2D_GRAD_INPUT = _conv_exercise(
    "conv2d_grad_input", "conv2d_grad_input(gy, weight, size, stride, padding) -> dx",
    "the input gradient of a convolution", tensors={"dx": _CONV_IMAGE},
    hints=("dx is (N, C, H, W); the way there is dcol, the gradient of col: (C, KH, KW, OH, OW, "
           "N), the batch axis last, as im2col lays it out",
           "forward was y = weight (as OC x C*KH*KW) @ col (as C*KH*KW x OH*OW*N): the gradient "
           "of the right factor of a product is the left one transposed times the upstream "
           "gradient; then col2im adds dcol back onto the pixels",
           "g = gy.transpose(1, 2, 3, 0).reshape(OC, -1); dcol = (weight.reshape(OC, -1).T @ "
           "g).reshape(C, KH, KW, OH, OW, N); dx = col2im(dcol, stride, padding, size)"),
    mistakes=(
        Mistake("dx", "yours equals the right answer computed with the kernel rotated by 180 "
                "degrees: written as a full correlation of gy, dx needs the kernel rotated; yours "
                "rotates it where it should not, or not where it should",
                lambda a: _grad_input(a, a.weight[:, :, ::-1, ::-1])),
        Mistake("dx", _NO_STRIDE, lambda a: _grad_input(a, stride=(1, 1)), _strided),
        Mistake("dx", "yours uses weight with its OC and C axes exchanged: dx sums over the output "
                "channels OC, weight is (OC, C, KH, KW)",
                lambda a: _grad_input(a, a.weight.transpose(1, 0, 2, 3)), lambda a: a.C == a.OC),
        Mistake("dx", "yours multiplies by weight.reshape(-1, OC): " + _RESHAPED
                + "weight.reshape(OC, -1).T", lambda a: _grad_input(
                    a, a.weight.reshape(-1, a.OC).T.reshape(a.weight.shape)))))

COL2IM = _conv_exercise(
    "col2im", "col2im(col, stride, padding, size) -> x",
    "the adjoint of im2col: add every column entry back onto its pixel", own_col=True,
    describe=lambda a: f"col {a.col.shape}, {_placed(a)}, size {a.size}",
    hints=("col is (C, KH, KW, OH, OW, N), the batch axis last; x is (N, C, H, W): fill a padded"
           " image (a little larger than (N, C, H + 2*PH, W + 2*PW) is handy) and crop it at the"
           " end",
           "for each kernel offset (i, j), col[:, i, j] is the (C, OH, OW, N) block im2col read "
           "from the strided slice x_padded[:, :, i : i + SH*OH : SH, j : j + SW*OW : SW]; add "
           "it back there (batch axis first); where windows overlap the entries add up",
           "xp = zeros((N, C, H + 2*PH + KH, W + 2*PW + KW)); for every i, j: xp[:, :, i:i + "
           "SH*OH:SH, j:j + SW*OW:SW] += col[:, i, j].transpose(3, 0, 1, 2); x = xp[:, :, PH:PH "
           "+ H, PW:PW + W]"),
    tensors={"x": _CONV_IMAGE},
    mistakes=(Mistake("x", _NO_STRIDE, lambda a: F.col2im(a.col, (1, 1), a.p, a.size), _strided),))


def _draw_conv_transpose(a: NS, r: np.random.Generator) -> dict[str, Any]:
    x, weight, bias = _normal(r, a.N, a.C_in, a.H, a.W), _normal(r, a.C_in, a.C_out, *a.k), _normal(r, a.C_out)
    y = F.conv_transpose2d(x, weight, bias, a.s, a.p, a.op)
    return dict(x=x, weight=weight, bias=bias, gy=_normal(r, *y.shape), stride=a.s, padding=a.p)


CONV_TRANSPOSE2D = Exercise(
    "conv_transpose2d",
    "conv_transpose2d_backward(gy, x, weight, stride, padding) -> (dx, dweight, dbias)",
    "the backward pass of a transposed convolution", "docs/learn/04-transposed-convolution.md",
    (dict(N=2, C_in=3, C_out=2, H=3, W=3, k=(3, 3), s=(1, 1), p=(0, 0), op=(0, 0)),
     dict(N=2, C_in=2, C_out=3, H=3, W=4, k=(3, 3), s=(2, 2), p=(1, 1), op=(1, 1)),
     dict(N=1, C_in=2, C_out=2, H=4, W=3, k=(2, 2), s=(2, 2), p=(0, 0), op=(0, 0)),
     dict(N=2, C_in=3, C_out=2, H=3, W=3, k=(3, 2), s=(2, 1), p=(1, 0), op=(1, 0))),
    _draw_conv_transpose,
    lambda a: f"x {a.x.shape}, weight {a.weight.shape}, {_placed(a)}, output_padding {_pair(a.op)}",
    {"dx": dict(axes=("N", "C_in", "H", "W"), sizes=(BATCH, _PIXELS), spatial=(2, 3)),
     "dweight": dict(axes=("C_in", "C_out", "KH", "KW"), sizes=(BATCH, _PIXELS), flip_axes=(2, 3)),
     "dbias": dict(axes=("C_out",), sizes=(BATCH, _PIXELS))},
    (Mistake("dx", "yours equals the right answer computed with the kernel rotated by 180 degrees: "
             "dx is an ordinary convolution (a correlation, as conv2d computes it) of gy with the "
             "kernel as it is",
             lambda a: F.conv2d(a.gy, a.weight[:, :, ::-1, ::-1].copy(), None, a.s, a.p)[0]),
     *_sample_mistakes("dweight", lambda a, g: F.conv2d_grad_weight(a.x, F.im2col(g, a.k, a.s, a.p))),
     *_sample_mistakes("dbias", lambda a, g: g.sum(axis=(0, 2, 3)))),
    hints=("dx has x's shape (N, C_in, H, W), dweight weight's (C_in, C_out, KH, KW), dbias "
           "(C_out,); gy (N, C_out, OH, OW) has the shape of the layer's output",
           "a transposed convolution is the adjoint of a convolution with the same weight, "
           "stride and padding: its input gradient is an ordinary convolution of gy, its weight "
           "gradient pairs x with the columns of gy (im2col of gy), and dbias sums gy over all "
           "axes but C_out",
           "dx = conv2d(gy, weight, None, stride, padding)[0]; dweight = conv2d_grad_weight(x, "
           "im2col(gy, (KH, KW), stride, padding)); dbias = gy.sum(axis=(0, 2, 3))"),
    layer=lambda a: (_with(nn.ConvTranspose2d(a.C_in, a.C_out, a.k, a.s, a.p, a.op),
                           weight=a.weight, bias=a.bias), (a.x,)),
    conditions=_CONV_CONDITIONS)


# --- pooling -------------------------------------------------------------------------------------
_POOL_CONFIGS = (
    dict(N=2, C=2, H=4, W=4, k=(2, 2), s=(2, 2), p=(0, 0)),
    dict(N=2, C=2, H=5, W=5, k=(3, 3), s=(2, 2), p=(1, 1)),
    dict(N=1, C=3, H=4, W=6, k=(2, 3), s=(1, 2), p=(1, 1)),
    dict(N=3, C=1, H=6, W=5, k=(3, 2), s=(3, 1), p=(0, 0)),
)
_POOL_CONDITIONS = (
    ("overlapping windows (stride < kernel)", lambda c: c["s"][0] < c["k"][0] or
     c["s"][1] < c["k"][1], "a pixel in several windows must receive the sum of their gradients"),
    ("padding > 0", lambda c: max(c["p"]) > 0,
     "look at the padding: window positions are offset by it"),
    _batch("look at the batch axis (argmax keeps it last)"),
    ("a non-square kernel", lambda c: c["k"][0] != c["k"][1],
     "KH and KW are mixed up somewhere (argmax counts i*KW + j)"),
)


def _pool_exercise(name: str, signature: str, asks: str, layer: type, **row: Any) -> Exercise:
    """A row graded on the pooling configurations, gradchecked through the pooling layer."""
    def draw(a: NS, r: np.random.Generator) -> dict[str, Any]:
        x = _distinct(r, a.N, a.C, a.H, a.W)
        y, argmax = F.max_pool2d(x, a.k, a.s, a.p)
        return dict(x=x, argmax=np.ascontiguousarray(argmax), gy=_normal(r, *y.shape), kernel=a.k,
                    stride=a.s, padding=a.p, size=(a.H, a.W))
    return Exercise(
        name, signature, asks, "docs/learn/05-elementwise-and-pooling.md", _POOL_CONFIGS, draw,
        _windows, layer=lambda a: (layer(a.k, a.s, a.p), (a.x,)), conditions=_POOL_CONDITIONS, **row)


_ADD_AT = ("with fancy indexing dx[index] += g adds only once per repeated index, np.add.at(dx, "
           "index, g) adds them all; in a loop, add (+=) where it assigns (=)")


def _scatter(a: NS, column_order: bool = False, stride: tuple[int, int] | None = None,
             padding: tuple[int, int] | None = None, add_at: bool = True) -> np.ndarray:
    """gy[n, c, oh, ow] added onto the window entry argmax names (decoded row by row, or
    column by column), with the given stride and padding (``add_at=False``: with fancy-index
    ``+=``, once per repeated index): an alternative."""
    (SH, SW), (PH, PW), (H, W), (KH, KW) = stride or a.s, padding or a.p, a.size, a.k
    out = np.zeros((a.N, a.C, H + 2 * PH + KH, W + 2 * PW + KW))
    i, j = (a.argmax % KH, a.argmax // KH) if column_order else divmod(a.argmax, KW)
    c, oh, ow, n = np.indices(a.argmax.shape)
    index = (n, c, oh * SH + i, ow * SW + j)
    if add_at:
        np.add.at(out, index, a.gy[n, c, oh, ow])
    else:
        out[index] += a.gy[n, c, oh, ow]
    return out[:, :, PH:PH + H, PW:PW + W]


def _max_of_several(a: NS) -> np.ndarray:
    """Pixels that are the maximum of more than one window."""
    ones = np.ones_like(a.gy)
    return np.asarray(F.max_pool2d_backward(ones, a.argmax, a.k, a.s, a.p, a.size)) > 1


MAX_POOL2D = _pool_exercise(
    "max_pool2d", "max_pool2d_backward(gy, argmax, kernel, stride, padding, size) -> dx",
    "the backward pass of max pooling: each gradient to its window's maximum", nn.MaxPool2d,
    hints=("dx is (N, C, H, W), gy (N, C, OH, OW); argmax is (C, OH, OW, N), the batch axis "
           "last, each entry k = i*KW + j a position inside its window",
           "each gy[n, c, oh, ow] goes to one pixel, row oh*SH + i - PH and column ow*SW + j - "
           "PW with i, j = divmod(k, KW): fill a padded dx and crop it; a pixel that is the "
           "maximum of several windows receives several gradients, which add up (+= in a loop, "
           "or np.add.at)",
           "dxp = zeros((N, C, H + 2*PH, W + 2*PW)); c, oh, ow, n = np.indices(argmax.shape); i,"
           " j = divmod(argmax, KW); np.add.at(dxp, (n, c, oh*SH + i, ow*SW + j), gy[n, c, oh, "
           "ow]); dx = dxp[:, :, PH:PH + H, PW:PW + W]"),
    tensors={"dx": _image(masks=((
        "yours is wrong only on pixels that are the maximum of more than one window: their "
        "gradients must all be added: " + _ADD_AT, _max_of_several),))},
    mistakes=(
        Mistake("dx", "yours keeps one gradient per pixel where the maxima of several windows "
                "coincide: " + _ADD_AT, lambda a: _scatter(a, add_at=False)),
        Mistake("dx", "yours decodes argmax column by column (i = k % KH, j = k // KH); it counts "
                "row by row within the window: i = k // KW, j = k % KW",
                lambda a: _scatter(a, column_order=True)),
        Mistake("dx", "yours sends each gradient to every pixel of its window; max pooling sends it "
                "only to the window's maximum (the entry argmax names)",
                lambda a: F.avg_pool2d_backward(a.gy, a.k, a.s, a.p, a.size) * (a.k[0] * a.k[1])),
        Mistake("dx", _NO_STRIDE, lambda a: _scatter(a, stride=(1, 1)), _strided),
        Mistake("dx", "yours ignores the padding: the window at (oh, ow) starts at row oh*SH - PH and "
                "column ow*SW - PW of x", lambda a: _scatter(a, padding=(0, 0)), lambda a: any(a.p))))


def _counting_real_pixels(a: NS) -> np.ndarray:
    window = a.k[0] * a.k[1]
    real = np.asarray(F.avg_pool2d(np.ones_like(a.x), a.k, a.s, a.p)) * window
    return F.avg_pool2d_backward(a.gy * window / real, a.k, a.s, a.p, a.size)


AVG_POOL2D = _pool_exercise(
    "avg_pool2d", "avg_pool2d_backward(gy, kernel, stride, padding, size) -> dx",
    "the backward pass of average pooling: each gradient spread over its window", nn.AvgPool2d,
    tensors={"dx": _image(sizes=(("KH*KW", lambda a: a.k[0] * a.k[1], "the number of pixels in a "
                                  "window"),), masks=((_SHARED, lambda a: _shared(
                                      a, (a.C, *a.k, *a.gy.shape[2:], a.N))),))},
    hints=("dx is (N, C, H, W), gy (N, C, OH, OW); every window has KH*KW pixels, padded zeros "
           "included",
           "each output is the mean of its window, so every pixel of the window gets gy / "
           "(KH*KW): for each offset (i, j) add that onto the strided slice of a padded dx, then"
           " crop the padding",
           "dxp = zeros((N, C, H + 2*PH + KH, W + 2*PW + KW)); for every i, j: dxp[:, :, i:i + "
           "SH*OH:SH, j:j + SW*OW:SW] += gy / (KH*KW); dx = dxp[:, :, PH:PH + H, PW:PW + W]"),
    mistakes=(Mistake("dx", "yours divides by the number of real (unpadded) pixels in each window; "
                      "here padded zeros count as pixels too (count_include_pad), so every window "
                      "divides by KH*KW", _counting_real_pixels, lambda a: any(a.p)),))


# --- batch norm ----------------------------------------------------------------------------------
def _draw_batch_norm(a: NS, r: np.random.Generator) -> dict[str, Any]:
    train, eps = a.mode == "train", 1e-5
    x = 2 * _normal(r, a.N, a.C, a.H, a.W) + 1
    weight, bias = (0.5 + r.random(a.C), _normal(r, a.C)) if a.affine else (None, None)
    running_mean, running_var = 0.5 * _normal(r, a.C), 0.5 + r.random(a.C)
    y, xhat, inv_std, _, _ = F.batch_norm_forward(
        x, weight, bias, eps, *(() if train else (running_mean, running_var)))
    gy = _normal(r, *y.shape)
    w = (weight if a.affine else np.ones(a.C)).reshape(1, a.C, 1, 1)
    return dict(x=x, gy=gy, xhat=np.asarray(xhat), inv_std=np.asarray(inv_std), weight=weight,
                bias=bias, batch_stats=train, eps=eps, running_mean=running_mean,
                running_var=running_var, M=a.N * a.H * a.W, scale=w * inv_std.reshape(1, a.C, 1, 1),
                sum_g=gy.sum(axis=(0, 2, 3)).reshape(1, a.C, 1, 1),
                sum_gx=(gy * xhat).sum(axis=(0, 2, 3)).reshape(1, a.C, 1, 1))


def _through_stats(a: NS, m: float, mean: bool = True, var: bool = True, direct: bool = True
                   ) -> np.ndarray:
    return a.scale * (direct * a.gy - mean * a.sum_g / m - var * a.xhat * a.sum_gx / m)


_STAGED = "in a staged backward, a later stage assigned dx (=) where it must add to it (+=)"


def _training(a: NS) -> bool:
    return a.batch_stats


def _stats_mistake(message: str, **terms: bool) -> Mistake:
    """dx in training mode with some of its three terms left out."""
    return Mistake("dx", message, lambda a: _through_stats(a, a.M, **terms), _training)


def _bn_layer(a: NS) -> tuple[nn.Module, tuple[Any, ...]]:
    params = dict(weight=a.weight, bias=a.bias) if a.affine else {}
    layer = _with(nn.BatchNorm2d(a.C, eps=a.eps, affine=a.affine), **params,
                  running_mean=a.running_mean, running_var=a.running_var)
    return layer.train(a.batch_stats), (a.x,)


_BN = dict(sizes=(("M", lambda a: a.M, "the number of values per channel, N*H*W"), BATCH))

BATCH_NORM = Exercise(
    "batch_norm",
    "batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True) -> (dx, dweight, dbias)",
    "the backward pass of batch normalisation, through the batch statistics",
    "docs/learn/06-batch-norm.md",
    (dict(N=4, C=3, H=2, W=3, mode="train", affine=True),
     dict(N=1, C=2, H=3, W=3, mode="train", affine=True),
     dict(N=3, C=2, H=2, W=2, mode="eval", affine=True),
     dict(N=3, C=2, H=3, W=2, mode="train", affine=False)),
    _draw_batch_norm,
    lambda a: (f"x {a.x.shape}, {'training' if a.batch_stats else 'eval'} mode (batch_stats="
               f"{a.batch_stats})" + ("" if a.affine else ", no affine (weight None)")),
    {"dx": dict(axes=("N", "C", "H", "W"), **_BN, factors=lambda a: (("inv_std", 1, a.inv_std),)
                + ((("weight", 1, a.weight),) if a.affine else ())),
     "dweight": dict(axes=("C",), **_BN), "dbias": dict(axes=("C",), **_BN)},
    (Mistake("dx", "yours treats the mean and variance as constants: in training mode they depend "
             "on every x of the channel, which adds the terms -dbias/M and -xhat * dweight/M "
             "(before the factor weight * inv_std)", lambda a: a.gy * a.scale, _training),
     _stats_mistake("the term through the mean (-dbias/M, i.e. -sum(gy)/M) is missing", mean=False),
     _stats_mistake("the term through the variance (-xhat * sum(gy * xhat)/M) is missing", var=False),
     _stats_mistake("yours lacks the direct term gy * weight * inv_std (the path around the "
                    f"statistics): {_STAGED}", direct=False),
     _stats_mistake(f"yours is the term through the mean alone: {_STAGED}; the three terms add up",
                    direct=False, var=False),
     _stats_mistake(f"yours is the term through the variance alone: {_STAGED}; the three terms add "
                    "up", direct=False, mean=False),
     Mistake("dx", lambda a: f"yours divides by N = {a.N}; M = N*H*W = {a.M} is the number of "
             "values per channel", lambda a: _through_stats(a, a.N),
             lambda a: a.batch_stats and a.N != a.M),
     Mistake("dx", lambda a: f"yours divides by H*W = {a.H * a.W}; M = N*H*W = {a.M} is the number "
             "of values per channel", lambda a: _through_stats(a, a.H * a.W),
             lambda a: a.batch_stats and a.N != 1),
     Mistake("dx", "batch_stats is False (eval mode): the statistics are constants, so dx = gy * "
             "weight * inv_std, without the terms through the mean and variance",
             lambda a: _through_stats(a, a.M), lambda a: not a.batch_stats),
     Mistake("dweight", "yours is dbias: dweight = sum of gy * xhat over N, H and W",
             lambda a: a.sum_g.reshape(-1)),
     Mistake("dbias", "yours is dweight: dbias = sum of gy over N, H and W",
             lambda a: a.sum_gx.reshape(-1))),
    hints=("dx is (N, C, H, W); dweight and dbias are (C,), sums over N, H and W (axis=(0, 2, "
           "3)); weight and inv_std are per channel, broadcast as (1, C, 1, 1); M = N*H*W values"
           " per channel",
           "y = weight * xhat + bias gives dbias and dweight at once; in eval mode the "
           "statistics are constants, so dx = gy * weight * inv_std; in training mode the mean "
           "and the variance depend on every x of the channel, which adds one term through each",
           "dbias = sum(gy), dweight = sum(gy * xhat); training: dx = weight * inv_std * (gy - "
           "dbias/M - xhat * dweight/M); eval: dx = weight * inv_std * gy (per channel, shaped "
           "(1, C, 1, 1))"),
    layer=_bn_layer,
    conditions=(("eval mode", lambda c: c["mode"] == "eval", "the batch_stats=False branch: fixed "
                 "statistics"),
                ("training mode", lambda c: c["mode"] == "train",
                 "the gradient through the batch mean and variance"),
                _batch("the sums over N (and H, W): M = N*H*W values per channel"),
                ("no affine transform (weight None)", lambda c: not c["affine"],
                 "weight None means a factor 1"),
                ("an affine transform (weight given)", lambda c: c["affine"],
                 "the factor weight (per channel) in dx")))


# --- skip connections ----------------------------------------------------------------------------
def _draw_unet_skip(a: NS, r: np.random.Generator) -> dict[str, Any]:
    grad = _normal(r, a.N, a.up + a.skip, a.H, a.W)
    grad_pool, grad_skip = _normal(r, a.N, a.skip, a.H, a.W), _normal(r, a.N, a.skip, a.H, a.W)
    return dict(grad=grad, up_channels=a.up, grad_pool=grad_pool, grad_skip=grad_skip,
                **_unet_model(a, r))


def _unet_model(a: NS, r: np.random.Generator) -> dict[str, Any]:
    """A U-Net (its state) and an input x whose ReLU inputs stay off the kink at 0."""
    width, shape = a.unet
    x, smallest = r.random(shape), []

    def relu(v: np.ndarray) -> np.ndarray:
        smallest.append(float(np.abs(v).min()))
        return F.relu(v)

    for seed in range(100):
        manual_seed(seed)
        model, smallest[:] = models.UNet(width).double(), []
        with ops.override(relu=relu):
            model(x)
        if min(smallest) > 1e-5:
            break
    return dict(x=x, state={k: np.array(v) for k, v in model.state_dict().items()})


def _unet(width: int, state: dict[str, np.ndarray]) -> models.UNet:
    with keep_init_rng():
        model = models.UNet(width).double()
    model.load_state_dict(state)
    return model


def _unet_layer(a: NS) -> tuple[nn.Module, tuple[Any, ...]]:
    return _unet(a.unet[0], a.state), (a.x,)


_SPLIT = ("split after up_channels: cat(up, skip) puts up's channels first, so grad_up = "
          "grad[:, :up_channels] and grad_skip = grad[:, up_channels:]")


def _other_part(a: NS, channels: int, whose: str) -> tuple[tuple[tuple[int, ...], str], ...]:
    """A wrong shape with a known cause: the other part's channels."""
    if a.up == a.skip:
        return ()
    return (((a.N, channels, a.H, a.W), f"it has {whose} {channels} channels: " + _SPLIT),)


UNET_SKIP = Exercise(
    "unet_skip",
    "skip_split(grad, up_channels) -> (grad_up, grad_skip); skip_sum(grad_pool, grad_skip) -> grad",
    "the two rules of a skip connection: split the gradient at a concatenation, sum it where a "
    "feature map fed two consumers", "docs/learn/07-skip-connections.md",
    (dict(N=2, up=3, skip=2, H=4, W=4, unet=(1, (2, 1, 8, 8))),
     dict(N=1, up=2, skip=2, H=2, W=3, unet=(1, (1, 1, 4, 8))),
     dict(N=2, up=1, skip=3, H=3, W=2, unet=(2, (2, 1, 8, 4)))),
    _draw_unet_skip,
    lambda a: f"grad {a.grad.shape} split after {a.up} channels; UNet({a.unet[0]}) on x {a.x.shape}",
    {"grad_up": dict(shapes=lambda a: _other_part(a, a.skip, "the skip's")),
     "grad_skip": dict(shapes=lambda a: _other_part(a, a.up, "up's"))},
    (Mistake("grad_up", "yours is the skip's part: " + _SPLIT, lambda a: a.grad[:, a.skip:]),
     Mistake("grad_skip", "yours is the up-sampling path's part: " + _SPLIT,
             lambda a: a.grad[:, :a.skip]),
     *(Mistake("grad", f"yours is {one} alone: the feature map fed two consumers, so its gradient "
               f"is the sum of both; add {other}", lambda a, one=one: getattr(a, one))
       for one, other in (("grad_pool", "grad_skip"), ("grad_skip", "grad_pool"))),
     Mistake("grad", "yours averages the two gradients: a feature map that fed two consumers "
             "gets the sum of their gradients, not their mean", lambda a: (a.grad_pool + a.grad_skip) / 2),
     *(Mistake("grad", "yours subtracts one gradient from the other: they add up", f) for f in
       (lambda a: a.grad_pool - a.grad_skip, lambda a: a.grad_skip - a.grad_pool))),
    hints=("skip_split: grad (N, up + skip, H, W) into (N, up_channels, H, W) and the rest; "
           "skip_sum: two gradients of one shape into one",
           "cat(up, skip) puts up's channels first, so each part of the gradient goes back to "
           "where its channels came from; a feature map that fed two consumers gets the "
           "gradients of both (the multivariable chain rule)",
           "skip_split returns grad[:, :up_channels], grad[:, up_channels:]; skip_sum returns "
           "grad_pool + grad_skip"),
    layer=_unet_layer, gradcheck=dict(parameters=False, max_elementwise=0, n_directions=4,
                                      n_samples=8))


@dataclass(frozen=True)
class _Stages:
    """The stages of a U-Net: ``fresh()`` runs a forward pass of a copy on x and returns
    ``stage(name, g)``, its stages' backward passes (`models.unet_backward`'s argument)."""
    width: int
    state: dict[str, np.ndarray]
    x: np.ndarray

    def fresh(self) -> Callable[[str, np.ndarray], np.ndarray]:
        model = _unet(self.width, self.state)
        model(self.x)
        return lambda name, g: getattr(model, name).backward(g)


def _draw_unet_backward(a: NS, r: np.random.Generator) -> dict[str, Any]:
    drawn = _unet_model(a, r)
    width, (N, _, H, W) = a.unet
    return dict(grad_output=_normal(r, N, 1, H, W), c_up2=2 * width, c_up1=width,
                stage=_Stages(width, drawn["state"], drawn["x"]), **drawn)


def _wired(a: NS, skip2: bool = True, skip1: bool = True, deep2: bool = True, deep1: bool = True,
           swap: bool = False) -> np.ndarray:
    """`models.unet_backward` with a skip's or the deep path's gradient left out, or the
    splits' two parts exchanged: the mistakes of its wiring."""
    stage = a.stage.fresh()

    def split(g: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        return (g[:, c:], g[:, :c]) if swap else (g[:, :c], g[:, c:])
    g_up1, g_e1_skip = split(stage("d1", stage("out", stage("sigmoid", a.grad_output))), a.c_up1)
    g_up2, g_e2_skip = split(stage("d2", stage("u1", g_up1)), a.c_up2)
    g_e2 = deep2 * stage("pool2", stage("b", stage("u2", g_up2))) + skip2 * g_e2_skip
    return stage("e1", deep1 * stage("pool1", stage("e2", g_e2)) + skip1 * g_e1_skip)


_ADDED_BEFORE = "it must be added before that map's own backward runs"

UNET_BACKWARD = Exercise(
    "unet_backward", "unet_backward(grad_output, c_up2, c_up1, stage) -> dx",
    "the U-Net's whole backward pass: the order of its stages, its two splits and two sums",
    "docs/learn/07-skip-connections.md",
    (dict(unet=(1, (2, 1, 8, 8))), dict(unet=(2, (1, 1, 4, 8))), dict(unet=(1, (2, 1, 4, 4)))),
    _draw_unet_backward, lambda a: f"UNet({a.unet[0]}) on x {a.x.shape}",
    {"dx": dict(axes=("N", "C", "H", "W"), spatial=(2, 3))},
    (Mistake("dx", "yours drops e2's skip gradient (its part of cat(up2, e2)): e2 fed two "
             f"consumers, so its gradient is the sum of both; {_ADDED_BEFORE} (e2)",
             lambda a: _wired(a, skip2=False)),
     Mistake("dx", "yours drops e1's skip gradient (its part of cat(up1, e1)): e1 fed two "
             f"consumers, so its gradient is the sum of both; {_ADDED_BEFORE} (e1)",
             lambda a: _wired(a, skip1=False)),
     Mistake("dx", "yours drops both skip gradients: e1 and e2 each fed two consumers; "
             "add each skip's part of the split to the gradient from below",
             lambda a: _wired(a, skip1=False, skip2=False)),
     Mistake("dx", "yours gives e2 its skip gradient alone: the gradient from the path below "
             "(u2, b, pool2) was overwritten (=) where the two must be added (+=)",
             lambda a: _wired(a, deep2=False)),
     Mistake("dx", "yours gives e1 its skip gradient alone: the gradient from the path below "
             "(pool1, e2) was overwritten (=) where the two must be added (+=)",
             lambda a: _wired(a, deep1=False)),
     Mistake("dx", "yours splits the other way round: cat(up, e) puts up's channels first, so "
             "g[:, :c_up] goes up the decoder and g[:, c_up:] to the skip",
             lambda a: _wired(a, swap=True))),
    hints=("grad_output and dx are (N, 1, H, W); stage(name, g) takes the gradient of a stage's "
           "output and returns that of its input; c_up2 and c_up1 are where the two "
           "concatenations split (the up-sampled part comes first)",
           "read forward backwards: sigmoid, out, d1, then a split, u1, d2, a split, u2, b, "
           "pool2; e2 fed pool2 and the skip, so its gradient is complete only when both parts "
           "are added, and only then may e2's backward run; the same for e1",
           "g = d1(out(sigmoid(gy))); g_up1, s1 = g[:, :c_up1], g[:, c_up1:]; g = d2(u1(g_up1));"
           " g_up2, s2 = g[:, :c_up2], g[:, c_up2:]; g_e2 = pool2(b(u2(g_up2))) + s2; g_e1 = "
           "pool1(e2(g_e2)) + s1; dx = e1(g_e1), each stage(name, g)"),
    layer=_unet_layer,       # the stages add their parameters' gradients themselves (+=)
    gradcheck=dict(max_elementwise=0, n_directions=1, n_samples=1, check_accumulation=False))


# --- adam ----------------------------------------------------------------------------------------
def _adam(a: NS, *, next_step: bool = False, correct_m: bool = True, correct_v: bool = True,
          eps_inside: bool = False, decoupled: bool = False, wd: float | None = None,
          sign: float = 1.0, root: bool = True) -> np.ndarray:
    """One Adam update in float64 (param after minus before), with the usual mistakes."""
    (b1, b2), t, wd = a.betas, a.step + next_step, a.wd if wd is None else wd
    p = a.param * (1 - a.lr * wd) if decoupled else a.param
    g = a.grad if decoupled else a.grad + wd * a.param
    m, v = b1 * a.exp_avg + (1 - b1) * g, b2 * a.exp_avg_sq + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** t) if correct_m else m, v / (1 - b2 ** t) if correct_v else v
    denom = np.sqrt(v_hat + a.eps) if eps_inside else (np.sqrt(v_hat) if root else v_hat) + a.eps
    return sign * (p - a.lr * m_hat / denom - a.param)


def _draw_adam(a: NS, r: np.random.Generator) -> list[dict[str, Any]]:
    """Three consecutive steps of the library's update: each case starts from its moments."""
    param, m, v, cases = _normal(r, *a.shape), np.zeros(a.shape), np.zeros(a.shape), []
    for t in (1, 2, 3):
        grad = _normal(r, *a.shape) * (0.1 if t == 2 else 1.0)
        cases.append(dict(param=param, grad=grad, exp_avg=m, exp_avg_sq=v, step=t, lr=a.lr,
                          betas=a.betas, eps=a.eps, weight_decay=a.wd, features=dict(t=t)))
        param, m, v = (np.array(x) for x in ops.reference("adam_step")(
            param.copy(), grad, m.copy(), v.copy(), t, a.lr, a.betas, a.eps, a.wd))
    return cases


def _decay(a: NS) -> bool:
    return a.wd > 0


def _decayed(a: NS) -> np.ndarray:
    """The gradient with PyTorch's L2 weight decay added."""
    return a.grad + a.wd * a.param


def _update(message: str, when: Callable[[NS], bool] = lambda a: True, **mistake: Any) -> Mistake:
    """A wrong parameter update: `_adam` with one of its mistakes."""
    return Mistake("param update", message, lambda a: _adam(a, **mistake), when)


def _moment(a: NS, k: int, old: np.ndarray, new: np.ndarray, factor: bool = True) -> np.ndarray:
    beta = a.betas[k]
    return beta * old + ((1 - beta) if factor else 1) * new


_NO_WD = "weight_decay * param must be added to the gradient before the moments are updated"

ADAM_STEP = Exercise(
    "adam_step",
    "adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay) "
    "-> (param, exp_avg, exp_avg_sq)",
    "one Adam update (PyTorch's Adam: L2 weight decay added to the gradient)",
    "docs/learn/08-optimisers.md",
    (dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=0.0, shape=(3, 4)),
     dict(lr=0.1, betas=(0.8, 0.9), eps=1e-8, wd=0.01, shape=(5,)),
     dict(lr=0.01, betas=(0.9, 0.99), eps=1e-3, wd=0.0, shape=(2, 3, 2))),
    _draw_adam,
    lambda a: (f"param {a.shape}, step {a.step}, lr {a.lr:g}, betas {a.betas}, eps {a.eps:g}, "
               f"weight_decay {a.wd:g}"),
    {name: dict(axes=lambda a: tuple(f"axis {i}" for i in range(len(a.shape))), **spec)
     for name, spec in (("param update", dict(sizes=(("lr", lambda a: a.lr, "the learning rate"),))),
                        ("exp_avg", {}), ("exp_avg_sq", {}))},
    (_update("yours has no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t)",
             correct_m=False, correct_v=False),
     _update("the bias correction of m (1 - beta1**t) is missing", correct_m=False),
     _update("the bias correction of v (1 - beta2**t) is missing", correct_v=False),
     _update("yours uses step t + 1: the step passed in is already the number of this update (1 "
             "for the first); do not add 1 to it", next_step=True),
     _update("yours adds eps under the square root; Adam adds it to sqrt(v_hat)", eps_inside=True),
     _update("yours divides by v_hat + eps: the square root is missing, Adam divides by sqrt(v_hat)"
             " + eps", root=False),
     _update("yours moves along the gradient: the update subtracts lr * m_hat / (sqrt(v_hat) + "
             "eps)", sign=-1.0),
     _update("yours decays the weights directly (AdamW); Adam adds weight_decay * param to the "
             "gradient before the moments", _decay, decoupled=True),
     _update("weight_decay * param is not added to the gradient", _decay, wd=0.0),
     Mistake("exp_avg", "the factor (1 - beta1) on the new gradient is missing: m = beta1*m + "
             "(1 - beta1)*g", lambda a: _moment(a, 0, a.exp_avg, _decayed(a), False)),
     Mistake("exp_avg", _NO_WD, lambda a: _moment(a, 0, a.exp_avg, a.grad), _decay),
     Mistake("exp_avg_sq", "v averages the *squared* gradient: v = beta2*v + (1 - beta2)*g*g",
             lambda a: _moment(a, 1, a.exp_avg_sq, _decayed(a))),
     Mistake("exp_avg_sq", "the factor (1 - beta2) on the new squared gradient is missing",
             lambda a: _moment(a, 1, a.exp_avg_sq, _decayed(a) ** 2, False)),
     Mistake("exp_avg_sq", _NO_WD, lambda a: _moment(a, 1, a.exp_avg_sq, a.grad * a.grad), _decay)),
    conditions=(("weight_decay > 0", lambda c: c["wd"] > 0, "the weight decay term"),
                ("step > 1", lambda c: c["t"] > 1, "what carries over between steps (exp_avg, "
                 "exp_avg_sq) and the bias correction's t"),
                ("step 1", lambda c: c["t"] == 1, "the first step (t = 1, m and v start at zero)")),
    hints=("param, grad, exp_avg and exp_avg_sq all have param's shape; step is t (1 for the "
           "first update), betas is (beta1, beta2); return the three arrays updated",
           "add weight_decay * param to the gradient first; update the running averages of g and"
           " of g*g; correct their bias towards zero (they start at zero) by dividing by 1 - "
           "beta**t; step against m_hat / (sqrt(v_hat) + eps)",
           "g = grad + wd*param; m = b1*m + (1 - b1)*g; v = b2*v + (1 - b2)*g*g; m_hat = m/(1 - "
           "b1**t); v_hat = v/(1 - b2**t); param = param - lr*m_hat/(sqrt(v_hat) + eps)"),
    views={"param": ("param update", lambda value, a: value - a.param)}, check_inplace=False,
    checked_by="three steps of optim.Adam (an optimizer has no backward for gradcheck)")


EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    LINEAR, RELU, MSE, CROSS_ENTROPY, CONV2D_GRAD_WEIGHT, CONV2D_GRAD_INPUT, COL2IM, CONV_TRANSPOSE2D, SIGMOID,
    MAX_POOL2D, AVG_POOL2D, BATCH_NORM, UNET_SKIP, UNET_BACKWARD, ADAM_STEP]}
