"""Mutation testing of the gradient checker: plant wrong backward passes, gradcheck must fail.

A *mutant* is the library with one deliberate mistake in a backward pass, planted at run time
(no library file is edited): either an op that a layer calls (``conv2d_grad_weight``,
``col2im``, ``batch_norm_backward`` ...) is replaced or wrapped with ``scratchnet.override``,
so the mistake runs inside the library's own layers, or a layer class's ``backward`` is
replaced with pytest's ``monkeypatch`` by a copy of the library's own code with the mistake
written in, or wrapped (the layers' ``=`` for ``+=``: see `assigning`). gradcheck must
*catch* (fail on) every mutant, except the *equivalent* ones: mistakes that do not change the
gradient, either at all or on the inputs a finite-difference check can use. Those are listed
in EQUIVALENT with the reason, and asserted to pass, so that the list stays honest.

Every mutant runs on a CASE (a small module and inputs chosen so that the mistake shows:
asymmetric shapes, non-zero padding, overlapping windows, strides > 1, distinct values for max
pooling, batch-norm weights != 1 and variances != 1). Each case passes gradcheck unmutated;
every mutant names the tensors whose check it must fail, and exactly those fail. The mutation
score is written in docs/gradcheck-mutants.md; test_score_matches_the_docs keeps it current.

    python -m pytest tests/test_gradcheck_mutants.py -q
"""
from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import functional as F
from scratchnet import nn
from scratchnet.gradcheck import OVERWRITTEN, GradcheckReport
from scratchnet.models import UNet

DOCS_PAGE = Path(__file__).parents[1] / "docs" / "gradcheck-mutants.md"


# --- cases: the module and inputs each mutant is checked on --------------------------------------
def _normal(shape: tuple[int, ...], seed: int, scale: float = 1.0, shift: float = 0.0
            ) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _distinct(shape: tuple[int, ...], seed: int, spacing: float = 1e-2) -> np.ndarray:
    """Pairwise distinct values (no ties, no near-ties within eps) for max pooling."""
    r = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (r.permutation(n) * spacing - n * spacing / 2).reshape(shape)


def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    x[np.abs(x) < 1e-3] = 0.5                      # ReLU-type kinks: keep eps away from 0
    return x


def _conv() -> tuple:
    """Stride (2, 1), padding 1, a 3x3 kernel: windows overlap, both strides differ."""
    sn.manual_seed(1)
    return nn.Conv2d(2, 3, 3, stride=(2, 1), padding=1), (_normal((2, 2, 7, 6), 1),), {}


def _conv_square_channels() -> tuple:
    """In and out channels equal, so a channel transpose has the right shape."""
    sn.manual_seed(2)
    return nn.Conv2d(3, 3, 3, padding=1), (_normal((2, 3, 5, 6), 2),), {}


def _conv_transpose() -> tuple:
    sn.manual_seed(3)
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
    return layer, (_normal((2, 2, 3, 4), 3),), {}


def _conv_transpose_square_channels() -> tuple:
    sn.manual_seed(4)
    return nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1), (_normal((2, 3, 3, 4), 4),), {}


def _linear() -> tuple:
    """Square weight (4 x 4): a transposed weight gradient has the right shape."""
    sn.manual_seed(5)
    return nn.Linear(4, 4), (_normal((3, 4), 5),), {}


def _activation(layer: Callable[[], nn.Module], scale: float) -> Callable[[], tuple]:
    return lambda: (layer(), (_away_from_kinks(_normal((2, 3, 4, 5), 6, scale)),), {})


def _batch_norm(eval_mode: bool) -> Callable[[], tuple]:
    """Weights in [0.5, 2], variance ~9 and mean ~1: inv_std and weight both matter."""
    def case() -> tuple:
        r = np.random.default_rng(7)
        bn = nn.BatchNorm2d(3).double()
        bn.weight.data[...] = r.uniform(0.5, 2.0, 3)
        bn.bias.data[...] = r.standard_normal(3)
        if eval_mode:
            bn.running_mean[...] = r.standard_normal(3)
            bn.running_var[...] = r.uniform(0.5, 2.0, 3)
            bn.eval()
        return bn, (_normal((2, 3, 3, 4), 7, scale=3.0, shift=1.0),), {}
    return case


def _mse() -> tuple:
    r = np.random.default_rng(8)
    return nn.MSELoss(), (r.random((2, 1, 5, 4)), r.random((2, 1, 5, 4))), {}


