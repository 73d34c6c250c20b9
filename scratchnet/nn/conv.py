"""Conv2d and ConvTranspose2d (PyTorch's arguments, weight layouts and initialisation).

Both are thin wrappers over `scratchnet.functional.conv`, where the math lives:

    Conv2d            forward  y, col = conv2d_forward(x, W, b)      (im2col + matmul)
                      backward conv2d_backward(gy, col, W):
                               dW = conv2d_grad_weight(gy, col)
                               dx = conv2d_grad_input(gy, W)         (matmul + col2im)
    ConvTranspose2d   forward  y  = conv_transpose2d(x, W, b)        (the adjoint of conv2d)
                      backward conv_transpose2d_backward(gy, x, W):
                               dx, gcol = conv2d(gy, W)              (an ordinary convolution)
                               dW = conv2d_grad_weight(x, gcol)
    both              db = bias_grad(gy): gy summed over N, OH, OW
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ._checks import check_input, positive_int, to_pair
from .init import default_bound, uniform
from .module import Module, Parameter

Array = Any
IntOrPair = int | tuple[int, int]


class _ConvNd(Module):
    """Shared argument handling, initialisation and repr of the two convolution layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair, padding: IntOrPair, bias: bool, transposed: bool):
        super().__init__()
        name = type(self).__name__
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = to_pair(kernel_size, "kernel_size", name, 1)
        self.stride = to_pair(stride, "stride", name, 1)
        self.padding = to_pair(padding, "padding", name, 0)
        KH, KW = self.kernel_size
        shape = (in_channels, out_channels, KH, KW) if transposed else (out_channels, in_channels, KH, KW)
        bound = default_bound(shape[1] * KH * KW)      # PyTorch: fan_in from weight dim 1
        self.weight = Parameter(uniform(shape, bound))
        self.bias = Parameter(uniform((out_channels,), bound)) if bias else None

    def _check(self, x: Array) -> None:
        check_input(self, x, f"(N, {self.in_channels}, H, W)", ndim=4, dim=1, size=self.in_channels)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) inputs.

    Args:
        in_channels: C.
        out_channels: OC.
        kernel_size: int or (h, w) pair.
        stride: int or (h, w) pair.
        padding: int or (h, w) pair of zero padding.
        bias: learn an additive bias per output channel.

    Shapes: input (N, C, H, W) -> output (N, OC, OH, OW), ``OH = floor((H + 2*PH - KH) / SH) +
    1``; weight (OC, C, KH, KW) and bias (OC,), both ``~ U(-1/sqrt(C*KH*KW), +1/sqrt(C*KH*KW))``.

    Forward and backward are `functional.conv2d_forward` and `functional.conv2d_backward`:
    with col the im2col matrix of x as ``(C*KH*KW, OH*OW*N)`` and gy as ``(OC, OH*OW*N)``,

        dW = gy @ col^T,   db = sum of gy over n, oh, ow,   dx = col2im(W^T @ gy)

    Only ``col`` and the input size are kept between forward and backward. On the CPU, large
    float32 layers take `scratchnet.blocked` instead: the same products a few output rows at
    a time, keeping the padded input rather than ``col`` (`blocked.use_blocked_cpu`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: IntOrPair = 0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias,
                         transposed=False)

    def forward(self, x: Array) -> Array:
        self._check(x)
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        H, W = x.shape[2:]
        if H + 2 * PH < KH or W + 2 * PW < KW:
            raise ValueError(f"{self!r}: input size ({H}, {W}) with padding {self.padding} is "
                             f"smaller than the kernel {self.kernel_size}")
        b = None if self.bias is None else self.bias.data
        y, saved = F.conv2d_forward(x, self.weight.data, b, self.stride, self.padding)
        self._cache = (saved, (H, W))
        return y

    def backward(self, grad_output: Array) -> Array:
        saved, size = self._pop_cache(grad_output)
        dx, dw, db = F.conv2d_backward(grad_output, saved, self.weight.data, size, self.stride,
                                       self.padding)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution: the adjoint (gradient w.r.t. input) of Conv2d.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or (h, w) pair, as in the Conv2d it inverts.
        stride: int or (h, w) pair, as in the Conv2d it inverts.
        padding: int or (h, w) pair, as in the Conv2d it inverts.
        output_padding: rows/columns added at the bottom/right (each < its stride), to pick
            one of the input sizes a strided Conv2d maps onto the same output size.
        bias: learn an additive bias per output channel.

    Shapes: input (N, C_in, H, W) -> output (N, C_out, OH, OW),
    ``OH = (H - 1)*SH - 2*PH + KH + output_padding[0]``; weight (C_in, C_out, KH, KW) and bias
    (C_out,), both ``~ U(+-1/sqrt(C_out*KH*KW))``.

    Forward and backward are `functional.conv_transpose2d` and
    `functional.conv_transpose2d_backward`: with gcol the im2col matrix of gy as
    ``(C_out*KH*KW, H*W*N)`` and x as ``(C_in, H*W*N)``,

        dx = conv2d(gy, W) (no bias),   dW = x @ gcol^T,   db = sum of gy over n, oh, ow

    Only the input ``x`` is kept between forward and backward.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                 bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias,
                         transposed=True)
        self.output_padding = to_pair(output_padding, "output_padding", type(self).__name__, 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride} in each dimension")

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        return tuple(F.conv_transpose_output_size(n, k, s, p, op) for n, k, s, p, op in zip(
            (H, W), self.kernel_size, self.stride, self.padding, self.output_padding))

    def forward(self, x: Array) -> Array:
        self._check(x)
        OH, OW = self.output_size(*x.shape[2:])
        if OH < 1 or OW < 1:
            raise ValueError(f"{self!r}: input size {tuple(x.shape[2:])} gives an empty output "
                             f"({OH}, {OW}); padding is too large for this kernel")
        b = None if self.bias is None else self.bias.data
        self._cache = x
        return F.conv_transpose2d(x, self.weight.data, b, self.stride, self.padding,
                                  self.output_padding)

    def backward(self, grad_output: Array) -> Array:
        x = self._pop_cache(grad_output)
        dx, dw, db = F.conv_transpose2d_backward(grad_output, x, self.weight.data, self.stride,
                                                 self.padding)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx
