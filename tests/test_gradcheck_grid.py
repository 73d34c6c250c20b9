"""The gradient-check grid: every layer against central differences in float64.

Each case checks the gradient w.r.t. the input and every parameter, with a random upstream
gradient. Together the cases cover kernel sizes 1-5 (square and not), strides 1-3 (equal
and unequal), paddings 0-2, every legal output_padding, batch 1 and 2, one and several
channels, bias on and off, and non-square inputs.
"""
import itertools

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.functional import conv_transpose_output_size
from scratchnet.models import conv_autoencoder, dense_autoencoder

KERNELS = [1, 2, 3, 4, 5, (3, 1), (2, 5)]
STRIDES = [1, 2, 3, (2, 1), (1, 3)]
PADDINGS = [0, 1, 2, (2, 0)]
GRID = list(itertools.product(KERNELS, STRIDES, PADDINGS))


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _variant(i):
    """Cycle batch size, channels, bias and a non-square input over the grid's cases."""
    batch, c_in, c_out = [(1, 1, 1), (2, 3, 2), (2, 1, 3), (1, 2, 4)][i % 4]
    return batch, c_in, c_out, i % 3 != 0, (6 + i % 3, 7 - i % 2)


@pytest.mark.parametrize("case", range(len(GRID)))
def test_conv2d_grid(xp, case):
    kernel, stride, padding = GRID[case]
    batch, c_in, c_out, bias, (H, W) = _variant(case)
    sn.manual_seed(case)
    layer = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias).to(xp.__name__)
    x = xp.asarray(np.random.default_rng(case).standard_normal((batch, c_in, H, W)))
    sn.gradcheck(layer, x, seed=case)


@pytest.mark.parametrize("case", range(len(GRID)))
def test_conv_transpose2d_grid_every_output_padding(xp, case):
    kernel, stride, padding = GRID[case]
    batch, c_in, c_out, bias, (H, W) = _variant(case)
    H, W = H - 2, W - 3          # transposed convs grow the input: keep the checks small
    (KH, KW), (SH, SW), (PH, PW) = _pair(kernel), _pair(stride), _pair(padding)
    checked = 0
    for op in itertools.product(range(SH), range(SW)):
        if min(conv_transpose_output_size(H, KH, SH, PH, op[0]),
               conv_transpose_output_size(W, KW, SW, PW, op[1])) < 1:
            continue
        sn.manual_seed(case)
        layer = nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding,
                                   output_padding=op, bias=bias).to(xp.__name__)
        x = xp.asarray(np.random.default_rng(case).standard_normal((batch, c_in, H, W)))
        sn.gradcheck(layer, x, seed=case)
        checked += 1
    assert checked or (KH - 2 * PH < 1 or KW - 2 * PW < 1)


@pytest.mark.parametrize("layer", [
    lambda: nn.ReLU(), lambda: nn.LeakyReLU(0.1), lambda: nn.Sigmoid(), lambda: nn.Tanh(),
    lambda: nn.Linear(5, 3), lambda: nn.Linear(4, 6, bias=False), lambda: nn.Flatten(),
    lambda: nn.Flatten(2, 3),
], ids=["relu", "leaky_relu", "sigmoid", "tanh", "linear", "linear_nobias", "flatten",
        "flatten_2_3"])
def test_other_layers(xp, layer):
    sn.manual_seed(0)
    module = layer().to(xp.__name__)
    shape = (3, 5) if isinstance(module, nn.Linear) and module.in_features == 5 else \
        (2, 4) if isinstance(module, nn.Linear) else (2, 3, 4, 5)
    x = np.random.default_rng(1).standard_normal(shape) * 3
    if not isinstance(module, nn.Linear):
        x[np.abs(x) < 1e-3] = 0.5        # keep ReLU-type kinks out of the eps-neighbourhood
    sn.gradcheck(module, xp.asarray(x))


def test_unflatten(xp):
    sn.gradcheck(nn.Unflatten(1, (2, 3)), xp.asarray(np.random.default_rng(2).standard_normal((2, 6))))


def test_mse_loss(xp):
    r = np.random.default_rng(3)
    pred, target = xp.asarray(r.random((2, 1, 5, 4))), xp.asarray(r.random((2, 1, 5, 4)))
    report = sn.gradcheck(nn.MSELoss(), pred, target)
    assert [c.name for c in report.checks] == ["input"]     # the target is not differentiated


def _smallest_relu_input(model, x):
    """min |pre-activation| over every ReLU: finite differences are only valid away from 0."""
    smallest = np.inf
    for layer in list(model.encoder) + list(model.decoder):
        if isinstance(layer, nn.ReLU):
            smallest = min(smallest, float(abs(x).min()))
        x = layer(x)
    return smallest


def test_whole_conv_autoencoder(xp):
    for seed in range(7, 100):     # the first seed whose ReLU inputs all stay 10*eps from 0
        sn.manual_seed(seed)
        model = conv_autoencoder().double().to(xp.__name__)
        x = xp.asarray(np.random.default_rng(seed).random((2, 1, 28, 28)))
        if _smallest_relu_input(model, x) > 1e-5:
            break
    report = sn.gradcheck(model, x, max_elementwise=160, n_directions=3, n_samples=16)
    names = [c.name for c in report.checks]
    assert names == ["input"] + [n for n, _ in model.named_parameters()]
    assert report.passed


def test_whole_dense_autoencoder(xp):
    sn.manual_seed(8)
    model = dense_autoencoder(hidden=(32, 8)).to(xp.__name__)
    x = xp.asarray(np.random.default_rng(8).random((3, 1, 28, 28)))
    sn.gradcheck(model, x, max_elementwise=64, n_directions=3, n_samples=16)


def test_sequential_with_loss_chain(xp):
    """Model + MSE: the chain rule across the loss boundary (grad_output of a 0-d loss)."""
    sn.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(),
                          nn.ConvTranspose2d(2, 1, 2, stride=2), nn.Sigmoid()).to(xp.__name__)

    class Objective(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.model, self.loss, self.target = model, nn.MSELoss(), target

        def forward(self, x):
            return self.loss(self.model(x), self.target)

        def backward(self, g):
            return self.model.backward(self.loss.backward(g))

    r = np.random.default_rng(9)
    target = xp.asarray(r.random((2, 1, 8, 10)))
    sn.gradcheck(Objective(target), xp.asarray(r.random((2, 1, 4, 5))))