def _smallest_relu_input(model: nn.Module, x: np.ndarray) -> float:
    seen: list[float] = []
    relus = [m for _, m in model.named_modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.forward = (lambda f: lambda a: (seen.append(float(np.abs(a).min())), f(a))[1])(m.forward)
    model(x)
    for m in relus:
        del m.__dict__["forward"]
    return min(seen)


@functools.lru_cache(maxsize=None)
def _unet_seed() -> int:
    """The first seed whose ReLU inputs all stay 10*eps away from 0 (finite differences)."""
    for seed in range(100):
        sn.manual_seed(seed)
        if _smallest_relu_input(UNet(1).double(), _unet_input(seed)) > 1e-5:
            return seed
    raise AssertionError("no seed keeps the U-Net's ReLU inputs away from 0")


def _unet_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 1, 8, 8))


def _unet() -> tuple:
    """UNet(1) in training mode on 8x8 images; large tensors along 2 directions + 4 elements."""
    seed = _unet_seed()
    sn.manual_seed(seed)
    return (UNet(1).double(), (_unet_input(seed),),
            dict(max_elementwise=16, n_directions=2, n_samples=4))


CASES: dict[str, Callable[[], tuple]] = {
    "conv": _conv,
    "conv_square_channels": _conv_square_channels,
    "conv_transpose": _conv_transpose,
    "conv_transpose_square_channels": _conv_transpose_square_channels,
    "linear": _linear,
    "relu": _activation(nn.ReLU, 3.0),
    "leaky_relu": _activation(lambda: nn.LeakyReLU(0.1), 3.0),
    "sigmoid": _activation(nn.Sigmoid, 3.0),
    "tanh": _activation(nn.Tanh, 1.0),
    "batch_norm": _batch_norm(eval_mode=False),
    "batch_norm_eval": _batch_norm(eval_mode=True),
    "max_pool": lambda: (nn.MaxPool2d(3, stride=2, padding=1), (_distinct((2, 2, 7, 6), 9),), {}),
    "max_pool_2x2": lambda: (nn.MaxPool2d(2), (_distinct((2, 2, 6, 4), 10),), {}),
    "avg_pool": lambda: (nn.AvgPool2d(3, stride=2, padding=1), (_normal((2, 2, 7, 6), 11),), {}),
    "upsample": lambda: (nn.Upsample((2, 3)), (_normal((2, 2, 3, 4), 12),), {}),
    "mse": _mse,
    "unet": _unet,
}


# --- planting: how a mistake gets in -------------------------------------------------------------
# A plant takes pytest's monkeypatch and returns the context in which the mistake is in force.
Plant = Callable[[pytest.MonkeyPatch], ContextManager]


def swap(name: str, fn: Callable) -> Plant:
    """The op ``name`` replaced by ``fn`` (``scratchnet.override``)."""
    return lambda mp: sn.override(**{name: fn})


def wrap(name: str, make: Callable[[Callable], Callable]) -> Plant:
    """The op ``name`` replaced by ``make(F.<name>)``: inside the replacement, the op itself
    is the library's version."""
    return lambda mp: sn.override(**{name: make(getattr(F, name))})


def replace(owner: Any, name: str, value: Any) -> Plant:
    """Replace ``owner.<name>`` (a layer's backward or forward) by ``value``."""
    def plant(mp: pytest.MonkeyPatch) -> ContextManager:
        mp.setattr(owner, name, value)
        return contextlib.nullcontext()
    return plant


def assigning(cls: type, name: str) -> Plant:
    """``cls.backward`` with ``self.<name>.grad = dparam`` where ``+=`` belongs.

    The library's own backward runs into a fresh zero grad that replaces the one the parameter
    held: what the assignment leaves behind, however the layer computes dparam inside.
    """
    def plant(mp: pytest.MonkeyPatch) -> ContextManager:
        original = cls.backward

        def backward(self, grad_output):
            param = getattr(self, name)
            param.grad = np.zeros_like(param.grad)     # the grad held before is dropped
            return original(self, grad_output)
        mp.setattr(cls, "backward", backward)
        return contextlib.nullcontext()
    return plant


def both(*plants: Plant) -> Plant:
    def plant(mp: pytest.MonkeyPatch) -> ContextManager:
        stack = contextlib.ExitStack()
        for p in plants:
            stack.enter_context(p(mp))
        return stack
    return plant


# --- rewritten backwards: the library's code with one named mistake (None: no mistake) -----------
def linear_backward(mistake: str | None) -> Callable:
    """Linear.backward; mistakes "weight-transposed" (x^T gy for gy^T x), "input-transposed"
    (gy W^T for gy W), "bias-averaged", "weight-assigned", "bias-assigned"."""
    def backward(self, grad_output):
        x = self._pop_cache(grad_output)
        gw = x.T @ grad_output if mistake == "weight-transposed" else grad_output.T @ x
        gb = grad_output.mean(axis=0) if mistake == "bias-averaged" else grad_output.sum(axis=0)
        if mistake == "weight-assigned":
            self.weight.grad = gw
        else:
            self.weight.grad += gw
        if mistake == "bias-assigned":
            self.bias.grad = gb
        else:
            self.bias.grad += gb
        w = self.weight.data.T if mistake == "input-transposed" else self.weight.data
        return grad_output @ w
    return backward


