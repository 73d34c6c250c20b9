"""The exercises: what each asks, where it is explained, and how it is graded.

Every exercise has a stub (``stubs/<name>.py``) with the function(s) to write, and a list of
configurations (shapes, strides, paddings, batch sizes, modes). For each configuration
:func:`Exercise.cases` draws float64 inputs from a fixed seed and builds a :class:`Case`:

* ``expected``: the tensors the library itself computes for those inputs (its layers run
  forward and backward, or its functions are called);
* ``run(fns)``: calls the learner's function(s) on copies of the same inputs;
* ``contexts``: what the diagnosis may know about each tensor (sizes that could be a missing
  factor, known wrong answers and what they mean, masks of shared pixels, ...);
* ``gradcheck(fns)``: a real layer (:mod:`scratchnet.learn.layers`) running the learner's
  function, and its inputs, for ``scratchnet.gradcheck``.
"""
from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..backend import init_rng
from . import layers as L
from .diagnose import Context

__all__ = ["Exercise", "Case", "EXERCISES", "CAPSTONE", "StructureError", "invoke",
           "keep_init_rng"]

Fns = dict[str, Callable[..., Any]]


class StructureError(Exception):
    """A learner's function returned the wrong kind of value (not a tuple, too few values)."""


@dataclass
class Case:
    """One configuration of one exercise: inputs, the library's answers, and how to run."""
    describe: str
    features: dict[str, Any]
    run: Callable[[Fns], tuple[dict[str, Any], list[str]]]
    expected: dict[str, np.ndarray]
    contexts: dict[str, Context] = field(default_factory=dict)
    gradcheck: Callable[[Fns], tuple[nn.Module, tuple[Any, ...]]] | None = None


@dataclass(frozen=True)
class Exercise:
    """An exercise: its stub, what it asks, where it is explained, and its grading."""
    name: str
    functions: tuple[str, ...]
    writes: str                  # the signature(s), for `list`
    asks: str                    # one sentence: what to write
    chapter: str                 # where it is explained
    library: str                 # the library code it replaces
    configs: tuple[dict[str, Any], ...]
    build: Callable[[dict[str, Any], np.random.Generator], list[Case]]
    conditions: tuple[tuple[str, Callable[[dict[str, Any]], bool], str], ...] = ()
    checked_by: str = "gradcheck"          # or how it is checked instead

    @property
    def file(self) -> str:
        return f"{self.name}.py"

    def cases(self) -> Iterator[Case]:
        """Every configuration's cases, from a seed fixed per exercise and configuration."""
        base = zlib.crc32(self.name.encode())
        for i, cfg in enumerate(self.configs):
            with keep_init_rng():
                yield from self.build(cfg, np.random.default_rng([base, i]))


@contextlib.contextmanager
def keep_init_rng() -> Iterator[None]:
    """Layers built for grading draw initial weights; leave ``manual_seed``'s stream as it was."""
    bit_generator = init_rng().bit_generator
    state = bit_generator.state
    try:
        yield
    finally:
        bit_generator.state = state


# --- calling the learner -------------------------------------------------------------------
def invoke(fn: Callable[..., Any], args: tuple[Any, ...], names: tuple[str, ...],
           outputs: tuple[str, ...], check_inplace: bool = True
           ) -> tuple[dict[str, Any], list[str]]:
    """Call ``fn(*args)`` on copies of the array arguments.

    Returns:
        ({output name: value}, [the names of arguments it changed in place]).

    Raises:
        StructureError: several outputs expected and not returned as a tuple of that length.
    """
    copies = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)
    value = fn(*copies)
    changed = []
    if check_inplace:
        changed = [n for n, a, c in zip(names, args, copies)
                   if isinstance(a, np.ndarray) and not np.array_equal(a, c, equal_nan=True)]
    fname = getattr(fn, "__name__", "the function")
    if len(outputs) == 1:
        return {outputs[0]: value}, changed
    if not isinstance(value, (tuple, list)) or len(value) != len(outputs):
        got = ("None (a missing `return`?)" if value is None
               else f"{len(value)} values" if isinstance(value, (tuple, list))
               else f"a single {type(value).__name__}")
        raise StructureError(f"{fname} returned {got}; expected a tuple "
                             f"({', '.join(outputs)})")
    return dict(zip(outputs, value)), changed


# --- inputs ----------------------------------------------------------------------------------
def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Values at least 4/size apart: no ties and no kink within gradcheck's step."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) + 0.5 * rng.random(shape)) * (4.0 / n) - 2.0


def _away_from_zero(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape)
    return np.sign(x) * (np.abs(x) + 0.05)


def _axes(ndim: int) -> tuple[str, ...]:
    return {1: ("N",), 2: ("N", "F"), 3: ("N", "C", "L"), 4: ("N", "C", "H", "W")}.get(
        ndim, tuple(f"axis {i}" for i in range(ndim)))


def _pair(p: tuple[int, int]) -> str:
    return f"{p[0]}" if p[0] == p[1] else f"({p[0]}, {p[1]})"


def _only_sample(g: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(g)
    out[n] = g[n]
    return out


def _sample_alternatives(N: int, fn: Callable[[np.ndarray], np.ndarray], gy: np.ndarray
                         ) -> list[tuple[str, np.ndarray]]:
    """Known wrong answers of a sum over the batch: one sample's contribution only."""
    if N < 2:
        return []
    return [("yours is the contribution of the last sample only: each sample's contribution "
             "must be added (+=), not assigned (=), or use one product over the whole batch",
             fn(_only_sample(gy, N - 1))),
            ("yours is the contribution of the first sample only: the loop over the batch "
             "stops early, or the other samples are not added", fn(_only_sample(gy, 0)))]


def _sizes_n(N: int) -> tuple[str, float, str]:
    return ("N", N, "the batch size")


# --- linear ----------------------------------------------------------------------------------
def _build_linear(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    N, I, O = cfg["N"], cfg["in"], cfg["out"]
    x, gy = _normal(rng, N, I), _normal(rng, N, O)
    weight, bias = _normal(rng, O, I), _normal(rng, O)
    lib = nn.Linear(I, O)
    lib.weight.data, lib.bias.data = weight.copy(), bias.copy()
    lib(x)
    dx = lib.backward(gy)
    expected = {"dx": dx, "dweight": lib.weight.grad.copy(), "dbias": lib.bias.grad.copy()}
    sizes = (_sizes_n(N),)
    alt_dx = []
    if I == O:
        alt_dx.append(("yours multiplies gy by weight transposed: weight is (out, in), so "
                       "dx = gy @ weight", gy @ weight.T))
    contexts = {
        "dx": Context(axes=("N", "in"), sizes=sizes, alternatives=tuple(alt_dx)),
        "dweight": Context(axes=("out", "in"), sizes=sizes, alternatives=tuple(
            _sample_alternatives(N, lambda g: g.T @ x, gy))),
        "dbias": Context(axes=("out",), sizes=sizes, alternatives=tuple(
            _sample_alternatives(N, lambda g: g.sum(axis=0), gy))),
    }

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["linear_backward"], (gy, x, weight), ("gy", "x", "weight"),
                      ("dx", "dweight", "dbias"))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        layer = L.Linear(I, O, backward_fn=fns["linear_backward"])
        layer.weight.data, layer.bias.data = weight.copy(), bias.copy()
        return layer, (x,)

    return [Case(f"x {x.shape}, weight {weight.shape}", dict(cfg), run, expected, contexts,
                 module)]


# --- relu, sigmoid -------------------------------------------------------------------------
def _build_relu(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    shape = cfg["shape"]
    x, gy = _away_from_zero(rng, *shape), _normal(rng, *shape)
    lib = nn.ReLU()
    lib(x)
    expected = {"dx": lib.backward(gy)}
    mask = (x > 0).astype("float64")
    alternatives = (
        ("yours is the mask [x > 0] itself: multiply gy by it", mask),
        ("yours is gy unchanged: the mask [x > 0] is missing", gy),
        ("yours is gy * x where x > 0: the derivative of max(x, 0) is 1 there (a step), not x",
         gy * x * mask),
        ("yours keeps gy where x <= 0: the mask is inverted", gy * (1 - mask)),
    )
    contexts = {"dx": Context(axes=_axes(len(shape)), alternatives=alternatives)}

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["relu_backward"], (gy, x), ("gy", "x"), ("dx",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return L.ReLU(backward_fn=fns["relu_backward"]), (x,)

    return [Case(f"x {x.shape}", {"shape": shape, "ndim": len(shape)}, run, expected, contexts,
                 module)]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return F.sigmoid(a)


def _build_sigmoid(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    shape = cfg["shape"]
    x, gy = 3 * _normal(rng, *shape), _normal(rng, *shape)
    lib = nn.Sigmoid()
    y = lib(x)
    expected = {"dx": lib.backward(gy)}
    sy = _sigmoid(y)
    alternatives = (
        ("yours applies the sigmoid to y again: the layer keeps its output y = sigmoid(x), "
         "so the derivative is y * (1 - y) as it stands", gy * sy * (1 - sy)),
        ("yours is y * (1 - y) alone: multiply it by gy, the gradient arriving from above",
         y * (1 - y)),
        ("the factor (1 - y) is missing: dy/dx = y * (1 - y)", gy * y),
        ("the factor y is missing: dy/dx = y * (1 - y)", gy * (1 - y)),
    )
    contexts = {"dx": Context(axes=_axes(len(shape)), alternatives=alternatives)}

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["sigmoid_backward"], (gy, np.array(y)), ("gy", "y"), ("dx",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return L.Sigmoid(backward_fn=fns["sigmoid_backward"]), (x,)

    return [Case(f"x {x.shape}", {"shape": shape}, run, expected, contexts, module)]


# --- mse -----------------------------------------------------------------------------------
def _build_mse(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    shape = cfg["shape"]
    pred, target = _normal(rng, *shape), _normal(rng, *shape)
    grad_output = float(0.5 + rng.random())
    lib = nn.MSELoss()
    lib(pred, target)
    expected = {"dpred": lib.backward(grad_output)}
    diff = pred - target
    M, N = diff.size, shape[0]
    sizes = (("M", M, "the number of entries of pred, over which the mean is taken"),
             ("N", N, "the batch size"))
    alternatives = [("yours divides by N, the batch size; the mean is over all M = "
                     f"{M} entries of pred, so divide by M", 2 * diff * grad_output / N)
                    ] if N > 1 else []
    alternatives.append(("yours leaves out grad_output (dL/dloss, here "
                         f"{grad_output:.4g}): multiply by it; it is 1.0 only at the end of "
                         "the chain", 2 * diff / M))
    contexts = {"dpred": Context(axes=_axes(len(shape)), sizes=sizes,
                                 alternatives=tuple(alternatives))}

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["mse_backward"], (diff, grad_output), ("diff", "grad_output"),
                      ("dpred",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return L.MSELoss(backward_fn=fns["mse_backward"]), (pred, target)

    return [Case(f"pred {pred.shape}, grad_output {grad_output:.4g}", {"shape": shape, "N": N},
                 run, expected, contexts, module)]


# --- convolution -----------------------------------------------------------------------------
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
    ("batch > 1", lambda c: c["N"] > 1,
     "look at the batch axis: col and argmax keep it last, and every sample contributes"),
    ("a non-square kernel", lambda c: c["k"][0] != c["k"][1],
     "KH and KW (or H and W) are mixed up somewhere"),
    ("different strides or paddings along H and W",
     lambda c: c["s"][0] != c["s"][1] or c["p"][0] != c["p"][1],
     "SH and SW, or PH and PW, are mixed up somewhere"),
)


def _describe_conv(c: dict[str, Any], x_shape: tuple[int, ...]) -> str:
    return (f"x {x_shape}, kernel {_pair(c['k'])}, stride {_pair(c['s'])}, "
            f"padding {_pair(c['p'])}")


def _conv_setup(cfg: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    N, C, OC, H, W = cfg["N"], cfg["C"], cfg["OC"], cfg["H"], cfg["W"]
    x, weight, bias = _normal(rng, N, C, H, W), _normal(rng, OC, C, *cfg["k"]), _normal(rng, OC)
    y, col = F.conv2d(x, weight, bias, cfg["s"], cfg["p"])
    gy = _normal(rng, *y.shape)
    return dict(x=x, weight=weight, bias=bias, y=y, col=np.ascontiguousarray(col), gy=gy,
                size=(H, W))


def _shared_pixels(col_shape: tuple[int, ...], stride: tuple[int, int],
                   padding: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Pixels covered by more than one window (where contributions must add up)."""
    return np.asarray(F.col2im(np.ones(col_shape), stride, padding, size)) > 1


_NO_STRIDE = ("yours places the windows as if the stride were 1: window (oh, ow) starts at row "
              "oh*SH - PH and column ow*SW - PW")
_SHARED = ("yours is wrong only on pixels covered by more than one window: contributions from "
           "overlapping windows must be added (+=), not assigned (=)")


def _image_context(cfg: dict[str, Any], col_shape: tuple[int, ...], N: int,
                   alternatives: list[tuple[str, np.ndarray]]) -> Context:
    shared = _shared_pixels(col_shape, cfg["s"], cfg["p"], (cfg["H"], cfg["W"]))
    return Context(axes=("N", "C", "H", "W"), sizes=(_sizes_n(N),), spatial=(2, 3),
                   padding=cfg["p"], masks=((_SHARED, shared),),
                   alternatives=tuple(alternatives))


def _conv_module(cfg: dict[str, Any], s: dict[str, Any], **fns: Any
                 ) -> tuple[nn.Module, tuple[Any, ...]]:
    layer = L.Conv2d(cfg["C"], cfg["OC"], cfg["k"], cfg["s"], cfg["p"], **fns)
    layer.weight.data, layer.bias.data = s["weight"].copy(), s["bias"].copy()
    return layer, (s["x"],)


def _build_conv_grad_weight(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    s = _conv_setup(cfg, rng)
    expected = {"dweight": np.asarray(F.conv2d_grad_weight(s["gy"], s["col"]))}
    OH, OW = s["gy"].shape[2:]
    context = Context(
        axes=("OC", "C", "KH", "KW"), flip_axes=(2, 3),
        sizes=(_sizes_n(cfg["N"]), ("OH*OW", OH * OW, "the number of output positions")),
        alternatives=tuple(_sample_alternatives(
            cfg["N"], lambda g: np.asarray(F.conv2d_grad_weight(g, s["col"])), s["gy"])))

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["conv2d_grad_weight"], (s["gy"], s["col"]), ("gy", "col"),
                      ("dweight",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return _conv_module(cfg, s, grad_weight=fns["conv2d_grad_weight"])

    return [Case(_describe_conv(cfg, s["x"].shape), dict(cfg), run, expected,
                 {"dweight": context}, module)]


def _build_conv_grad_input(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    s = _conv_setup(cfg, rng)
    gy, weight = s["gy"], s["weight"]
    args = (s["size"], cfg["s"], cfg["p"])
    expected = {"dx": np.asarray(F.conv2d_grad_input(gy, weight, *args))}
    alternatives = [("yours equals the right answer computed with the kernel rotated by 180 "
                     "degrees: written as a full correlation of gy, dx needs the kernel "
                     "rotated; yours rotates it where it should not, or not where it should",
                     np.asarray(F.conv2d_grad_input(gy, weight[:, :, ::-1, ::-1].copy(), *args)))]
    if max(cfg["s"]) > 1:
        alternatives.append((_NO_STRIDE, np.asarray(F.conv2d_grad_input(gy, weight, s["size"],
                                                                         (1, 1), cfg["p"]))))
    if cfg["C"] == cfg["OC"]:
        alternatives.append(("yours uses weight with its OC and C axes exchanged: dx sums over "
                             "the output channels OC, weight is (OC, C, KH, KW)",
                             np.asarray(F.conv2d_grad_input(
                                 gy, weight.transpose(1, 0, 2, 3).copy(), *args))))
    context = _image_context(cfg, s["col"].shape, cfg["N"], alternatives)

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["conv2d_grad_input"], (gy, weight, *args),
                      ("gy", "weight", "size", "stride", "padding"), ("dx",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return _conv_module(cfg, s, grad_input=fns["conv2d_grad_input"])

    return [Case(_describe_conv(cfg, s["x"].shape), dict(cfg), run, expected, {"dx": context},
                 module)]


def _build_col2im(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    s = _conv_setup(cfg, rng)
    col = _normal(rng, *s["col"].shape)
    args = (cfg["s"], cfg["p"], s["size"])
    expected = {"x": np.asarray(F.col2im(col, *args))}
    alternatives = ([(_NO_STRIDE, np.asarray(F.col2im(col, (1, 1), cfg["p"], s["size"])))]
                    if max(cfg["s"]) > 1 else [])
    context = _image_context(cfg, col.shape, cfg["N"], alternatives)

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["col2im"], (col, *args), ("col", "stride", "padding", "size"), ("x",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return _conv_module(cfg, s, grad_input=L.conv2d_grad_input_with(fns["col2im"]))

    return [Case(f"col {col.shape}, stride {_pair(cfg['s'])}, padding {_pair(cfg['p'])}, "
                 f"size {s['size']}", dict(cfg), run, expected, {"x": context}, module)]


# --- transposed convolution ----------------------------------------------------------------
def _build_conv_transpose(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    N, Ci, Co, H, W = cfg["N"], cfg["C_in"], cfg["C_out"], cfg["H"], cfg["W"]
    k, st, p, op = cfg["k"], cfg["s"], cfg["p"], cfg["op"]
    x, weight, bias = _normal(rng, N, Ci, H, W), _normal(rng, Ci, Co, *k), _normal(rng, Co)
    lib = nn.ConvTranspose2d(Ci, Co, k, st, p, op)
    lib.weight.data, lib.bias.data = weight.copy(), bias.copy()
    y = lib(x)
    gy = _normal(rng, *y.shape)
    dx = lib.backward(gy)
    expected = {"dx": np.asarray(dx), "dweight": lib.weight.grad.copy(),
                "dbias": lib.bias.grad.copy()}
    flipped = np.asarray(F.conv2d(gy, weight[:, :, ::-1, ::-1].copy(), None, st, p)[0])
    sizes = (_sizes_n(N),)

    def grad_weight(g: np.ndarray) -> np.ndarray:
        return np.asarray(F.conv2d_grad_weight(x, F.im2col(g, k, st, p)))

    contexts = {
        "dx": Context(axes=("N", "C_in", "H", "W"), sizes=sizes, spatial=(2, 3), alternatives=(
            ("yours equals the right answer computed with the kernel rotated by 180 degrees: "
             "dx is an ordinary convolution (a correlation, as conv2d computes it) of gy with "
             "the kernel as it is", flipped),)),
        "dweight": Context(axes=("C_in", "C_out", "KH", "KW"), sizes=sizes, flip_axes=(2, 3),
                           alternatives=tuple(_sample_alternatives(N, grad_weight, gy))),
        "dbias": Context(axes=("C_out",), sizes=sizes, alternatives=tuple(
            _sample_alternatives(N, lambda g: g.sum(axis=(0, 2, 3)), gy))),
    }

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["conv_transpose2d_backward"], (gy, x, weight, st, p),
                      ("gy", "x", "weight", "stride", "padding"), ("dx", "dweight", "dbias"))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        layer = L.ConvTranspose2d(Ci, Co, k, st, p, op,
                                  backward_fn=fns["conv_transpose2d_backward"])
        layer.weight.data, layer.bias.data = weight.copy(), bias.copy()
        return layer, (x,)

    describe = (f"x {x.shape}, weight {weight.shape}, stride {_pair(st)}, padding {_pair(p)}, "
                f"output_padding {_pair(op)}")
    return [Case(describe, dict(cfg), run, expected, contexts, module)]


# --- pooling ---------------------------------------------------------------------------------
_POOL_CONFIGS = (
    dict(N=2, C=2, H=4, W=4, k=(2, 2), s=(2, 2), p=(0, 0)),
    dict(N=2, C=2, H=5, W=5, k=(3, 3), s=(2, 2), p=(1, 1)),
    dict(N=1, C=3, H=4, W=6, k=(2, 3), s=(1, 2), p=(1, 1)),
    dict(N=3, C=1, H=6, W=5, k=(3, 2), s=(3, 1), p=(0, 0)),
)
_POOL_CONDITIONS = (
    ("overlapping windows (stride < kernel)", lambda c: c["s"][0] < c["k"][0] or
     c["s"][1] < c["k"][1], "a pixel in several windows must receive the sum of their "
     "gradients"),
    ("padding > 0", lambda c: max(c["p"]) > 0,
     "look at the padding: window positions are offset by it"),
    ("batch > 1", lambda c: c["N"] > 1, "look at the batch axis (argmax keeps it last)"),
    ("a non-square kernel", lambda c: c["k"][0] != c["k"][1],
     "KH and KW are mixed up somewhere (argmax counts i*KW + j)"),
)


def _scatter(gy: np.ndarray, k_index: np.ndarray, kernel: tuple[int, int],
             stride: tuple[int, int], padding: tuple[int, int], size: tuple[int, int],
             decode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """gy[n, c, oh, ow] added onto the window entry decode(k_index) names: an alternative."""
    N, C, OH, OW = gy.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    out = np.zeros((N, C, H + 2 * PH + kernel[0], W + 2 * PW + kernel[1]))
    i, j = decode(k_index)                                         # (C, OH, OW, N) each
    c, oh, ow, n = np.indices(k_index.shape)
    np.add.at(out, (n, c, oh * SH + i, ow * SW + j), gy[n, c, oh, ow])
    return out[:, :, PH:PH + H, PW:PW + W]


def _pool_setup(cfg: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    x = _distinct(rng, cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    return dict(x=x, size=(cfg["H"], cfg["W"]))


def _describe_pool(cfg: dict[str, Any], x: np.ndarray) -> str:
    return (f"x {x.shape}, kernel {_pair(cfg['k'])}, stride {_pair(cfg['s'])}, "
            f"padding {_pair(cfg['p'])}")


def _build_max_pool(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    s = _pool_setup(cfg, rng)
    k, st, p, size = cfg["k"], cfg["s"], cfg["p"], s["size"]
    y, argmax = F.max_pool2d(s["x"], k, st, p)
    argmax = np.ascontiguousarray(argmax)
    gy = _normal(rng, *y.shape)
    expected = {"dx": np.asarray(F.max_pool2d_backward(gy, argmax, k, st, p, size))}
    counts = np.asarray(F.max_pool2d_backward(np.ones_like(gy), argmax, k, st, p, size))
    KH, KW = k
    alternatives = [
        ("yours decodes argmax column by column (i = k % KH, j = k // KH); it counts row by "
         "row within the window: i = k // KW, j = k % KW",
         _scatter(gy, argmax, k, st, p, size, lambda a: (a % KH, a // KH))),
        ("yours sends each gradient to every pixel of its window; max pooling sends it only "
         "to the window's maximum (the entry argmax names)",
         np.asarray(F.avg_pool2d_backward(gy, k, st, p, size)) * (KH * KW)),
        (_NO_STRIDE, _scatter(gy, argmax, k, (1, 1), p, size, lambda a: (a // KW, a % KW))
         if max(st) > 1 else np.zeros(0)),
        ("yours ignores the padding: the window at (oh, ow) starts at row oh*SH - PH and "
         "column ow*SW - PW of x",
         _scatter(gy, argmax, k, st, (0, 0), size, lambda a: (a // KW, a % KW))
         if any(p) else np.zeros(0)),
    ]
    context = Context(axes=("N", "C", "H", "W"), spatial=(2, 3), padding=p,
                      masks=(("yours is wrong only on pixels that are the maximum of more than "
                              "one window: their gradients must be added (+=), not assigned (=)",
                              counts > 1),),
                      alternatives=tuple(alternatives))

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["max_pool2d_backward"], (gy, argmax, k, st, p, size),
                      ("gy", "argmax", "kernel", "stride", "padding", "size"), ("dx",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return L.MaxPool2d(k, st, p, backward_fn=fns["max_pool2d_backward"]), (s["x"],)

    return [Case(_describe_pool(cfg, s["x"]), dict(cfg), run, expected, {"dx": context}, module)]


def _build_avg_pool(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    s = _pool_setup(cfg, rng)
    k, st, p, size = cfg["k"], cfg["s"], cfg["p"], s["size"]
    y = F.avg_pool2d(s["x"], k, st, p)
    gy = _normal(rng, *y.shape)
    expected = {"dx": np.asarray(F.avg_pool2d_backward(gy, k, st, p, size))}
    KH, KW = k
    col_shape = (cfg["C"], KH, KW, *gy.shape[2:], cfg["N"])
    alternatives = []
    if any(p):
        real = np.asarray(F.avg_pool2d(np.ones_like(s["x"]), k, st, p)) * (KH * KW)
        alternatives.append((
            "yours divides by the number of real (unpadded) pixels in each window; here padded "
            "zeros count as pixels too (count_include_pad), so every window divides by KH*KW",
            np.asarray(F.avg_pool2d_backward(gy * (KH * KW) / real, k, st, p, size))))
    context = Context(axes=("N", "C", "H", "W"), spatial=(2, 3), padding=p,
                      sizes=(("KH*KW", KH * KW, "the number of pixels in a window"),),
                      masks=((_SHARED, _shared_pixels(col_shape, st, p, size)),),
                      alternatives=tuple(alternatives))

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        return invoke(fns["avg_pool2d_backward"], (gy, k, st, p, size),
                      ("gy", "kernel", "stride", "padding", "size"), ("dx",))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        return L.AvgPool2d(k, st, p, backward_fn=fns["avg_pool2d_backward"]), (s["x"],)

    return [Case(_describe_pool(cfg, s["x"]), dict(cfg), run, expected, {"dx": context}, module)]


# --- batch norm ----------------------------------------------------------------------------
def _build_batch_norm(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    N, C, H, W = cfg["N"], cfg["C"], cfg["H"], cfg["W"]
    train, affine, eps = cfg["mode"] == "train", cfg["affine"], 1e-5
    x = 2 * _normal(rng, N, C, H, W) + 1
    weight = 0.5 + rng.random(C) if affine else None
    bias = _normal(rng, C) if affine else None
    running_mean, running_var = 0.5 * _normal(rng, C), 0.5 + rng.random(C)
    if train:
        y, xhat_lib, inv_std_lib, mean, _ = F.batch_norm_forward(x, weight, bias, eps)
    else:
        y, xhat_lib, inv_std_lib, mean, _ = F.batch_norm_forward(x, weight, bias, eps,
                                                                 running_mean, running_var)
    gy = _normal(rng, *y.shape)
    dx, dw, db = F.batch_norm_backward(gy, xhat_lib, inv_std_lib, weight, train)
    inv_std = np.asarray(inv_std_lib).reshape(C)
    xhat = (x - np.asarray(mean).reshape(1, C, 1, 1)) * inv_std.reshape(1, C, 1, 1)
    expected = {"dx": np.asarray(dx)}
    if affine:
        expected.update(dweight=np.asarray(dw), dbias=np.asarray(db))
    M = N * H * W
    w4 = (weight if affine else np.ones(C)).reshape(1, C, 1, 1)
    scale = w4 * inv_std.reshape(1, C, 1, 1)
    sum_g = gy.sum(axis=(0, 2, 3)).reshape(1, C, 1, 1)
    sum_gx = (gy * xhat).sum(axis=(0, 2, 3)).reshape(1, C, 1, 1)

    def through_stats(m: float) -> np.ndarray:
        return scale * (gy - sum_g / m - xhat * sum_gx / m)

    if train:
        alternatives = [
            ("yours treats the mean and variance as constants: in training mode they depend on "
             "every x of the channel, which adds the terms -dbias/M and -xhat * dweight/M "
             "(before the factor weight * inv_std)", gy * scale),
            ("the term through the mean (-dbias/M, i.e. -sum(gy)/M) is missing",
             scale * (gy - xhat * sum_gx / M)),
            ("the term through the variance (-xhat * sum(gy * xhat)/M) is missing",
             scale * (gy - sum_g / M)),
            (f"yours divides by N = {N}; M = N*H*W = {M} is the number of values per channel",
             through_stats(N) if N != M else np.zeros(0)),
            (f"yours divides by H*W = {H * W}; M = N*H*W = {M} is the number of values per "
             "channel", through_stats(H * W) if H * W != M else np.zeros(0)),
        ]
    else:
        alternatives = [("batch_stats is False (eval mode): the statistics are constants, so "
                         "dx = gy * weight * inv_std, without the terms through the mean and "
                         "variance", through_stats(M))]
    sizes = (("M", M, "the number of values per channel, N*H*W"), _sizes_n(N))
    factors = (("inv_std", 1, inv_std),) + ((("weight", 1, weight),) if affine else ())
    contexts = {
        "dx": Context(axes=("N", "C", "H", "W"), sizes=sizes, factors=factors,
                      alternatives=tuple(alternatives)),
        "dweight": Context(axes=("C",), sizes=sizes, alternatives=(
            ("yours is dbias: dweight = sum of gy * xhat over N, H and W",
             sum_g.reshape(C)),)),
        "dbias": Context(axes=("C",), sizes=sizes, alternatives=(
            ("yours is dweight: dbias = sum of gy over N, H and W", sum_gx.reshape(C)),)),
    }

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        w = None if weight is None else weight.copy()
        return invoke(fns["batch_norm_backward"], (gy, xhat, inv_std, w, train),
                      ("gy", "xhat", "inv_std", "weight", "batch_stats"),
                      ("dx", "dweight", "dbias"))

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        layer = L.BatchNorm2d(C, eps=eps, affine=affine, backward_fn=fns["batch_norm_backward"])
        layer.to(dtype="float64")
        if affine:
            layer.weight.data, layer.bias.data = weight.copy(), bias.copy()
        layer.running_mean, layer.running_var = running_mean.copy(), running_var.copy()
        if not train:
            layer.eval()
        return layer, (x,)

    describe = (f"x {x.shape}, {'training' if train else 'eval'} mode (batch_stats={train})"
                + ("" if affine else ", no affine (weight None)"))
    return [Case(describe, dict(cfg), run, expected, contexts, module)]


# --- skip connection -----------------------------------------------------------------------
def _build_unet_skip(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    N, up, skip, H, W = cfg["N"], cfg["up"], cfg["skip"], cfg["H"], cfg["W"]
    grad = _normal(rng, N, up + skip, H, W)
    grad_pool, grad_skip = _normal(rng, N, skip, H, W), _normal(rng, N, skip, H, W)
    expected = {"grad_up": grad[:, :up], "grad_skip": grad[:, up:],
                "grad": grad_pool + grad_skip}
    axes = ("N", "C", "H", "W")
    same_size = (up == skip)
    split_hint = ("split after up_channels: cat(up, skip) puts up's channels first, so "
                  "grad_up = grad[:, :up_channels] and grad_skip = grad[:, up_channels:]")
    contexts = {
        "grad_up": Context(
            axes=axes, shapes=(((N, skip, H, W), f"it has the skip's {skip} channels: "
                                + split_hint),) if not same_size else (),
            alternatives=(("yours is the skip's part: " + split_hint, grad[:, skip:]),)),
        "grad_skip": Context(
            axes=axes, shapes=(((N, up, H, W), f"it has up's {up} channels: " + split_hint),)
            if not same_size else (),
            alternatives=(("yours is the up-sampling path's part: " + split_hint,
                           grad[:, :skip]),)),
        "grad": Context(axes=axes, alternatives=(
            ("yours is grad_pool alone: the feature map fed two consumers, so its gradient is "
             "the sum of both; add grad_skip", grad_pool),
            ("yours is grad_skip alone: the feature map fed two consumers, so its gradient is "
             "the sum of both; add grad_pool", grad_skip),
            ("yours subtracts one gradient from the other: they add up", grad_pool - grad_skip),
            ("yours subtracts one gradient from the other: they add up", grad_skip - grad_pool),
        )),
    }

    def run(fns: Fns) -> tuple[dict[str, Any], list[str]]:
        parts, changed = invoke(fns["skip_split"], (grad, up), ("grad", "up_channels"),
                                ("grad_up", "grad_skip"))
        total, changed2 = invoke(fns["skip_sum"], (grad_pool, grad_skip),
                                 ("grad_pool", "grad_skip"), ("grad",))
        return {**parts, **total}, changed + changed2

    block_in, width, block_shape = cfg["block"]
    x = _normal(rng, *block_shape)
    weights = [0.5 * _normal(rng, *p.shape) for p in L.SkipBlock(block_in, width).parameters()]

    def module(fns: Fns) -> tuple[nn.Module, tuple[Any, ...]]:
        block = L.SkipBlock(block_in, width, split=fns["skip_split"], total=fns["skip_sum"])
        for p, w in zip(block.parameters(), weights):
            p.data = w.copy()
        return block, (x,)

    describe = f"grad {grad.shape} split after {up} channels; SkipBlock on x {x.shape}"
    return [Case(describe, dict(cfg), run, expected, contexts, module)]


# --- adam ----------------------------------------------------------------------------------
def _adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float,
                 betas: tuple[float, float], eps: float, wd: float, *, correct_m: bool = True,
                 correct_v: bool = True, eps_inside: bool = False, decoupled: bool = False
                 ) -> np.ndarray:
    """One Adam update in float64, with switches for the usual mistakes (the alternatives)."""
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1 ** t) if correct_m else m
    v_hat = v / (1 - b2 ** t) if correct_v else v
    denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    return p - lr * m_hat / denom


def _build_adam(cfg: dict[str, Any], rng: np.random.Generator) -> list[Case]:
    lr, betas, eps, wd, shape = cfg["lr"], cfg["betas"], cfg["eps"], cfg["wd"], cfg["shape"]
    b1, b2 = betas
    param = nn.Parameter(_normal(rng, *shape))
    opt = optim.Adam([param], lr=lr, betas=betas, eps=eps, weight_decay=wd)
    cases = []
    m, v = np.zeros(shape), np.zeros(shape)
    for t in (1, 2, 3):
        g = _normal(rng, *shape) * (0.1 if t == 2 else 1.0)
        p = param.data.copy()
        param.grad[...] = g
        opt.step()
        state = opt.state_dict()["state"][0]
        new_m, new_v = np.array(state["exp_avg"]), np.array(state["exp_avg_sq"])
        expected = {"param update": param.data - p, "exp_avg": new_m, "exp_avg_sq": new_v}
        ge = g + wd * p

        def alt(**kw: Any) -> np.ndarray:
            return _adam_update(p, g, m, v, kw.pop("t", t), lr, betas, eps, wd, **kw) - p

        alternatives = [
            ("yours has no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t)",
             alt(correct_m=False, correct_v=False)),
            ("the bias correction of m (1 - beta1**t) is missing", alt(correct_m=False)),
            ("the bias correction of v (1 - beta2**t) is missing", alt(correct_v=False)),
            ("yours uses step t + 1: the step passed in is already the number of this update "
             "(1 for the first); do not add 1 to it", alt(t=t + 1)),
            ("yours adds eps under the square root; Adam adds it to sqrt(v_hat)",
             alt(eps_inside=True)),
            ("yours moves along the gradient: the update subtracts lr * m_hat / "
             "(sqrt(v_hat) + eps)", -(_adam_update(p, g, m, v, t, lr, betas, eps, wd) - p)),
        ]
        exp_avg_alt = [("the factor (1 - beta1) on the new gradient is missing: "
                        "m = beta1*m + (1 - beta1)*g", b1 * m + ge)]
        exp_avg_sq_alt = [("v averages the *squared* gradient: v = beta2*v + (1 - beta2)*g*g",
                           b2 * v + (1 - b2) * ge),
                          ("the factor (1 - beta2) on the new squared gradient is missing",
                           b2 * v + ge * ge)]
        if wd:
            alternatives += [
                ("yours decays the weights directly (AdamW); Adam adds weight_decay * param to "
                 "the gradient before the moments", alt(decoupled=True)),
                ("weight_decay * param is not added to the gradient",
                 _adam_update(p, g, m, v, t, lr, betas, eps, 0.0) - p)]
            no_wd = ("weight_decay * param must be added to the gradient before the moments "
                     "are updated")
            exp_avg_alt.append((no_wd, b1 * m + (1 - b1) * g))
            exp_avg_sq_alt.append((no_wd, b2 * v + (1 - b2) * g * g))
        sizes = (("lr", lr, "the learning rate"),)
        contexts = {"param update": Context(axes=_axes(len(shape)), sizes=sizes,
                                            alternatives=tuple(alternatives)),
                    "exp_avg": Context(axes=_axes(len(shape)), alternatives=tuple(exp_avg_alt)),
                    "exp_avg_sq": Context(axes=_axes(len(shape)),
                                          alternatives=tuple(exp_avg_sq_alt))}
        before = (p, g, m.copy(), v.copy(), t)

        def run(fns: Fns, before: tuple[Any, ...] = before,
                p_before: np.ndarray = p) -> tuple[dict[str, Any], list[str]]:
            p0, g0, m0, v0, step = before
            out, _ = invoke(fns["adam_step"], (p0, g0, m0, v0, step, lr, betas, eps, wd),
                            ("param", "grad", "exp_avg", "exp_avg_sq", "step", "lr", "betas",
                             "eps", "weight_decay"), ("param", "exp_avg", "exp_avg_sq"),
                            check_inplace=False)
            new_param = out.pop("param")
            arr = np.asarray(new_param, dtype="float64") if hasattr(new_param, "shape") else None
            out["param update"] = (arr - p_before if arr is not None and arr.shape == p_before.shape
                                   else new_param)
            return out, []

        describe = (f"param {shape}, step {t}, lr {lr:g}, betas {betas}, eps {eps:g}, "
                    f"weight_decay {wd:g}")
        cases.append(Case(describe, {**cfg, "t": t}, run, expected, contexts, None))
        m, v = new_m, new_v
    return cases


# --- the table -----------------------------------------------------------------------------
_CONV_LIB = "scratchnet/functional.py"
EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise(
        "linear", ("linear_backward",), "linear_backward(gy, x, weight) -> (dx, dweight, dbias)",
        "the backward pass of a fully connected layer y = x @ weight.T + bias",
        "docs/learn/01-chain.md", "scratchnet/nn/linear.py: Linear.backward",
        (dict(N=3, **{"in": 4, "out": 5}), dict(N=1, **{"in": 3, "out": 2}),
         dict(N=4, **{"in": 3, "out": 3}), dict(N=2, **{"in": 5, "out": 5})),
        _build_linear,
        (("batch > 1", lambda c: c["N"] > 1,
          "the sum over the batch: every sample adds its own contribution"),
         ("in == out", lambda c: c["in"] == c["out"],
          "a transpose that only goes unnoticed in shape when the weight is square"))),
    Exercise(
        "relu", ("relu_backward",), "relu_backward(gy, x) -> dx",
        "the backward pass of ReLU, y = max(x, 0)",
        "docs/learn/01-chain.md, docs/learn/05-elementwise-and-pooling.md",
        "scratchnet/nn/activation.py: ReLU.backward",
        (dict(shape=(2, 3, 4, 5)), dict(shape=(5, 7)), dict(shape=(1, 2, 3, 3))),
        _build_relu),
    Exercise(
        "mse", ("mse_backward",), "mse_backward(diff, grad_output) -> dpred",
        "the gradient of the mean squared error mean((pred - target)**2) for pred",
        "docs/learn/01-chain.md", "scratchnet/nn/loss.py: MSELoss.backward",
        (dict(shape=(2, 3, 4, 4)), dict(shape=(3, 7)), dict(shape=(1, 1, 5, 5))),
        _build_mse),
    Exercise(
        "conv2d_grad_weight", ("conv2d_grad_weight",), "conv2d_grad_weight(gy, col) -> dweight",
        "the weight gradient of a convolution from its im2col matrix",
        "docs/learn/03-convolution.md", f"{_CONV_LIB}: conv2d_grad_weight",
        _CONV_CONFIGS, _build_conv_grad_weight, _CONV_CONDITIONS),
    Exercise(
        "conv2d_grad_input", ("conv2d_grad_input",),
        "conv2d_grad_input(gy, weight, size, stride, padding) -> dx",
        "the input gradient of a convolution",
        "docs/learn/03-convolution.md", f"{_CONV_LIB}: conv2d_grad_input",
        _CONV_CONFIGS, _build_conv_grad_input, _CONV_CONDITIONS),
    Exercise(
        "col2im", ("col2im",), "col2im(col, stride, padding, size) -> x",
        "the adjoint of im2col: add every column entry back onto its pixel",
        "docs/learn/03-convolution.md", f"{_CONV_LIB}: col2im",
        _CONV_CONFIGS, _build_col2im, _CONV_CONDITIONS),
    Exercise(
        "conv_transpose2d", ("conv_transpose2d_backward",),
        "conv_transpose2d_backward(gy, x, weight, stride, padding) -> (dx, dweight, dbias)",
        "the backward pass of a transposed convolution",
        "docs/learn/04-transposed-convolution.md",
        "scratchnet/nn/conv.py: ConvTranspose2d.backward",
        (dict(N=2, C_in=3, C_out=2, H=3, W=3, k=(3, 3), s=(1, 1), p=(0, 0), op=(0, 0)),
         dict(N=2, C_in=2, C_out=3, H=3, W=4, k=(3, 3), s=(2, 2), p=(1, 1), op=(1, 1)),
         dict(N=1, C_in=2, C_out=2, H=4, W=3, k=(2, 2), s=(2, 2), p=(0, 0), op=(0, 0)),
         dict(N=2, C_in=3, C_out=2, H=3, W=3, k=(3, 2), s=(2, 1), p=(1, 0), op=(1, 0))),
        _build_conv_transpose, _CONV_CONDITIONS),
    Exercise(
        "sigmoid", ("sigmoid_backward",), "sigmoid_backward(gy, y) -> dx",
        "the backward pass of the sigmoid, from its output y",
        "docs/learn/05-elementwise-and-pooling.md", "scratchnet/nn/activation.py: Sigmoid.backward",
        (dict(shape=(2, 3, 4, 4)), dict(shape=(6, 5)), dict(shape=(1, 1, 5, 5))),
        _build_sigmoid),
    Exercise(
        "max_pool2d", ("max_pool2d_backward",),
        "max_pool2d_backward(gy, argmax, kernel, stride, padding, size) -> dx",
        "the backward pass of max pooling: each gradient to its window's maximum",
        "docs/learn/05-elementwise-and-pooling.md", f"{_CONV_LIB}: max_pool2d_backward",
        _POOL_CONFIGS, _build_max_pool, _POOL_CONDITIONS),
    Exercise(
        "avg_pool2d", ("avg_pool2d_backward",),
        "avg_pool2d_backward(gy, kernel, stride, padding, size) -> dx",
        "the backward pass of average pooling: each gradient spread over its window",
        "docs/learn/05-elementwise-and-pooling.md", f"{_CONV_LIB}: avg_pool2d_backward",
        _POOL_CONFIGS, _build_avg_pool, _POOL_CONDITIONS),
    Exercise(
        "batch_norm", ("batch_norm_backward",),
        "batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True) -> (dx, dweight, dbias)",
        "the backward pass of batch normalisation, through the batch statistics",
        "docs/learn/06-batch-norm.md", f"{_CONV_LIB}: batch_norm_backward",
        (dict(N=4, C=3, H=2, W=3, mode="train", affine=True),
         dict(N=1, C=2, H=3, W=3, mode="train", affine=True),
         dict(N=3, C=2, H=2, W=2, mode="eval", affine=True),
         dict(N=3, C=2, H=3, W=2, mode="train", affine=False)),
        _build_batch_norm,
        (("eval mode", lambda c: c["mode"] == "eval",
          "the batch_stats=False branch: fixed statistics"),
         ("training mode", lambda c: c["mode"] == "train",
          "the gradient through the batch mean and variance"),
         ("batch > 1", lambda c: c["N"] > 1,
          "the sums over N (and H, W): M = N*H*W values per channel"),
         ("no affine transform (weight None)", lambda c: not c["affine"],
          "weight None means a factor 1"),
         ("an affine transform (weight given)", lambda c: c["affine"],
          "the factor weight (per channel) in dx"))),
    Exercise(
        "unet_skip", ("skip_split", "skip_sum"),
        "skip_split(grad, up_channels) -> (grad_up, grad_skip); "
        "skip_sum(grad_pool, grad_skip) -> grad",
        "the two rules of a skip connection: split the gradient at a concatenation, sum it "
        "where a feature map fed two consumers",
        "docs/learn/07-skip-connections.md", "scratchnet/models.py: UNet.backward",
        (dict(N=2, up=3, skip=2, H=4, W=4, block=(1, 2, (2, 1, 4, 4))),
         dict(N=1, up=2, skip=2, H=2, W=3, block=(2, 1, (1, 2, 4, 6))),
         dict(N=2, up=1, skip=3, H=3, W=2, block=(1, 2, (2, 1, 6, 4)))),
        _build_unet_skip),
    Exercise(
        "adam_step", ("adam_step",),
        "adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay) "
        "-> (param, exp_avg, exp_avg_sq)",
        "one Adam update (PyTorch's Adam: L2 weight decay added to the gradient)",
        "docs/learn/08-optimisers.md", "scratchnet/optim.py: Adam",
        (dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=0.0, shape=(3, 4)),
         dict(lr=0.1, betas=(0.8, 0.9), eps=1e-8, wd=0.01, shape=(5,)),
         dict(lr=0.01, betas=(0.9, 0.99), eps=1e-3, wd=0.0, shape=(2, 3, 2))),
        _build_adam,
        (("weight_decay > 0", lambda c: c["wd"] > 0, "the weight decay term"),
         ("step > 1", lambda c: c["t"] > 1,
          "what carries over between steps (exp_avg, exp_avg_sq) and the bias correction's t"),
         ("step 1", lambda c: c["t"] == 1, "the first step (t = 1, m and v start at zero)")),
        checked_by="three steps of optim.Adam (an optimizer has no backward for gradcheck)"),
]}

# The exercises the capstone (`train`) runs: everything the reference autoencoder needs.
CAPSTONE = ("relu", "mse", "conv2d_grad_weight", "conv2d_grad_input", "conv_transpose2d",
            "sigmoid", "adam_step")
