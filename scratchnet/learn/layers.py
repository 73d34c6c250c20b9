"""Real layers that run a learner's backward functions.

Each class here subclasses the library layer of the same name, keeps its constructor
arguments, parameters and ``repr``, and replaces ``forward`` and ``backward``: ``forward``
calls the public function of :mod:`scratchnet.functional` (or plain array code) and keeps in
its own cache exactly the values the learner's function is documented to receive;
``backward`` calls the learner's function and adds the parameter gradients it returns into
``param.grad``. Nothing here reads the library layers' private caches, so a change inside
the library (a faster layout, a fused kernel) cannot break the grader; a change of a
*public* function's documented result is caught by :func:`_contract` with a clear message.

The layers are used twice: by the grader (``scratchnet.gradcheck`` runs them against finite
differences) and by the capstone (``python -m scratchnet.learn train``), which builds the
reference autoencoder out of them.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from .. import functional as F
from .. import nn, optim
from ..backend import get_array_module

Array = Any
Fn = Callable[..., Any]

__all__ = ["LearnerResultError", "Linear", "ReLU", "Sigmoid", "MSELoss", "Conv2d",
           "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "SkipBlock", "Adam",
           "conv2d_grad_input_with", "reference_split", "reference_sum"]


class LearnerResultError(ValueError):
    """A learner's function returned something a layer cannot use (wrong type or shape)."""


def _fn_name(fn: Fn) -> str:
    inner = getattr(fn, "func", None)                    # a functools.partial
    return getattr(fn, "__name__", None) or getattr(inner, "__name__", "function")


def _result(value: Any, what: str, shape: tuple[int, ...], like: Array, fn: Fn) -> Array:
    """``value`` as an array of ``shape`` with ``like``'s dtype, or a LearnerResultError."""
    if value is None:
        raise LearnerResultError(f"{_fn_name(fn)} returned None for {what}; expected an array of "
                                 f"shape {tuple(shape)} (a missing `return`?)")
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise LearnerResultError(f"{_fn_name(fn)} returned a {type(value).__name__} for {what}; "
                                 f"expected an array of shape {tuple(shape)}")
    if tuple(value.shape) != tuple(shape):
        raise LearnerResultError(f"{_fn_name(fn)} returned {what} of shape {tuple(value.shape)}; "
                                 f"expected {tuple(shape)}")
    if value.dtype != like.dtype:
        value = value.astype(like.dtype)
    return value


def _results(value: Any, names: tuple[str, ...], fn: Fn) -> tuple[Any, ...]:
    """Unpack a tuple of ``len(names)`` results, or a LearnerResultError."""
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        got = (f"{len(value)} values" if isinstance(value, (tuple, list))
               else "None" if value is None else f"a {type(value).__name__}")
        raise LearnerResultError(f"{_fn_name(fn)} returned {got}; expected a tuple "
                                 f"({', '.join(names)})")
    return tuple(value)


def _contract(ok: bool, function: str, promise: str) -> None:
    if not ok:
        raise RuntimeError(f"scratchnet.{function} no longer returns {promise}, as "
                           "scratchnet.learn expects; the learn package needs an update")


class _Cache:
    """The layer's own forward-to-backward cache (never the library's)."""

    def _save(self, out: Array, *values: Any) -> None:
        object.__setattr__(self, "_learner_cache", (tuple(getattr(out, "shape", ())), values))

    def _take(self, grad_output: Any) -> tuple[Any, ...]:
        saved = self.__dict__.get("_learner_cache")
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called without a preceding "
                               "forward()")
        shape, values = saved
        got = tuple(getattr(grad_output, "shape", ()))
        if got != shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {got}, "
                             f"expected {shape} (the shape forward returned)")
        object.__setattr__(self, "_learner_cache", None)
        return values


def _check_image(layer: Any, x: Array, channels: int | None) -> None:
    if getattr(x, "ndim", None) != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer!r}: expected input of shape {want}, got "
                         f"{tuple(getattr(x, 'shape', ()))}")