def batch_norm_backward(mistake: str | None) -> Callable:
    """F.batch_norm_backward with one mistake in dx, dweight or dbias."""
    def backward(gy, xhat, inv_std, weight, batch_stats=True):
        N, C, H, W = gy.shape
        gm = gy.transpose(1, 2, 3, 0).reshape(C, H * W * N)
        xm = xhat.transpose(1, 2, 3, 0).reshape(C, H * W * N)
        M = gm.shape[1]
        dbias = gm.sum(axis=1)
        dweight = (gm * xm).sum(axis=1)
        inv_std = inv_std[:, None]
        scale = inv_std if weight is None else weight[:, None] * inv_std
        if mistake == "inv-std-missing":
            scale = weight[:, None]
        if mistake == "weight-missing":
            scale = inv_std
        batch_stats = {"train-ignores-batch-stats": False,
                       "eval-uses-batch-stats": True}.get(mistake, batch_stats)
        n = {"no-1/M": 1, "1/N-for-1/M": N}.get(mistake, M)
        mean_term = 0 if mistake == "mean-term-dropped" else dbias[:, None] / n
        var_term = 0 if mistake == "variance-term-dropped" else xm * (dweight[:, None] / n)
        dx = scale * (gm - mean_term - var_term) if batch_stats else gm * scale
        if mistake == "dweight-averaged":
            dweight = dweight / M
        if mistake == "dbias-averaged":
            dbias = dbias / M
        return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), dweight, dbias
    return backward


def mse_backward(mistake: str | None) -> Callable:
    """MSELoss.backward; mistakes "no-2", "no-1/M", "sign-flipped", "grad-output-ignored"."""
    def backward(self, grad_output=1.0):
        diff = self._pop_cache(grad_output)
        factor = {"no-2": 1.0 / diff.size, "no-1/M": 2.0}.get(mistake, 2.0 / diff.size)
        if mistake == "sign-flipped":
            factor = -factor
        return diff * factor * (1.0 if mistake == "grad-output-ignored" else grad_output)
    return backward


def unet_backward(mistake: str | None) -> Callable:
    """UNet.backward; mistakes drop one branch of a fan-out (e1 or e2 feeds a pool *and* a
    skip) or swap the halves of a split (the concatenations are (up, skip), equal widths)."""
    def backward(self, grad_output):
        c_up2, c_up1 = self._pop_cache(grad_output)
        g = self.d1.backward(self.out.backward(self.sigmoid.backward(grad_output)))
        g_up1, g_e1_skip = g[:, :c_up1], g[:, c_up1:]
        if mistake == "split-1-swapped":
            g_e1_skip, g_up1 = g[:, :c_up1], g[:, c_up1:]
        g = self.d2.backward(self.u1.backward(g_up1))
        g_up2, g_e2_skip = g[:, :c_up2], g[:, c_up2:]
        if mistake == "split-2-swapped":
            g_e2_skip, g_up2 = g[:, :c_up2], g[:, c_up2:]
        g_e2_pool = self.pool2.backward(self.b.backward(self.u2.backward(g_up2)))
        g_e2 = {"e2-skip-dropped": g_e2_pool, "e2-pool-dropped": g_e2_skip}.get(
            mistake, g_e2_pool + g_e2_skip)
        g_e1_pool = self.pool1.backward(self.e2.backward(g_e2))
        g_e1 = {"e1-skip-dropped": g_e1_pool, "e1-pool-dropped": g_e1_skip}.get(
            mistake, g_e1_pool + g_e1_skip)
        return self.e1.backward(g_e1)
    return backward


