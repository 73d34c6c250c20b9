"""BatchNorm2d with PyTorch's semantics; the math is in `scratchnet.functional.norm`."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import get_backend
from ._checks import check_input, positive_int
from .module import NO_CACHE, Module, Parameter, is_grad_enabled

Array = Any


class BatchNorm2d(Module):
    """Normalise each channel of (N, C, H, W) over N, H and W, then scale and shift.

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics; None averages all
            batches seen so far equally (a cumulative moving average), as in PyTorch.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0), each (C,).
        track_running_stats: keep the buffers ``running_mean`` (init 0), ``running_var``
            (init 1) and ``num_batches_tracked`` (int64, init 0) and use them in ``eval()``
            mode; without them batch statistics are used in both modes.

    Training mode: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the batch's mean
    and *biased* variance; then ``running = (1 - momentum) * running + momentum * batch``,
    using the *unbiased* variance ``var * M / (M - 1)`` (``M = N*H*W``). Eval mode uses the
    running statistics. Forward and backward are `functional.batch_norm_forward` (with
    `functional.batch_norm_update_stats`) and `functional.batch_norm_backward`, which goes
    through the batch mean and variance in training mode. Forward keeps xhat and
    ``1/sqrt(var + eps)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        xp = get_backend("numpy")              # created on the host, moved by .to()
        self.weight = Parameter(xp.ones(num_features, dtype="float32")) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype="float32")) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", xp.zeros(num_features, dtype="float32"))
            self.register_buffer("running_var", xp.ones(num_features, dtype="float32"))
            self.register_buffer("num_batches_tracked", xp.zeros((), dtype="int64"))

    def forward(self, x: Array) -> Array:
        check_input(self, x, f"(N, {self.num_features}, H, W)", ndim=4, dim=1,
                    size=self.num_features)
        N, _, H, W = x.shape
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and N * H * W == 1:                      # as PyTorch: var would be 0
            raise ValueError(f"{self!r}: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(x.shape)}")
        weight = None if self.weight is None else self.weight.data
        bias = None if self.bias is None else self.bias.data
        if not batch_stats and not is_grad_enabled():          # inference: scale and shift
            self._cache = NO_CACHE
            return F.batch_norm_inference(x, weight, bias, self.eps, self.running_mean,
                                          self.running_var)
        fixed = () if batch_stats else (self.running_mean, self.running_var)
        y, xhat, inv_std, mean, var = F.batch_norm_forward(x, weight, bias, self.eps, *fixed)
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            F.batch_norm_update_stats(self.running_mean, self.running_var, mean, var, m, N * H * W)
        self._cache = (xhat, inv_std, batch_stats)
        return y

    def backward(self, grad_output: Array) -> Array:
        xhat, inv_std, batch_stats = self._pop_cache(grad_output)
        weight = None if self.weight is None else self.weight.data
        dx, dw, db = F.batch_norm_backward(grad_output, xhat, inv_std, weight, batch_stats)
        if self.weight is not None:
            self.weight.grad += dw
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
