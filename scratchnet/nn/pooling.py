"""MaxPool2d, AvgPool2d and Upsample (PyTorch's arguments and semantics).

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
    """Upsampling of (N, C, H, W) images, nearest-neighbour or bilinear (PyTorch's Upsample).

    Args:
        scale_factor: a number or an (h, w) pair; ``OH = floor(H * scale_h)``.
        mode: 'nearest' or 'bilinear'.
        align_corners: bilinear only (None means False): True lines up the centres of the
            corner pixels, False (PyTorch's default) their outer edges.
        size: (OH, OW), or one int, instead of scale_factor (keyword; PyTorch's first
            argument, here second to scale_factor, which came first).

    Nearest upsampling by integer factors repeats each pixel as an SH x SW block
    (`functional.upsample_nearest`; backward: each pixel's gradient is the sum of gy over
    its block). Every other case is `functional.interpolate`, whose backward
    (`functional.interpolate_backward`) is the adjoint of its resizing,
    ``dx = A_H.T @ gy @ A_W``. Only the input's size is kept.
    """

    def __init__(self, scale_factor: float | tuple[float, float] | None = None,
                 mode: str = "nearest", align_corners: bool | None = None, *,
                 size: int | tuple[int, int] | None = None):
        super().__init__()
        self.size, scale, _ = F.interpolate_args(size, scale_factor, mode, align_corners,
                                                 "Upsample")
        self.mode, self.align_corners = mode, align_corners
        self.scale_factor = None if scale is None else tuple(
            int(s) if float(s).is_integer() else s for s in scale)
        whole = scale is not None and all(isinstance(s, int) for s in self.scale_factor)
        self._repeat = mode == "nearest" and whole         # a block repeat: upsample_nearest

    def forward(self, x: Array) -> Array:
        check_input(self, x, "(N, C, H, W)", ndim=4)
        self._cache = tuple(x.shape[2:])
        if self._repeat:
            return F.upsample_nearest(x, self.scale_factor)
        F.interpolate_output_size(self._cache, self.size, self.scale_factor, repr(self))
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def backward(self, grad_output: Array) -> Array:
        size = self._pop_cache(grad_output)
        if self._repeat:
            return F.upsample_nearest_backward(grad_output, self.scale_factor)
        return F.interpolate_backward(grad_output, size, self.scale_factor, self.mode,
                                      self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"{what}, mode={self.mode!r}{corners}"