def upsample_backward(mistake: str | None) -> Callable:
    """Upsample.backward; mistakes "averaged" (mean over each block, not the sum) and
    "one-copy" (one copy's gradient times the block size)."""
    def backward(self, grad_output):
        self._pop_cache(grad_output)
        (SH, SW), (N, C, OH, OW) = self.scale_factor, grad_output.shape
        blocks = grad_output.reshape(N, C, OH // SH, SH, OW // SW, SW)
        if mistake == "averaged":
            return blocks.mean(axis=(3, 5))
        if mistake == "one-copy":
            return blocks[:, :, :, 0, :, 0] * (SH * SW)
        return blocks.sum(axis=(3, 5))
    return backward


def bias_grad_averaged(gy):
    """F.bias_grad with a mean over n, oh, ow where the sum belongs."""
    return gy.mean(axis=(0, 2, 3))


def col2im_overwriting(col, stride, padding, size):
    """F.col2im with "=" for "+=": where windows overlap, the last one wins."""
    C, KH, KW, OH, OW, N = col.shape
    (SH, SW), (PH, PW), (H, W) = stride, padding, size
    room = (C, H + 2 * PH + KH, W + 2 * PW + KW, N)
    xpad = np.zeros(room, dtype=col.dtype)
    for i, j in np.ndindex(KH, KW):
        xpad[:, i:i + SH * OH:SH, j:j + SW * OW:SW] = col[:, i, j]
    return np.moveaxis(xpad[:, PH:PH + H, PW:PW + W], 3, 0)


def conv2d_grad_weight_gy_reshaped(gy, col):
    """dW with gy read as (OC, N*OH*OW) by a reshape of (N, OC, OH, OW): a layout mistake that
    mixes batch and channel (the library transposes gy to batch-last first)."""
    OC = gy.shape[1]
    C, KH, KW = col.shape[:3]
    return (gy.reshape(OC, -1) @ col.reshape(C * KH * KW, -1).T).reshape(OC, C, KH, KW)


def max_pool2d_backward_gy_reshaped(gy, argmax, kernel, stride, padding, size):
    """F.max_pool2d_backward with gy reshaped, not transposed, to (C, OH, OW, N)."""
    (KH, KW), (C, OH, OW, N) = kernel, argmax.shape
    window = np.arange(KH * KW).reshape(1, KH * KW, 1, 1, 1)
    gcol = (window == argmax[:, None]) * gy.reshape(C, OH, OW, N)[:, None]
    return F.col2im(gcol.reshape(C, KH, KW, OH, OW, N), stride, padding, size)


def max_pool2d_last_maximum(x, kernel, stride, padding, with_argmax=True):
    """F.max_pool2d whose argmax is the *last* maximum on ties (">=" for ">"); y unchanged."""
    col = F.im2col(x, kernel, stride, padding, fill=-np.inf)
    C, KH, KW, OH, OW, N = col.shape
    col = col.reshape(C, KH * KW, OH, OW, N)
    y, argmax = col[:, 0], np.zeros((C, OH, OW, N), dtype="int32")
    for k in range(1, KH * KW):
        argmax = np.where(col[:, k] >= y, k, argmax).astype("int32")
        y = np.maximum(y, col[:, k])
    return y.transpose(3, 0, 1, 2), argmax


def avg_pool2d_backward_padding_excluded(original: Callable) -> Callable:
    """Average pooling's gradient divided by each window's count of *real* pixels (as with
    count_include_pad=False), while forward counts the padded zeros."""
    def backward(gy, kernel, stride, padding, size):
        valid = F.avg_pool2d(np.ones((1, 1) + tuple(size)), kernel, stride, padding)  # count/K
        return original(gy / valid, kernel, stride, padding, size)
    return backward


def spread_like_average_pooling(gy, argmax, *args):
    """F.max_pool2d_backward replaced by average pooling's: gy to every entry of the window."""
    return F.avg_pool2d_backward(gy, *args)


def sigmoid_slope(y):
    return y - y * y                                       # = y * (1 - y), written otherwise


def forward_keeps_output(op: Callable) -> Callable:
    """An activation's forward keeping its output y where the library keeps the input x, so
    the library's backward computes its mask from y."""
    def forward(self, x):
        y = op(self, x)
        self._cache = y
        return y
    return forward


def tanh_forward_keeps_input(self, x):
    self._cache = x
    return np.tanh(x)


# --- the mutants ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutant:
    """One planted mistake.

    Attributes:
        id: the mistake in words (the test id).
        case: the key of CASES it is checked on.
        plant: plants it (through pytest's monkeypatch).
        fails: the tensors whose check must fail (exactly these, unless ``at_least``).
        reason: for an equivalent mutant, why it cannot (or need not) be caught.
        at_least: ``fails`` need only be among the failing tensors (the U-Net's many
            parameters: which ones a dropped branch reaches depends on the sampled elements).
    """
    id: str
    case: str
    plant: Plant
    fails: tuple[str, ...] = ("input",)
    reason: str = ""
    at_least: bool = False

    @property
    def overwrites(self) -> bool:
        return "assigned" in self.id


def flip(a):
    return a[..., ::-1, ::-1]


M = Mutant
CAUGHT: list[Mutant] = [
    # convolution: kernels flipped or transposed, batch sums, strides, padding, col2im
    M("conv-weight-grad-kernel-flipped", "conv",
      wrap("conv2d_grad_weight", lambda f: lambda gy, col: flip(f(gy, col))), ("weight",)),
    M("conv-weight-grad-kernel-transposed-kh-kw", "conv",
      wrap("conv2d_grad_weight", lambda f: lambda gy, col: f(gy, col).swapaxes(2, 3)), ("weight",)),
    M("conv-weight-grad-in-out-channels-transposed", "conv_square_channels",
      wrap("conv2d_grad_weight", lambda f: lambda gy, col: f(gy, col).swapaxes(0, 1)), ("weight",)),
    M("conv-weight-grad-first-sample-only", "conv",
      wrap("conv2d_grad_weight", lambda f: lambda gy, col: f(gy[:1], col[..., :1])), ("weight",)),
    M("conv-weight-grad-averaged-over-batch-1/N", "conv",
      wrap("conv2d_grad_weight", lambda f: lambda gy, col: f(gy, col) / gy.shape[0]), ("weight",)),
    M("conv-weight-grad-gy-reshaped-not-transposed", "conv",
      swap("conv2d_grad_weight", conv2d_grad_weight_gy_reshaped), ("weight",)),
    M("conv-input-grad-kernel-flipped", "conv",
      wrap("conv2d_grad_input", lambda f: lambda gy, w, *a: f(gy, flip(w), *a))),
    M("conv-input-grad-in-out-channels-transposed", "conv_square_channels",
      wrap("conv2d_grad_input", lambda f: lambda gy, w, *a: f(gy, w.swapaxes(0, 1), *a))),
    M("conv-input-grad-stride-ignored", "conv",
      wrap("conv2d_grad_input", lambda f: lambda gy, w, size, s, p: f(gy, w, size, (1, 1), p))),
    M("conv-input-grad-padding-ignored", "conv",
      wrap("conv2d_grad_input", lambda f: lambda gy, w, size, s, p: f(gy, w, size, s, (0, 0)))),
    M("col2im-padding-off-by-one", "conv",
      wrap("col2im", lambda f: lambda col, s, p, size: f(col, s, (p[0] + 1, p[1] + 1), size))),
    M("col2im-overlaps-overwritten-not-summed", "conv", swap("col2im", col2im_overwriting)),
    M("conv-bias-grad-averaged", "conv", swap("bias_grad", bias_grad_averaged), ("bias",)),
    M("conv-weight-grad-assigned", "conv", assigning(nn.Conv2d, "weight"), ("weight",)),
    M("conv-bias-grad-assigned", "conv", assigning(nn.Conv2d, "bias"), ("bias",)),
    # transposed convolution
    M("conv-transpose-input-grad-kernel-flipped", "conv_transpose",
      wrap("conv2d", lambda f: lambda x, w, b, s, p: f(x, flip(w), b, s, p))),
    M("conv-transpose-weight-grad-kernel-flipped", "conv_transpose",
      wrap("conv2d_grad_weight", lambda f: lambda x, gcol: flip(f(x, gcol))), ("weight",)),
    M("conv-transpose-weight-grad-in-out-channels-transposed", "conv_transpose_square_channels",
      wrap("conv2d_grad_weight", lambda f: lambda x, gcol: f(x, gcol).swapaxes(0, 1)), ("weight",)),
    M("conv-transpose-bias-grad-averaged", "conv_transpose",
      swap("bias_grad", bias_grad_averaged), ("bias",)),
    M("conv-transpose-weight-grad-assigned", "conv_transpose",
      assigning(nn.ConvTranspose2d, "weight"), ("weight",)),
    M("conv-transpose-bias-grad-assigned", "conv_transpose",
      assigning(nn.ConvTranspose2d, "bias"), ("bias",)),
    # linear
    M("linear-weight-grad-transposed", "linear",
      replace(nn.Linear, "backward", linear_backward("weight-transposed")), ("weight",)),
    M("linear-input-grad-weight-transposed", "linear",
      replace(nn.Linear, "backward", linear_backward("input-transposed"))),
    M("linear-bias-grad-averaged", "linear",
      replace(nn.Linear, "backward", linear_backward("bias-averaged")), ("bias",)),
    M("linear-weight-grad-assigned", "linear",
      replace(nn.Linear, "backward", linear_backward("weight-assigned")), ("weight",)),
    M("linear-bias-grad-assigned", "linear",
      replace(nn.Linear, "backward", linear_backward("bias-assigned")), ("bias",)),
    # activations: masks and derivatives
    M("relu-mask-inverted", "relu", swap("relu_backward", lambda g, x: g * ~(x > 0))),
    M("relu-mask-dropped", "relu", swap("relu_backward", lambda g, x: g)),
    M("relu-mask-of-upstream-gradient", "relu", swap("relu_backward", lambda g, x: g * (g > 0))),
    M("leaky-relu-negative-slope-missing", "leaky_relu",
      swap("leaky_relu_backward", lambda g, x, slope: np.where(x > 0, g, 0.0))),
    M("leaky-relu-slope-on-the-positive-side", "leaky_relu",
      swap("leaky_relu_backward", lambda g, x, slope: np.where(x > 0, g * slope, g))),
    M("sigmoid-derivative-y-for-y(1-y)", "sigmoid", swap("sigmoid_backward", lambda g, y: g * y)),
    M("sigmoid-derivative-(1-y)-for-y(1-y)", "sigmoid",
      swap("sigmoid_backward", lambda g, y: g * (1 - y))),
    M("tanh-derivative-1-y-for-1-y^2", "tanh", swap("tanh_backward", lambda g, y: g * (1 - y))),
    M("tanh-derivative-at-the-input-1-x^2", "tanh",
      both(replace(nn.Tanh, "forward", tanh_forward_keeps_input),
           swap("tanh_backward", lambda g, x: g * (1 - x ** 2)))),
    # batch norm: its two batch-statistics terms, the scale factors, the mode, the sums
    M("batch-norm-mean-term-dropped", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("mean-term-dropped"))),
    M("batch-norm-variance-term-dropped", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("variance-term-dropped"))),
    M("batch-norm-both-terms-dropped-in-training", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("train-ignores-batch-stats"))),
    M("batch-norm-batch-terms-kept-in-eval", "batch_norm_eval",
      swap("batch_norm_backward", batch_norm_backward("eval-uses-batch-stats"))),
    M("batch-norm-1/M-missing", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("no-1/M"))),
    M("batch-norm-1/N-for-1/M", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("1/N-for-1/M"))),
    M("batch-norm-inv-std-missing", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("inv-std-missing"))),
    M("batch-norm-weight-missing", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("weight-missing"))),
    M("batch-norm-weight-grad-averaged", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("dweight-averaged")), ("weight",)),
    M("batch-norm-bias-grad-averaged", "batch_norm",
      swap("batch_norm_backward", batch_norm_backward("dbias-averaged")), ("bias",)),
    M("batch-norm-weight-grad-assigned", "batch_norm", assigning(nn.BatchNorm2d, "weight"),
      ("weight",)),
    M("batch-norm-bias-grad-assigned", "batch_norm", assigning(nn.BatchNorm2d, "bias"), ("bias",)),
    # pooling and upsampling: routes and counts
    M("max-pool-gradient-to-the-next-window-entry", "max_pool",
      wrap("max_pool2d_backward",
           lambda f: lambda gy, am, k, *a: f(gy, (am + 1) % (k[0] * k[1]), k, *a))),
    M("max-pool-gradient-spread-over-the-window", "max_pool",
      swap("max_pool2d_backward", spread_like_average_pooling)),
    M("max-pool-stride-ignored", "max_pool",
      wrap("max_pool2d_backward",
           lambda f: lambda gy, am, k, s, p, size: f(gy, am, k, (1, 1), p, size))),
    M("max-pool-gy-reshaped-not-transposed", "max_pool",
      swap("max_pool2d_backward", max_pool2d_backward_gy_reshaped)),
    M("avg-pool-not-divided-by-window-size", "avg_pool",
      wrap("avg_pool2d_backward", lambda f: lambda gy, k, *a: f(gy, k, *a) * (k[0] * k[1]))),
    M("avg-pool-divided-by-kh-only", "avg_pool",
      wrap("avg_pool2d_backward", lambda f: lambda gy, k, *a: f(gy, k, *a) * k[1])),
    M("avg-pool-padding-left-out-of-the-count", "avg_pool",
      wrap("avg_pool2d_backward", avg_pool2d_backward_padding_excluded)),
    M("upsample-gradient-averaged-over-the-block", "upsample",
      replace(nn.Upsample, "backward", upsample_backward("averaged"))),
    M("upsample-one-copy-times-block-size", "upsample",
      replace(nn.Upsample, "backward", upsample_backward("one-copy"))),
    # loss
    M("mse-factor-2-missing", "mse", replace(nn.MSELoss, "backward", mse_backward("no-2"))),
    M("mse-1/M-missing", "mse", replace(nn.MSELoss, "backward", mse_backward("no-1/M"))),
    M("mse-sign-flipped", "mse", replace(nn.MSELoss, "backward", mse_backward("sign-flipped"))),
    M("mse-grad-output-ignored", "mse",
      replace(nn.MSELoss, "backward", mse_backward("grad-output-ignored"))),
    # U-Net: fan-outs summed, splits in channel order
    M("unet-e1-fanout-skip-branch-dropped", "unet",
      replace(UNet, "backward", unet_backward("e1-skip-dropped")), at_least=True),
    M("unet-e1-fanout-pool-branch-dropped", "unet",
      replace(UNet, "backward", unet_backward("e1-pool-dropped")), at_least=True),
    M("unet-e2-fanout-skip-branch-dropped", "unet",
      replace(UNet, "backward", unet_backward("e2-skip-dropped")), at_least=True),
    M("unet-e2-fanout-pool-branch-dropped", "unet",
      replace(UNet, "backward", unet_backward("e2-pool-dropped")), at_least=True),
    M("unet-skip-split-swapped-at-full-resolution", "unet",
      replace(UNet, "backward", unet_backward("split-1-swapped")), at_least=True),
    M("unet-skip-split-swapped-at-half-resolution", "unet",
      replace(UNet, "backward", unet_backward("split-2-swapped")), at_least=True),
    M("unet-concatenation-order-reversed-split-not", "unet",
      wrap("cat_channels", lambda f: lambda a, b: f(b, a)), at_least=True),
]

