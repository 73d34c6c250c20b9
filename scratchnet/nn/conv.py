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

The options (dilation, groups, Conv2d's padding='same' and padding_mode) are arguments of the
same ops (see `scratchnet.functional.conv`).
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..functional.conv import non_default
from ..functional.pad import PADDING_MODES, padding_problem
from ._checks import check_input, positive_int, to_pair
from .init import default_bound, uniform
from .module import Module, Parameter

Array = Any
IntOrPair = int | tuple[int, int]


class _ConvNd(Module):
    """Shared argument handling, initialisation and repr of the two convolution layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair, padding: IntOrPair | str, dilation: IntOrPair, groups: int,
                 bias: bool, padding_mode: str, transposed: bool):
        super().__init__()
        name = type(self).__name__
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = to_pair(kernel_size, "kernel_size", name, 1)
        self.stride = to_pair(stride, "stride", name, 1)
        self.dilation = to_pair(dilation, "dilation", name, 1)
        self.groups = positive_int(groups, "groups", name)
        for what, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"{name}: groups={groups} must divide {what} ({channels})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of "
                             f"{', '.join(map(repr, PADDING_MODES))}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str) and not transposed:
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a pair of "
                                 f"ints, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' needs stride 1 (as in PyTorch), got "
                                 f"stride {self.stride}")
            self.padding = padding
        else:
            self.padding = to_pair(padding, "padding", name, 0)
        KH, KW = self.kernel_size
        G = self.groups
        shape = ((in_channels, out_channels // G, KH, KW) if transposed
                 else (out_channels, in_channels // G, KH, KW))
        bound = default_bound(shape[1] * KH * KW)      # PyTorch: fan_in from weight dim 1
        self.weight = Parameter(uniform(shape, bound))
        self.bias = Parameter(uniform((out_channels,), bound)) if bias else None

    def _check(self, x: Array) -> None:
        check_input(self, x, f"(N, {self.in_channels}, H, W)", ndim=4, dim=1, size=self.in_channels)

    def _options(self) -> dict[str, Any]:
        """The options the ops get as keyword arguments (only those that are not defaults)."""
        return non_default(dilation=self.dilation, groups=self.groups,
                           padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W) inputs.

    Args:
        in_channels: C.
        out_channels: OC.
        kernel_size: int or (h, w) pair.
        stride: int or (h, w) pair.
        padding: int or (h, w) pair added on both sides; 'valid' (none) or 'same' (stride 1
            only: the output has the input's size; an odd total ``D*(K - 1)`` puts the extra
            row and column on the bottom and right, as PyTorch does).
        dilation: int or (h, w) pair, the spacing of the kernel's taps.
        groups: G, dividing C and OC: group g of the output channels reads group g of the
            input channels only (G = C: a depthwise convolution).
        bias: learn an additive bias per output channel.
        padding_mode: what the padding holds: 'zeros', 'reflect' (mirrored without repeating
            the edge; padding < the input size), 'replicate' (the edge pixel repeated) or
            'circular' (wrapped around).

    Shapes: input (N, C, H, W) -> output (N, OC, OH, OW),
    ``OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1``; weight (OC, C/G, KH, KW) and bias
    (OC,), both ``~ U(-1/sqrt(C/G*KH*KW), +1/sqrt(C/G*KH*KW))``.

    Forward and backward are `functional.conv2d_forward` and `functional.conv2d_backward`:
    with col the im2col matrix of x as ``(C*KH*KW, OH*OW*N)`` and gy as ``(OC, OH*OW*N)``,

        dW = gy @ col^T,   db = sum of gy over n, oh, ow,   dx = col2im(W^T @ gy)

    With groups the products run per group; with a padding_mode other than zeros the input
    is padded first (`functional.pad`) and dx folded back (`functional.pad_backward`).

    Only ``col`` and the input size are kept between forward and backward. On the CPU, large
    float32 layers take `scratchnet.blocked` instead: the same products a few output rows at
    a time, keeping the padded input rather than ``col`` (`blocked.use_blocked_cpu`; only
    without options: dilation 1, groups 1, zero padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: IntOrPair | str = 0, dilation: IntOrPair = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, transposed=False)

    def _padding(self) -> tuple[int, ...]:
        """The padding the ops get: (PH, PW), or (left, right, top, bottom) for 'same' with an
        odd total padding ``D*(K - 1)`` (the extra on the right and bottom, as in PyTorch)."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding != "same":
            return self.padding
        (th, tw) = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
        if th % 2 == 0 and tw % 2 == 0:
            return (th // 2, tw // 2)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)

    def forward(self, x: Array) -> Array:
        self._check(x)
        padding = self._padding()
        left, right, top, bottom = (padding if len(padding) == 4 else
                                    (padding[1], padding[1], padding[0], padding[0]))
        H, W = x.shape[2:]
        (DH, DW), (KH, KW) = self.dilation, self.kernel_size
        if H + top + bottom < DH * (KH - 1) + 1 or W + left + right < DW * (KW - 1) + 1:
            raise ValueError(f"{self!r}: input size ({H}, {W}) with padding {self.padding} is "
                             f"smaller than the kernel {self.kernel_size}"
                             + (f" dilated by {self.dilation}" if self.dilation != (1, 1) else ""))
        problem = padding_problem((H, W), (left, right, top, bottom), self.padding_mode)
        if problem is not None:
            raise ValueError(f"{self!r}: {problem}")
        b = None if self.bias is None else self.bias.data
        y, saved = F.conv2d_forward(x, self.weight.data, b, self.stride, padding,
                                    **self._options())
        self._cache = (saved, (H, W))
        return y

    def backward(self, grad_output: Array) -> Array:
        saved, size = self._pop_cache(grad_output)
        dx, dw, db = F.conv2d_backward(grad_output, saved, self.weight.data, size, self.stride,
                                       self._padding(), **self._options())
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
        output_padding: rows/columns added at the bottom/right (each < its stride or its
            dilation), to pick one of the input sizes a strided Conv2d maps onto the same
            output size.
        groups: G, dividing C_in and C_out, as in the Conv2d it inverts.
        bias: learn an additive bias per output channel.
        dilation: int or (h, w) pair, as in the Conv2d it inverts.
        padding_mode: 'zeros' only (as in PyTorch).

    Shapes: input (N, C_in, H, W) -> output (N, C_out, OH, OW),
    ``OH = (H - 1)*SH - 2*PH + DH*(KH - 1) + output_padding[0] + 1``; weight
    (C_in, C_out/G, KH, KW) and bias (C_out,), both ``~ U(+-1/sqrt(C_out/G*KH*KW))``.

    Forward and backward are `functional.conv_transpose2d` and
    `functional.conv_transpose2d_backward`: with gcol the im2col matrix of gy as
    ``(C_out*KH*KW, H*W*N)`` and x as ``(C_in, H*W*N)``,

        dx = conv2d(gy, W) (no bias),   dW = x @ gcol^T,   db = sum of gy over n, oh, ow

    Only the input ``x`` is kept between forward and backward.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                 groups: int = 1, bias: bool = True, dilation: IntOrPair = 1,
                 padding_mode: str = "zeros"):
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: padding_mode must be 'zeros' (the only one PyTorch "
                             f"supports for transposed convolutions), got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, transposed=True)
        self.output_padding = to_pair(output_padding, "output_padding", type(self).__name__, 0)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride,
                                                    self.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride} or dilation {self.dilation} in each "
                             "dimension")

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        return tuple(F.conv_transpose_output_size(n, k, s, p, op, d)
                     for n, k, s, p, op, d in zip((H, W), self.kernel_size, self.stride,
                                                  self.padding, self.output_padding,
                                                  self.dilation))

    def forward(self, x: Array) -> Array:
        self._check(x)
        OH, OW = self.output_size(*x.shape[2:])
        if OH < 1 or OW < 1:
            raise ValueError(f"{self!r}: input size {tuple(x.shape[2:])} gives an empty output "
                             f"({OH}, {OW}); padding is too large for this kernel")
        b = None if self.bias is None else self.bias.data
        self._cache = x
        return F.conv_transpose2d(x, self.weight.data, b, self.stride, self.padding,
                                  self.output_padding, **self._options())

    def backward(self, grad_output: Array) -> Array:
        x = self._pop_cache(grad_output)
        dx, dw, db = F.conv_transpose2d_backward(grad_output, x, self.weight.data, self.stride,
                                                 self.padding, **self._options())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx
