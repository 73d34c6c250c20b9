"""Dropout, PReLU, Upsample / functional.interpolate, the losses and inplace= against PyTorch in
float64: forward, input gradient (random upstream gradient) and parameter gradients."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import functional as F, nn
from test_torch_reference import norm_rel

torch = pytest.importorskip("torch")
tnn = torch.nn
tF = torch.nn.functional


def side_by_side(ours, theirs, *inputs, tol=1e-12, upstream=None):
    """Forward and backward of a layer (or loss) and its PyTorch twin; gradient of the first
    input. Returns our and PyTorch's output."""
    y = ours(*inputs)
    g = np.random.default_rng(99).standard_normal(np.shape(y)) if upstream is None else upstream
    gx = ours.backward(g if np.ndim(y) else np.asarray(g))
    tx = torch.tensor(inputs[0], requires_grad=True)
    ty = theirs(tx, *(torch.tensor(a) for a in inputs[1:]))
    ty.backward(torch.tensor(g))
    assert tuple(np.shape(y)) == tuple(ty.shape)
    assert norm_rel(y, ty.detach().numpy()) < tol
    assert norm_rel(gx, tx.grad.numpy()) < tol
    return y, ty


@pytest.mark.parametrize("num_parameters,shape", [(1, (2, 3, 4, 5)), (3, (2, 3, 4, 5)),
                                                  (4, (6, 4)), (1, (7,))])
def test_prelu_matches_pytorch(num_parameters, shape):
    layer = nn.PReLU(num_parameters).double()
    tlayer = tnn.PReLU(num_parameters).double()
    assert list(layer.state_dict()) == list(tlayer.state_dict())
    np.testing.assert_array_equal(layer.weight.data, tlayer.weight.detach().numpy())   # init
    w = np.random.default_rng(1).uniform(-0.5, 1.0, num_parameters)
    layer.weight.data[...] = w
    tlayer.load_state_dict({"weight": torch.tensor(w)})
    side_by_side(layer, tlayer, np.random.default_rng(2).standard_normal(shape))
    assert norm_rel(layer.weight.grad, tlayer.weight.grad.numpy()) < 1e-12


@pytest.mark.parametrize("make,tmake", [
    (lambda: nn.ReLU(inplace=True), lambda: tnn.ReLU(inplace=True)),
    (lambda: nn.LeakyReLU(0.2, inplace=True), lambda: tnn.LeakyReLU(0.2, inplace=True)),
], ids=["relu", "leaky_relu"])
def test_inplace_activations_match_pytorch(make, tmake):
    layer, tlayer = make(), tmake()
    assert repr(layer) == repr(tlayer)
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    side_by_side(layer, lambda t: tlayer(t.clone()), x)       # PyTorch's in place needs a copy


class MaskFrom:
    """A generator for `functional.dropout` whose uniform draws keep exactly given entries."""

    def __init__(self, keep):
        self.keep = keep

    def random(self, shape, dtype):
        assert tuple(shape) == self.keep.shape
        return np.where(self.keep, 0.999, 0.0).astype(dtype)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_matches_pytorch_given_its_mask(p):
    x = np.random.default_rng(4).uniform(0.5, 1.5, (4, 3, 5, 6))      # no zeros: mask readable
    torch.manual_seed(0)
    tlayer = tnn.Dropout(p)
    ty_probe = tlayer(torch.tensor(x))
    keep = ty_probe.numpy() != 0
    torch.manual_seed(0)                                              # the same mask again
    layer = nn.Dropout(p)
    with sn.override(dropout=lambda x, p, training, rng: F.dropout(x, p, training, MaskFrom(keep))):
        side_by_side(layer, tlayer, x)
    assert repr(layer) == repr(tlayer)
    layer.eval()
    tlayer.eval()
    side_by_side(layer, tlayer, x)