EQUIVALENT: list[Mutant] = [
    M("relu-mask-x>=0-for-x>0", "relu", swap("relu_backward", lambda g, x: g * (x >= 0)),
      reason="differs only at x == 0 exactly, where ReLU has no derivative; random inputs "
             "(and any input a finite-difference check can use) never sit there"),
    M("relu-mask-of-the-output", "relu",
      replace(nn.ReLU, "forward", forward_keeps_output(lambda self, x: np.maximum(x, 0))),
      reason="max(x, 0) > 0 exactly when x > 0: the same mask"),
    M("leaky-relu-mask-of-the-output", "leaky_relu",
      replace(nn.LeakyReLU, "forward", forward_keeps_output(
          lambda self, x: np.where(x > 0, x, x * self.negative_slope))),
      reason="with a positive slope, y > 0 exactly when x > 0: the same mask"),
    M("sigmoid-derivative-written-y-minus-y^2", "sigmoid",
      swap("sigmoid_backward", lambda g, y: g * sigmoid_slope(y)),
      reason="y - y**2 = y * (1 - y): the same derivative, rounded differently"),
    M("max-pool-gradient-to-the-last-maximum-on-ties", "max_pool",
      swap("max_pool2d", max_pool2d_last_maximum),
      reason="first and last maximum are the same entry unless a window holds a tie; at a "
             "tie max pooling has no derivative (central differences give each tied entry "
             "half the gradient, so the library's first-maximum rule fails there too: see "
             "test_planted_ties_are_beyond_central_differences); an exact test catches it"),
    M("col2im-overlaps-overwritten-without-overlaps", "max_pool_2x2",
      swap("col2im", col2im_overwriting),
      reason="2x2 windows with stride 2 never overlap, so '=' and '+=' write the same "
             "pixels once each; the same mistake is caught where windows overlap "
             "(col2im-overlaps-overwritten-not-summed)"),
]

