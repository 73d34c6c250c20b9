"""Faster bodies of `relu`, `relu_backward`, `sigmoid` and `sigmoid_backward` on CuPy
(`scratchnet.functional.activation`): one kernel each, keeping a batch-last layout
(`scratchnet.layout.batch_last_apply`), which CuPy's own kernels would turn into C order."""
from __future__ import annotations

import functools
from typing import Any

from ..layout import batch_last_apply
from ..ops import register_faster
from . import ElementwiseOp, on_gpu

Array = Any

# NaN stays NaN, as with maximum(x, 0).
_RELU = ElementwiseOp("T x", "T y", "y = (x > 0 || x != x) ? x : (T)0", "scratchnet_relu")
# gy * [x > 0], a NaN in gy included (NaN * 0 is NaN, as in the array code).
_RELU_BACKWARD = ElementwiseOp("T gy, T x", "T gx", "gx = x > 0 ? gy : gy * (T)0",
                               "scratchnet_relu_backward")
_SIGMOID = ElementwiseOp("T x", "T y", "T e = exp(-fabs(x)); y = x >= 0 ? 1 / (1 + e) : e / (1 + e)",
                         "scratchnet_sigmoid")
_SIGMOID_BACKWARD = ElementwiseOp("T gy, T y", "T gx", "gx = gy * y * (1 - y)",
                                  "scratchnet_sigmoid_grad")


for _name, _kernel in (("relu", _RELU), ("relu_backward", _RELU_BACKWARD),
                      ("sigmoid", _SIGMOID), ("sigmoid_backward", _SIGMOID_BACKWARD)):
    # the kernel on the batch-last buffers: batch_last_apply(kernel, *the op's arguments)
    register_faster(_name, on_gpu)(functools.partial(batch_last_apply, _kernel))