# --- chain: Linear, ReLU, Sigmoid, MSELoss -------------------------------------------------
class Linear(_Cache, nn.Linear):
    """``nn.Linear`` whose backward is ``backward_fn(gy, x, weight) -> (dx, dweight, dbias)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 backward_fn: Fn):
        super().__init__(in_features, out_features, bias)
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        if getattr(x, "ndim", None) != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        y = x @ self.weight.data.T
        if self.bias is not None:
            y = y + self.bias.data
        self._save(y, x)
        return y

    def backward(self, grad_output: Array) -> Array:
        (x,) = self._take(grad_output)
        fn = self.backward_fn
        dx, dw, db = _results(fn(grad_output, x, self.weight.data), ("dx", "dweight", "dbias"), fn)
        self.weight.grad += _result(dw, "dweight", self.weight.shape, self.weight.data, fn)
        if self.bias is not None:
            self.bias.grad += _result(db, "dbias", self.bias.shape, self.bias.data, fn)
        return _result(dx, "dx", x.shape, x, fn)


class ReLU(_Cache, nn.ReLU):
    """``nn.ReLU`` whose backward is ``backward_fn(gy, x) -> dx`` (this layer keeps x)."""

    def __init__(self, *, backward_fn: Fn):
        super().__init__()
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        y = get_array_module(x).maximum(x, 0)
        self._save(y, x)
        return y

    def backward(self, grad_output: Array) -> Array:
        (x,) = self._take(grad_output)
        return _result(self.backward_fn(grad_output, x), "dx", x.shape, x, self.backward_fn)


class Sigmoid(_Cache, nn.Sigmoid):
    """``nn.Sigmoid`` whose backward is ``backward_fn(gy, y) -> dx`` (y: the output)."""

    def __init__(self, *, backward_fn: Fn):
        super().__init__()
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        y = F.sigmoid(x)
        self._save(y, y)
        return y

    def backward(self, grad_output: Array) -> Array:
        (y,) = self._take(grad_output)
        return _result(self.backward_fn(grad_output, y), "dx", y.shape, y, self.backward_fn)


class MSELoss(_Cache, nn.MSELoss):
    """``nn.MSELoss`` whose backward is ``backward_fn(diff, grad_output) -> dpred`` with
    ``diff = pred - target`` (what this loss keeps)."""

    def __init__(self, *, backward_fn: Fn):
        super().__init__()
        self.backward_fn = backward_fn

    def forward(self, input: Array, target: Array) -> Array:
        if getattr(input, "shape", None) != getattr(target, "shape", None):
            raise ValueError(f"MSELoss: input shape {getattr(input, 'shape', None)} and target "
                             f"shape {getattr(target, 'shape', None)} differ; they must match")
        diff = input - target
        loss = get_array_module(diff).asarray((diff * diff).mean())
        self._save(loss, diff)
        return loss

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        (diff,) = self._take(grad_output)           # a Python number counts as 0-d
        return _result(self.backward_fn(diff, grad_output), "dpred", diff.shape, diff,
                       self.backward_fn)


# --- convolutions --------------------------------------------------------------------------
def _grad_input_via(col2im: Fn, gy: Array, weight: Array, size: tuple[int, int],
                    stride: tuple[int, int], padding: tuple[int, int]) -> Array:
    OC, C, KH, KW = weight.shape
    N, _, OH, OW = gy.shape
    gcol = weight.reshape(OC, C * KH * KW).T @ gy.transpose(1, 2, 3, 0).reshape(OC, OH * OW * N)
    return col2im(gcol.reshape(C, KH, KW, OH, OW, N), stride, padding, size)


def conv2d_grad_input_with(col2im: Fn) -> Fn:
    """``conv2d_grad_input(gy, weight, size, stride, padding)`` built on the given ``col2im``:
    dx = col2im(W^T @ gy), with col laid out as ``scratchnet.functional.im2col`` lays it out."""
    fn = functools.partial(_grad_input_via, col2im)
    fn.__name__ = _fn_name(col2im)            # errors name the learner's function
    return fn


class Conv2d(_Cache, nn.Conv2d):
    """``nn.Conv2d`` whose backward runs ``grad_weight(gy, col) -> dweight`` and
    ``grad_input(gy, weight, size, stride, padding) -> dx`` (the library's by default); col is
    ``scratchnet.functional.conv2d``'s (C, KH, KW, OH, OW, N) im2col matrix."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, bias: bool = True, *, grad_weight: Fn = F.conv2d_grad_weight,
                 grad_input: Fn = F.conv2d_grad_input):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)
        self.grad_weight_fn, self.grad_input_fn = grad_weight, grad_input

    def forward(self, x: Array) -> Array:
        _check_image(self, x, self.in_channels)
        b = None if self.bias is None else self.bias.data
        y, col = F.conv2d(x, self.weight.data, b, self.stride, self.padding)
        N, _, OH, OW = y.shape
        _contract(tuple(col.shape) == (self.in_channels, *self.kernel_size, OH, OW, N),
                  "functional.conv2d", "col of shape (C, KH, KW, OH, OW, N)")
        self._save(y, col, tuple(x.shape))
        return y

    def backward(self, grad_output: Array) -> Array:
        col, x_shape = self._take(grad_output)
        fw, fx = self.grad_weight_fn, self.grad_input_fn
        dw = fw(grad_output, col)
        self.weight.grad += _result(dw, "dweight", self.weight.shape, self.weight.data, fw)
        if self.bias is not None:
            self.bias.grad += grad_output.sum(axis=(0, 2, 3))
        dx = fx(grad_output, self.weight.data, x_shape[2:], self.stride, self.padding)
        return _result(dx, "dx", x_shape, grad_output, fx)