MUTANTS = CAUGHT + EQUIVALENT

# Mutants that an all-ones upstream gradient misses: batch norm's input gradient is exactly 0
# for G = 1 (sum(gy) cancels gy, sum(gy * xhat) = 0), whatever scale it is multiplied by; a
# permutation or a copy of ones is ones; the loss's grad_output *is* 1.
MISSED_BY_ALL_ONES = ["batch-norm-variance-term-dropped", "batch-norm-inv-std-missing",
                      "batch-norm-weight-missing", "batch-norm-weight-grad-averaged",
                      "conv-weight-grad-gy-reshaped-not-transposed",
                      "max-pool-gy-reshaped-not-transposed", "upsample-one-copy-times-block-size",
                      "mse-grad-output-ignored"]

# The rewritten backwards with no mistake: each must pass, so that a mutant differs from the
# library only by its mistake.
FAITHFUL_REWRITES = [
    ("linear", replace(nn.Linear, "backward", linear_backward(None))),
    ("batch_norm", swap("batch_norm_backward", batch_norm_backward(None))),
    ("batch_norm_eval", swap("batch_norm_backward", batch_norm_backward(None))),
    ("mse", replace(nn.MSELoss, "backward", mse_backward(None))),
    ("upsample", replace(nn.Upsample, "backward", upsample_backward(None))),
    ("unet", replace(UNet, "backward", unet_backward(None))),
]