INTERPOLATIONS = [
    dict(scale_factor=2, mode="bilinear"), dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(scale_factor=3, mode="bilinear"), dict(scale_factor=(1.5, 2.5), mode="bilinear"),
    dict(scale_factor=0.5, mode="bilinear"), dict(scale_factor=0.7, mode="bilinear", align_corners=True),
    dict(size=(11, 4), mode="bilinear"), dict(size=(5, 13), mode="bilinear", align_corners=True),
    dict(size=(1, 1), mode="bilinear", align_corners=True), dict(size=(1, 3), mode="bilinear"),
    dict(size=(7, 3), mode="nearest"), dict(size=(13, 10), mode="nearest"),
    dict(scale_factor=1.7, mode="nearest"), dict(scale_factor=(0.5, 3), mode="nearest"),
    dict(scale_factor=2.4, mode="nearest"), dict(scale_factor=(2, 3), mode="nearest"),
    dict(size=(10, 18), mode="nearest"),
]


@pytest.mark.parametrize("kwargs", INTERPOLATIONS, ids=[str(k) for k in INTERPOLATIONS])
def test_upsample_and_interpolate_match_pytorch(kwargs):
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 6))
    tlayer = tnn.Upsample(**kwargs)
    side_by_side(nn.Upsample(**kwargs), tlayer, x)
    y = F.interpolate(x, **kwargs)
    ty = tF.interpolate(torch.tensor(x), **kwargs)
    assert norm_rel(y, ty.numpy()) < 1e-12


REDUCTIONS = ["mean", "sum", "none"]


def loss_case(name, shape=(3, 4, 5), seed=6):
    r = np.random.default_rng(seed)
    if name == "bce":
        return r.uniform(0.02, 0.98, shape), r.random(shape)
    if name == "bce_logits":
        return r.standard_normal(shape) * 4, r.random(shape)
    return r.standard_normal(shape), r.standard_normal(shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ours,theirs,case", [
    (nn.MSELoss, tnn.MSELoss, "mse"), (nn.L1Loss, tnn.L1Loss, "l1"),
    (nn.BCELoss, tnn.BCELoss, "bce"), (nn.BCEWithLogitsLoss, tnn.BCEWithLogitsLoss, "bce_logits"),
], ids=["mse", "l1", "bce", "bce_logits"])
def test_losses_match_pytorch(ours, theirs, case, reduction):
    pred, target = loss_case(case)
    upstream = None if reduction == "none" else np.float64(1.7)
    side_by_side(ours(reduction=reduction), theirs(reduction=reduction), pred, target,
                 upstream=upstream)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_bce_losses_match_pytorch(reduction):
    r = np.random.default_rng(7)
    w = r.uniform(0.5, 2.0, (4, 5))
    pw = r.uniform(0.2, 4.0, 5)
    upstream = None if reduction == "none" else np.float64(0.6)
    pred, target = loss_case("bce")
    side_by_side(nn.BCELoss(w, reduction=reduction),
                 tnn.BCELoss(torch.tensor(w), reduction=reduction), pred, target, upstream=upstream)
    logits, target = loss_case("bce_logits")
    for kwargs in ({"pos_weight": pw}, {"weight": w, "pos_weight": pw}):
        tkwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
        side_by_side(nn.BCEWithLogitsLoss(reduction=reduction, **kwargs),
                     tnn.BCEWithLogitsLoss(reduction=reduction, **tkwargs), logits, target,
                     upstream=upstream)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_pytorch(reduction):
    r = np.random.default_rng(8)
    logits, target = r.standard_normal((6, 5)) * 3, r.integers(0, 5, 6)
    logits[0] = [800.0, -700.0, 0.0, 1.0, 2.0]          # exp would overflow: log-sum-exp
    upstream = None if reduction == "none" else np.float64(0.8)
    side_by_side(nn.CrossEntropyLoss(reduction=reduction), tnn.CrossEntropyLoss(reduction=reduction),
                 logits, target, upstream=upstream)


def test_bce_edges_match_pytorch():
    """Probabilities of exactly 0 and 1 (log clamped at -100) and logits of +-50."""
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.3])
    side_by_side(nn.BCELoss(reduction="none"), tnn.BCELoss(reduction="none"), x, t,
                 upstream=np.ones(5))
    z = np.array([-50.0, -20.0, 0.0, 20.0, 50.0])
    side_by_side(nn.BCEWithLogitsLoss(), tnn.BCEWithLogitsLoss(), z, t, upstream=np.float64(1.0),
                 tol=1e-10)
