"""MaxPool2d, AvgPool2d and nearest-neighbour Upsample (PyTorch's arguments and semantics).

Pooling windows are receptive fields, so both poolings reuse the convolution's im2col/col2im
(`scratchnet.functional.pool`): max pooling sends each gradient to its window's
maximum, average pooling spreads it evenly over the window.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ._checks import check_input, to_pair
from .module import NO_CACHE, Module, is_grad_enabled

Array = Any
IntOrPair = int | tuple[int, int]


class _Pool2d(Module):
    """Shared arguments, checks and repr of the two pooling layers."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = to_pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else to_pair(stride, "stride", name, 1)
        self.padding = to_pair(padding, "padding", name, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel "
                             f"size {self.kernel_size}")

    def _check(self, x: Array) -> tuple[int, int]:
        check_input(self, x, "(N, C, H, W)", ndim=4)
        H, W = x.shape[2:]
        if any(n + 2 * p < k for n, p, k in zip((H, W), self.padding, self.kernel_size)):
            raise ValueError(f"{self!r}: input size ({H}, {W}) with padding {self.padding} is "
                             f"smaller than the kernel {self.kernel_size}")
        return H, W

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each KH x KW window; padding counts as -inf.

    Args:
        kernel_size: int or (h, w).
        stride: int or (h, w); defaults to ``kernel_size``.
        padding: at most half the kernel on each side.

    Shapes: (N, C, H, W) -> (N, C, OH, OW), ``OH = floor((H + 2*PH - KH) / SH) + 1``.
    Backward: dx gets gy at the position of each window's maximum (the first one on ties),
    summed where windows overlap. Only the argmax indices are kept.
    """

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                 padding: IntOrPair = 0):
        super().__init__(kernel_size, stride, padding)

    def forward(self, x: Array) -> Array:
        size = self._check(x)
        keep = is_grad_enabled()                  # argmax is for backward only
        y, argmax = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, keep)
        self._cache = (argmax, size) if keep else NO_CACHE
        return y

    def backward(self, grad_output: Array) -> Array:
        argmax, size = self._pop_cache(grad_output)
        return F.max_pool2d_backward(grad_output, argmax, self.kernel_size, self.stride,
                                     self.padding, size)


class AvgPool2d(_Pool2d):
    """Mean over each KH x KW window; padded zeros count (PyTorch's count_include_pad=True).

    Backward: every pixel of a window gets ``gy / (KH*KW)``, summed where windows overlap.
    """

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                 padding: IntOrPair = 0):
        super().__init__(kernel_size, stride, padding)

    def forward(self, x: Array) -> Array:
        self._cache = self._check(x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_output: Array) -> Array:
        size = self._pop_cache(grad_output)
        return F.avg_pool2d_backward(grad_output, self.kernel_size, self.stride, self.padding,
                                     size)


class Upsample(Module):
    """Nearest-neighbour upsampling by integer factors: each pixel becomes an SH x SW block.

    Args:
        scale_factor: int or (h, w) pair of ints.
        mode: only "nearest".

    Backward: each input pixel's gradient is the sum of gy over its block.
    """

    def __init__(self, scale_factor: IntOrPair, mode: str = "nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: mode {mode!r} is not supported; expected 'nearest'")
        self.scale_factor, self.mode = to_pair(scale_factor, "scale_factor", "Upsample", 1), mode

    def forward(self, x: Array) -> Array:
        check_input(self, x, "(N, C, H, W)", ndim=4)
        self._cache = True
        return F.upsample_nearest(x, self.scale_factor)

    def backward(self, grad_output: Array) -> Array:
        self._pop_cache(grad_output)
        return F.upsample_nearest_backward(grad_output, self.scale_factor)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"