def _check(case: str, **overrides: Any) -> GradcheckReport:
    module, inputs, kwargs = CASES[case]()
    return sn.gradcheck(module, *inputs, **{**kwargs, **overrides, "raise_exception": False})


def _failing(report) -> set[str]:
    return {c.name for c in report.checks if not c.passed}


# --- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_cases_pass_unmutated(case):
    report = _check(case)
    assert report.passed, str(report)


@pytest.mark.parametrize("case,plant", FAITHFUL_REWRITES, ids=[c for c, _ in FAITHFUL_REWRITES])
def test_rewrites_without_a_mistake_pass(case, plant, monkeypatch):
    with plant(monkeypatch):
        report = _check(case)
    assert report.passed, str(report)


@pytest.mark.parametrize("mutant", CAUGHT, ids=lambda m: m.id)
def test_gradcheck_catches_the_mutant(mutant, monkeypatch):
    with mutant.plant(monkeypatch):
        report = _check(mutant.case)
    failing = _failing(report)
    if mutant.at_least:
        assert set(mutant.fails) <= failing, str(report)
    else:
        assert failing == set(mutant.fails), str(report)
    overwritten = {c.name for c in report.checks if c.problem == OVERWRITTEN}
    assert overwritten == (set(mutant.fails) if mutant.overwrites else set()), str(report)