class ConvTranspose2d(_Cache, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose backward is
    ``backward_fn(gy, x, weight, stride, padding) -> (dx, dweight, dbias)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, bias: bool = True, *,
                 backward_fn: Fn):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         bias)
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        _check_image(self, x, self.in_channels)
        b = None if self.bias is None else self.bias.data
        y = F.conv_transpose2d(x, self.weight.data, b, self.stride, self.padding,
                               self.output_padding)
        self._save(y, x)
        return y

    def backward(self, grad_output: Array) -> Array:
        (x,) = self._take(grad_output)
        fn = self.backward_fn
        dx, dw, db = _results(fn(grad_output, x, self.weight.data, self.stride, self.padding),
                              ("dx", "dweight", "dbias"), fn)
        self.weight.grad += _result(dw, "dweight", self.weight.shape, self.weight.data, fn)
        if self.bias is not None:
            self.bias.grad += _result(db, "dbias", self.bias.shape, self.bias.data, fn)
        return _result(dx, "dx", x.shape, x, fn)


# --- pooling -------------------------------------------------------------------------------
class MaxPool2d(_Cache, nn.MaxPool2d):
    """``nn.MaxPool2d`` whose backward is
    ``backward_fn(gy, argmax, kernel, stride, padding, size) -> dx``, with argmax as
    ``scratchnet.functional.max_pool2d`` returns it: (C, OH, OW, N), entries i*KW + j."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *,
                 backward_fn: Fn):
        super().__init__(kernel_size, stride, padding)
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        _check_image(self, x, None)
        y, argmax = F.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        N, C, OH, OW = y.shape
        _contract(tuple(argmax.shape) == (C, OH, OW, N), "functional.max_pool2d",
                  "argmax of shape (C, OH, OW, N)")
        self._save(y, argmax, tuple(x.shape))
        return y

    def backward(self, grad_output: Array) -> Array:
        argmax, x_shape = self._take(grad_output)
        fn = self.backward_fn
        dx = fn(grad_output, argmax, self.kernel_size, self.stride, self.padding, x_shape[2:])
        return _result(dx, "dx", x_shape, grad_output, fn)


class AvgPool2d(_Cache, nn.AvgPool2d):
    """``nn.AvgPool2d`` whose backward is
    ``backward_fn(gy, kernel, stride, padding, size) -> dx``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *,
                 backward_fn: Fn):
        super().__init__(kernel_size, stride, padding)
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        _check_image(self, x, None)
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._save(y, tuple(x.shape))
        return y

    def backward(self, grad_output: Array) -> Array:
        (x_shape,) = self._take(grad_output)
        fn = self.backward_fn
        dx = fn(grad_output, self.kernel_size, self.stride, self.padding, x_shape[2:])
        return _result(dx, "dx", x_shape, grad_output, fn)


