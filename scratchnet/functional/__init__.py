"""Pure array functions: every layer's forward pass and its backward pass, side by side.

Each layer of `scratchnet.nn` checks its arguments and calls one function of this package
for its forward pass and one for its backward pass; the forward returns what the backward
needs (CS231n's pattern), and the backward returns the gradients (the layer adds the
parameters' ones into ``param.grad``). Every function here is an *op* of
`scratchnet.ops`, so ``scratchnet.override(relu_backward=my_fn)`` puts your own version
inside the library's layers. The code here is the readable reference: the fused GPU
kernels (`scratchnet.kernels`) and the blocked CPU convolution (`scratchnet.blocked`) are
registered as faster bodies of these ops and held to them by the tests.

| module | functions |
|---|---|
| `functional.conv` | `im2col`, `col2im`, `conv2d`, `conv2d_grad_weight`, `conv2d_grad_input`, `bias_grad`, `conv2d_forward`, `conv2d_backward`, `conv_transpose2d`, `conv_transpose2d_backward` |
| `functional.pad` | `pad`, `pad_backward` (zeros, reflect, replicate, circular) |
| `functional.pool` | `max_pool2d`, `avg_pool2d`, `upsample_nearest` and their backward passes |
| `functional.interpolate` | `interpolate`, `interpolate_backward` (nearest and bilinear resizing) |
| `functional.norm` | `batch_norm_forward`, `batch_norm_backward`, `batch_norm_inference`, `batch_norm_update_stats`, `channel_sums` |
| `functional.activation` | `relu`, `leaky_relu`, `sigmoid`, `tanh`, `prelu` and their backward passes |
| `functional.dropout` | `dropout`, `dropout_backward` |
| `functional.linear` | `linear`, `linear_backward`, `flatten`, `unflatten`, `flatten_backward` |
| `functional.loss` | `mse_loss`, `mse_backward`, `mean_square`, `l1_loss`, `binary_cross_entropy`, `binary_cross_entropy_with_logits`, `cross_entropy` and their backward passes |
| `functional.skip` | `cat_channels`, `skip_split`, `skip_sum` |

Notation (shape letters used throughout):

| letters | meaning | letters | meaning |
|---|---|---|---|
| N | batch size | C | input channels |
| H, W | input height and width | OC | output channels |
| KH, KW | kernel height and width | SH, SW | strides |
| PH, PW | zero padding | OH, OW | output height and width |
| K | ``C*KH*KW``, one flattened receptive field | L | ``OH*OW``, the output positions |
| DH, DW | dilation | G | groups |

The functions take and return arrays of any backend; they never call NumPy directly.
"""
from ..layout import (batch_last, batch_last_apply, conv_output_size,
                      conv_transpose_output_size)
from .activation import (leaky_relu, leaky_relu_backward, prelu, prelu_backward, relu,
                         relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward)
from .conv import (bias_grad, col2im, conv2d, conv2d_backward, conv2d_forward, conv2d_grad_input,
                   conv2d_grad_weight, conv_transpose2d, conv_transpose2d_backward, im2col)
from .dropout import dropout, dropout_backward
from .interpolate import (interpolate, interpolate_args, interpolate_backward,
                          interpolate_output_size, interpolation_matrix)
from .linear import flatten, flatten_backward, linear, linear_backward, unflatten
from .loss import (REDUCTIONS, binary_cross_entropy, binary_cross_entropy_backward,
                   binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
                   cross_entropy, cross_entropy_backward, l1_loss, l1_loss_backward, mean_square,
                   mse_backward, mse_loss)
from .pad import pad, pad_backward
from .norm import (batch_norm_backward, batch_norm_forward, batch_norm_inference,
                   batch_norm_update_stats, channel_sums)
from .pool import (avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward,
                   upsample_nearest, upsample_nearest_backward)
from .skip import cat_channels, skip_split, skip_sum

__all__ = [
    "conv_output_size", "conv_transpose_output_size", "batch_last", "batch_last_apply",
    "im2col", "col2im", "conv2d", "conv2d_grad_weight", "conv2d_grad_input", "bias_grad",
    "conv2d_forward", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "pad", "pad_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "upsample_nearest", "upsample_nearest_backward",
    "batch_norm_forward", "batch_norm_backward", "batch_norm_inference",
    "batch_norm_update_stats", "channel_sums",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "prelu", "prelu_backward", "dropout", "dropout_backward",
    "interpolate", "interpolate_backward", "interpolate_args", "interpolate_output_size",
    "interpolation_matrix",
    "linear", "linear_backward", "flatten", "unflatten", "flatten_backward",
    "mse_loss", "mse_backward", "mean_square", "l1_loss", "l1_loss_backward",
    "binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward", "cross_entropy", "cross_entropy_backward",
    "REDUCTIONS",
    "cat_channels", "skip_split", "skip_sum",
]