@pytest.mark.parametrize("mutant", EQUIVALENT, ids=lambda m: m.id)
def test_equivalent_mutant_passes(mutant, monkeypatch):
    assert mutant.reason
    with mutant.plant(monkeypatch):
        report = _check(mutant.case)
    assert report.passed, str(report)


@pytest.mark.parametrize("mutant", [m for m in CAUGHT if m.overwrites], ids=lambda m: m.id)
def test_assigning_mutants_need_the_accumulation_check(mutant, monkeypatch):
    """From zeroed grads "=" and "+=" leave the same values: only the check from random
    non-zero grads tells them apart."""
    with mutant.plant(monkeypatch):
        assert _check(mutant.case, check_accumulation=False).passed


class AllOnesUpstream(nn.Module):
    """f = c * sum(inner(x)) for gradcheck's random scalar c, with ``inner.backward`` fed an
    all-ones upstream gradient and its results scaled by c: gradcheck of ``inner`` as it would
    run with G = ones (a backward is linear in G), parameters' accumulation included."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *xs):
        y = self.inner(*xs)
        self._cache = y.shape
        return y.sum()

    def backward(self, c):
        shape = self._pop_cache(c)
        before = [p.grad.copy() for p in self.parameters()]
        gx = self.inner.backward(np.ones(shape))
        for p, b in zip(self.parameters(), before):
            p.grad[...] = b + (p.grad - b) * c
        return gx * c


@pytest.mark.parametrize("mutant_id", MISSED_BY_ALL_ONES)
def test_random_upstream_gradient_catches_what_all_ones_misses(mutant_id, monkeypatch):
    mutant = next(m for m in CAUGHT if m.id == mutant_id)
    module, inputs, kwargs = CASES[mutant.case]()
    assert sn.gradcheck(AllOnesUpstream(module), *inputs, **kwargs).passed    # helper is sound
    with mutant.plant(monkeypatch):
        assert sn.gradcheck(AllOnesUpstream(module), *inputs, **kwargs).passed    # G = 1: missed
        assert not _check(mutant.case).passed                                 # random G: caught


# --- max pooling at ties: a convention, not a derivative -----------------------------------------
TIES = np.array([[[[1.0, 3.0, 0.0, 2.0],
                   [3.0, -1.0, 2.0, -2.0]]]])      # each 2x2 window holds two equal maxima


def test_planted_ties_are_beyond_central_differences():
    """At a tie, f(x + eps) and f(x - eps) take the maximum from different entries: central
    differences give each tied entry half the gradient. The library sends all of it to the
    first entry, the mutant to the last; gradcheck fails both, on exactly the four tied entries."""
    G = np.array([[[[0.7, -1.3]]]])

    def f(x):
        return float((nn.MaxPool2d(2)(x) * G).sum())

    numeric = np.zeros_like(TIES)
    for idx in np.ndindex(TIES.shape):
        step = np.zeros_like(TIES)
        step[idx] = 1e-6
        numeric[idx] = (f(TIES + step) - f(TIES - step)) / 2e-6
    np.testing.assert_allclose(numeric[0, 0], [[0, 0.35, 0, -0.65], [0.35, 0, -0.65, 0]], atol=1e-9)

    library = sn.gradcheck(nn.MaxPool2d(2), TIES, raise_exception=False)
    with sn.override(max_pool2d=max_pool2d_last_maximum):
        mutant = sn.gradcheck(nn.MaxPool2d(2), TIES, raise_exception=False)
    assert library.checks[0].failures == mutant.checks[0].failures == 4


def test_last_maximum_mutant_is_caught_by_an_exact_test():
    def routed():
        pool = nn.MaxPool2d(2)
        pool(TIES)
        return pool.backward(np.ones((1, 1, 1, 2)))[0, 0]

    first = [[0, 1, 0, 1], [0, 0, 0, 0]]                 # the documented rule: first maximum
    np.testing.assert_array_equal(routed(), first)
    with sn.override(max_pool2d=max_pool2d_last_maximum):
        assert not np.array_equal(routed(), first)


# --- the score -----------------------------------------------------------------------------------
def test_mutants_are_many_and_distinct():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)) and len(CAUGHT) >= 40
    assert all(m.case in CASES for m in MUTANTS)
    assert sum(m.overwrites for m in CAUGHT) >= 6


def test_score_matches_the_docs():
    text = DOCS_PAGE.read_text()
    score = re.search(r"\*\*(\d+) mutants planted, (\d+) caught, (\d+) equivalent\*\*", text)
    assert score, "docs/gradcheck-mutants.md must state the score"
    assert tuple(map(int, score.groups())) == (len(MUTANTS), len(CAUGHT), len(EQUIVALENT))
    for m in EQUIVALENT:
        assert f"`{m.id}`" in text, f"the docs page does not explain {m.id}"
