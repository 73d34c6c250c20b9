"""Layers with hand-written backward passes, PyTorch's names and semantics.

The course's chapters on these layers:

- [1. A chain by hand](../learn/01-chain.md): Linear, ReLU, MSELoss, CrossEntropyLoss, Sequential
- [3. Convolution](../learn/03-convolution.md): Conv2d
- [4. Transposed convolution](../learn/04-transposed-convolution.md): ConvTranspose2d
- [5. Element-wise layers and pooling](../learn/05-elementwise-and-pooling.md): ReLU, Sigmoid,
  MaxPool2d, AvgPool2d, Upsample
- [6. Batch norm](../learn/06-batch-norm.md): BatchNorm2d
- [7. Skip connections](../learn/07-skip-connections.md): one cache per layer instance
"""
from . import init, utils
from .activation import LeakyReLU, PReLU, ReLU, Sigmoid, Tanh
from .container import Identity, ModuleList
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .linear import Flatten, Linear, Unflatten
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss
from .module import (Module, Parameter, RemovableHandle, Sequential, eval_mode, is_grad_enabled,
                     no_grad)
from .normalization import BatchNorm2d
from .pooling import AvgPool2d, MaxPool2d, Upsample

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "Linear", "Flatten",
           "Unflatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "MSELoss", "BatchNorm2d",
           "MaxPool2d", "AvgPool2d", "Upsample", "eval_mode", "no_grad", "is_grad_enabled",
           "Identity", "ModuleList", "RemovableHandle", "init", "utils", "Dropout", "PReLU",
           "L1Loss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"]
