"""Conv2d and ConvTranspose2d with options against PyTorch in float64 (torch optional): forward,
input gradient, weight and bias gradients over a grid of kernel, stride, padding, dilation,
groups and padding_mode; the repr and the state_dict's keys and shapes."""
import itertools
import warnings

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn

torch = pytest.importorskip("torch")

KERNELS = [1, 2, 3, (2, 3)]
STRIDES = [1, 2, (2, 1)]
PADDINGS = [0, 1, (2, 1), "same", "valid"]
DILATIONS = [1, 2, (1, 3)]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Hundreds of tiny layers: PyTorch's threads only cost time here."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def norm_rel(a, b):
    """||a - b|| / ||b|| over a whole tensor (element-wise ratios blow up on entries that are
    zero up to rounding)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def assert_same_as_torch(ours, theirs, x, rng, what):
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # PyTorch: 'same' with an even kernel copies x
        ty = theirs(tx)
    y = ours(x)
    assert y.shape == tuple(ty.shape), what
    g = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(g))
    gx = ours.backward(g)
    assert norm_rel(y, ty.detach().numpy()) < 1e-13, what
    assert norm_rel(gx, tx.grad.numpy()) < 1e-13, what
    assert norm_rel(ours.weight.grad, theirs.weight.grad.numpy()) < 1e-13, what
    if ours.bias is not None:
        assert norm_rel(ours.bias.grad, theirs.bias.grad.numpy()) < 1e-13, what


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_grid_matches_pytorch(rng, padding_mode, groups):
    checked = 0
    for i, (k, s, p, d) in enumerate(itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS)):
        if p == "same" and s != 1:
            continue
        sn.manual_seed(i)
        kwargs = dict(stride=s, padding=p, dilation=d, groups=groups, padding_mode=padding_mode,
                      bias=i % 3 != 0)
        ours = nn.Conv2d(4, 6, k, **kwargs).double()
        theirs = torch.nn.Conv2d(4, 6, k, **kwargs).double()
        x = rng.standard_normal((2, 4, 9, 8))      # reflect: every padding here < 8
        assert_same_as_torch(ours, theirs, x, rng, (k, s, p, d))
        checked += 1
    assert checked >= 100


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose2d_grid_matches_pytorch(rng, groups):
    checked = 0
    grid = itertools.product(KERNELS, STRIDES, [0, 1, (1, 0)], DILATIONS, [0, 1, (0, 2)])
    for i, (k, s, p, d, op) in enumerate(grid):
        (SH, SW), (DH, DW), (OPH, OPW) = _pair(s), _pair(d), _pair(op)
        if OPH >= max(SH, DH) or OPW >= max(SW, DW):
            continue                                      # an error in both (tested elsewhere)
        (KH, KW), (PH, PW) = _pair(k), _pair(p)
        H, W = 4, 3
        if ((H - 1) * SH - 2 * PH + DH * (KH - 1) + OPH + 1 < 1
                or (W - 1) * SW - 2 * PW + DW * (KW - 1) + OPW + 1 < 1):
            continue                                      # an empty output
        sn.manual_seed(i)
        kwargs = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d,
                      bias=i % 3 != 0)
        ours = nn.ConvTranspose2d(4, 6, k, **kwargs).double()
        theirs = torch.nn.ConvTranspose2d(4, 6, k, **kwargs).double()
        assert_same_as_torch(ours, theirs, rng.standard_normal((2, 4, H, W)), rng,
                             (k, s, p, d, op))
        checked += 1
    assert checked >= 100


@pytest.mark.parametrize("make", [
    lambda m: m.Conv2d(4, 8, 3, padding="same", dilation=2, groups=4, padding_mode="reflect"),
    lambda m: m.Conv2d(6, 4, (2, 3), stride=(2, 1), padding="valid", groups=2, bias=False,
                       padding_mode="replicate"),
    lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1, groups=2, dilation=(1, 2)),
    lambda m: m.Sequential(m.Conv2d(2, 4, 3, padding=1, padding_mode="circular"),
                           m.Conv2d(4, 4, 3, groups=4)),
])
def test_repr_state_dict_keys_and_shapes_as_pytorch(make):
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == expected
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def test_default_initialisation_bound_uses_the_grouped_fan_in():
    sn.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, groups=4)          # fan_in = 8/4 * 3 * 3 = 18, as PyTorch
    bound = 1 / np.sqrt(18)
    assert np.abs(conv.weight.data).max() <= bound < 1.25 * np.abs(conv.weight.data).max()
    tconv = torch.nn.Conv2d(8, 8, 3, groups=4)
    assert abs(tconv.weight).max().item() <= bound