# --- batch norm ----------------------------------------------------------------------------
class BatchNorm2d(_Cache, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose backward is
    ``backward_fn(gy, xhat, inv_std, weight, batch_stats) -> (dx, dweight, dbias)`` with xhat
    as (N, C, H, W) and inv_std as (C,); running statistics are updated as the library does."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *, backward_fn: Fn):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.backward_fn = backward_fn

    def forward(self, x: Array) -> Array:
        _check_image(self, x, self.num_features)
        N, C, H, W = x.shape
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and N * H * W == 1:
            raise ValueError(f"{self!r}: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(x.shape)}")
        weight = None if self.weight is None else self.weight.data
        bias = None if self.bias is None else self.bias.data
        if batch_stats:
            y, _, inv_std, mean, var = F.batch_norm_forward(x, weight, bias, self.eps)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                M = N * H * W
                self.running_mean[...] = (1 - m) * self.running_mean + m * mean
                self.running_var[...] = (1 - m) * self.running_var + (m * M / (M - 1)) * var
        else:
            y, _, inv_std, mean, var = F.batch_norm_forward(
                x, weight, bias, self.eps, self.running_mean, self.running_var)
        _contract(tuple(mean.shape) == (C,) and inv_std.size == C, "functional.batch_norm_forward",
                  "mean of shape (C,) and C values of inv_std")
        inv_std = inv_std.reshape(C)
        xhat = (x - mean.reshape(1, C, 1, 1)) * inv_std.reshape(1, C, 1, 1)
        self._save(y, xhat, inv_std, batch_stats)
        return y

    def backward(self, grad_output: Array) -> Array:
        xhat, inv_std, batch_stats = self._take(grad_output)
        fn = self.backward_fn
        weight = None if self.weight is None else self.weight.data
        dx, dw, db = _results(fn(grad_output, xhat, inv_std, weight, batch_stats),
                              ("dx", "dweight", "dbias"), fn)
        if self.weight is not None:
            self.weight.grad += _result(dw, "dweight", self.weight.shape, self.weight.data, fn)
            self.bias.grad += _result(db, "dbias", self.bias.shape, self.bias.data, fn)
        return _result(dx, "dx", xhat.shape, xhat, fn)


# --- a skip connection ---------------------------------------------------------------------
def reference_split(grad: Array, up_channels: int) -> tuple[Array, Array]:
    """The split at cat(up, skip), as ``scratchnet.models.UNet.backward`` does it."""
    return grad[:, :up_channels], grad[:, up_channels:]


def reference_sum(grad_pool: Array, grad_skip: Array) -> Array:
    """The sum where one feature map fed two consumers, as in ``UNet.backward``."""
    return grad_pool + grad_skip


class SkipBlock(_Cache, nn.Module):
    """One level of a U-Net, the smallest real network with a skip connection::

        x ─ enc ─ e ─────────────────── cat(up, e) ─ dec ─ y
                  └ pool ─ inner ─ up ──┘

    enc, inner and dec are 3x3 convolutions (padding 1), pool a 2x2 max pool, up a 2x2
    stride-2 transposed convolution with ``width + 1`` output channels (so that the two parts
    of the concatenation differ in size). Backward *splits* the gradient at the concatenation
    with ``split(grad, up_channels) -> (grad_up, grad_skip)`` and *sums* the two gradients of
    e with ``total(grad_pool, grad_skip) -> grad``.
    """

    def __init__(self, in_channels: int = 1, width: int = 2, *, split: Fn = reference_split,
                 total: Fn = reference_sum):
        super().__init__()
        self.enc = nn.Conv2d(in_channels, width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.inner = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.up = nn.ConvTranspose2d(2 * width, width + 1, 2, stride=2)
        self.dec = nn.Conv2d(2 * width + 1, 1, 3, padding=1)
        self.split_fn, self.sum_fn = split, total

    def forward(self, x: Array) -> Array:
        e = self.enc(x)
        up = self.up(self.inner(self.pool(e)))
        y = self.dec(F.cat_channels(up, e))
        self._save(y, tuple(up.shape), tuple(e.shape))
        return y

    def backward(self, grad_output: Array) -> Array:
        up_shape, e_shape = self._take(grad_output)
        g = self.dec.backward(grad_output)
        parts = _results(self.split_fn(g, up_shape[1]), ("grad_up", "grad_skip"), self.split_fn)
        g_up = _result(parts[0], "grad_up", up_shape, g, self.split_fn)
        g_skip = _result(parts[1], "grad_skip", e_shape, g, self.split_fn)
        g_pool = self.pool.backward(self.inner.backward(self.up.backward(g_up)))
        g_e = _result(self.sum_fn(g_pool, g_skip), "grad", e_shape, g, self.sum_fn)
        return self.enc.backward(g_e)


# --- Adam ----------------------------------------------------------------------------------
class Adam(optim.Adam):
    """``optim.Adam`` whose update is ``step_fn(param, grad, exp_avg, exp_avg_sq, step, lr,
    betas, eps, weight_decay) -> (param, exp_avg, exp_avg_sq)``; state is kept under the
    library's names (``step``, ``exp_avg``, ``exp_avg_sq``) in ``self.state``."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, step_fn: Fn):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.step_fn = step_fn

    def step(self) -> None:
        fn = self.step_fn
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.setdefault(p, {})
                if not state:
                    xp = get_array_module(p.data)
                    state.update(step=0, exp_avg=xp.zeros_like(p.data),
                                 exp_avg_sq=xp.zeros_like(p.data))
                state["step"] += 1
                out = _results(fn(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"],
                                  state["step"], group["lr"], tuple(group["betas"]), group["eps"],
                                  group["weight_decay"]), ("param", "exp_avg", "exp_avg_sq"), fn)
                new_p, m, v = (_result(a, name, p.shape, p.data, fn)
                               for a, name in zip(out, ("param", "exp_avg", "exp_avg_sq")))
                p.data[...] = new_p
                state["exp_avg"][...] = m
                state["exp_avg_sq"][...] = v
