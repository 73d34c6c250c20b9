"""Dropout, PReLU, bilinear Upsample / functional.interpolate, the losses' reductions, L1Loss,
BCELoss, BCEWithLogitsLoss, CrossEntropyLoss and inplace= on the activations: gradient checks
(float64, random upstream gradient, input and every parameter), semantics, one op each way,
one-line errors and float32 runs, on every backend."""
import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, functional as F, nn
from scratchnet.backend import to_numpy
from scratchnet.random import default_rng
from test_ops import recording


def away_from_zero(shape, seed, low=0.05):
    """Normal values with |x| >= low: finite differences are valid away from a kink at 0."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < low, np.sign(x + 1e-30) * (low + np.abs(x)), x)


def fixed_masks(xp, seed=0):
    """An override of the dropout op that draws every mask from one fixed stream, so that the
    forward passes of a gradient check all drop the same entries."""
    return {"dropout": lambda x, p, training, rng: F.dropout(x, p, training,
                                                              None if rng is None else
                                                              default_rng(seed, xp))}


# --- gradient checks -----------------------------------------------------------------------
@pytest.mark.parametrize("num_parameters,shape", [(1, (2, 3, 4, 5)), (3, (2, 3, 4, 5)),
                                                  (4, (5, 4)), (1, (7,))])
def test_prelu_gradcheck(xp, num_parameters, shape):
    layer = nn.PReLU(num_parameters)
    layer.weight.data[...] = np.linspace(-0.5, 0.7, num_parameters)
    report = sn.gradcheck(layer.to(xp.__name__), xp.asarray(away_from_zero(shape, 1)))
    assert [c.name for c in report.checks] == ["input", "weight"]


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout_gradcheck_with_a_fixed_mask(xp, p):
    x = xp.asarray(np.random.default_rng(2).standard_normal((3, 4, 5)))
    with sn.override(**fixed_masks(xp)):
        sn.gradcheck(nn.Dropout(p), x)
    sn.gradcheck(nn.Dropout(p).eval(), x)


UPSAMPLES = [
    dict(scale_factor=2, mode="bilinear"), dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(scale_factor=(1.5, 2.5), mode="bilinear"), dict(scale_factor=0.5, mode="bilinear"),
    dict(size=(5, 9), mode="bilinear", align_corners=True), dict(size=(1, 1), mode="bilinear"),
    dict(size=(7, 3), mode="nearest"), dict(scale_factor=1.7, mode="nearest"),
    dict(scale_factor=(2, 3)),
]


@pytest.mark.parametrize("kwargs", UPSAMPLES, ids=[str(k) for k in UPSAMPLES])
def test_upsample_gradcheck(xp, kwargs):
    x = xp.asarray(np.random.default_rng(3).standard_normal((2, 2, 4, 6)))
    sn.gradcheck(nn.Upsample(**kwargs), x)


LOSSES = [nn.MSELoss, nn.L1Loss, nn.BCELoss, nn.BCEWithLogitsLoss, nn.CrossEntropyLoss]


def loss_inputs(make, xp, shape=(2, 3, 4), seed=4):
    r = np.random.default_rng(seed)
    if make is nn.BCELoss:
        return xp.asarray(r.uniform(0.05, 0.95, shape)), xp.asarray(r.random(shape))
    if make is nn.BCEWithLogitsLoss:
        return xp.asarray(r.standard_normal(shape) * 3), xp.asarray(r.random(shape))
    if make is nn.CrossEntropyLoss:                   # logits (N, C), class indices (N,)
        n, c = shape[0], math.prod(shape[1:])
        return xp.asarray(r.standard_normal((n, c)) * 3), xp.asarray(r.integers(0, c, n))
    return xp.asarray(away_from_zero(shape, seed)), xp.asarray(np.zeros(shape))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("make", LOSSES, ids=[m.__name__ for m in LOSSES])
def test_loss_gradcheck(xp, make, reduction):
    report = sn.gradcheck(make(reduction=reduction), *loss_inputs(make, xp))
    assert [c.name for c in report.checks] == ["input"]


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_weighted_bce_gradcheck(xp, reduction):
    r = np.random.default_rng(5)
    w, pw = xp.asarray(r.uniform(0.5, 2, (1, 4))), xp.asarray(r.uniform(0.5, 3, 4))
    sn.gradcheck(nn.BCELoss(w, reduction=reduction), *loss_inputs(nn.BCELoss, xp, (3, 4)))
    for kwargs in ({"pos_weight": pw}, {"weight": w, "pos_weight": pw}, {"weight": w}):
        sn.gradcheck(nn.BCEWithLogitsLoss(reduction=reduction, **kwargs),
                     *loss_inputs(nn.BCEWithLogitsLoss, xp, (3, 4)))


def test_inplace_activations_gradcheck_and_leave_the_input(xp):
    x = xp.asarray(away_from_zero((2, 3, 4), 6))
    before = to_numpy(x).copy()
    for layer in (nn.ReLU(inplace=True), nn.LeakyReLU(0.2, inplace=True),
                  nn.Dropout(0.5, inplace=True)):
        y = layer(x)
        np.testing.assert_array_equal(to_numpy(x), before)          # not overwritten
        assert y is not x
    sn.gradcheck(nn.ReLU(inplace=True), x)
    sn.gradcheck(nn.LeakyReLU(0.2, inplace=True), x)


# --- semantics -----------------------------------------------------------------------------
def test_dropout_masks_scale_and_reproducibility(xp):
    x = xp.ones((200, 500), dtype=xp.float32)
    sn.manual_seed(7)
    layer = nn.Dropout(0.3)
    y1, y2 = to_numpy(layer(x)), to_numpy(layer(x))
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y1 == 0).mean() - 0.3) < 0.01 and abs(y1.mean() - 1) < 0.02
    assert (y1 != y2).any()                                           # a new mask each call
    g = xp.asarray(np.random.default_rng(0).standard_normal((200, 500)).astype(np.float32))
    np.testing.assert_array_equal(to_numpy(layer.backward(g)),
                                  np.where(y2 != 0, to_numpy(g) * np.float32(1 / 0.7), 0))
    sn.manual_seed(7)
    again = nn.Dropout(0.3)
    np.testing.assert_array_equal(to_numpy(again(x)), y1)             # the seed fixes the masks
    assert layer.eval()(x) is x                                       # eval: the identity
    np.testing.assert_array_equal(to_numpy(nn.Dropout(1.0)(x)), 0)
    assert nn.Dropout(0.0)(x) is x


def test_dropout_does_not_change_the_weights_a_seed_gives():
    sn.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    sn.manual_seed(0)
    with_dropout = nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 2))
    np.testing.assert_array_equal(plain[1].weight.data, with_dropout[2].weight.data)


def test_prelu_layout_init_and_values():
    layer = nn.PReLU(3, init=0.1)
    assert layer.weight.shape == (3,) and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.float32(0.1))
    assert list(layer.state_dict()) == ["weight"]
    np.testing.assert_array_equal(nn.PReLU().weight.data, [0.25])
    x = np.array([[-2.0, 3.0, -1.0]], dtype=np.float32)
    layer.weight.data[...] = [0.5, 0.5, 2.0]
    np.testing.assert_array_equal(layer(x), [[-1.0, 3.0, -2.0]])


def test_bilinear_reproduces_a_linear_ramp_and_nearest_picks_pixels(xp):
    ramp = xp.asarray(np.arange(4.0)[None, None, None, :] * np.ones((1, 1, 3, 1)))
    y = F.interpolate(ramp, size=(3, 7), mode="bilinear", align_corners=True)
    np.testing.assert_allclose(to_numpy(y)[0, 0], np.tile(np.linspace(0, 3, 7), (3, 1)), atol=1e-14)
    x = xp.asarray(np.arange(6.0).reshape(1, 1, 2, 3))
    np.testing.assert_array_equal(to_numpy(F.interpolate(x, size=(2, 2)))[0, 0], [[0, 1], [3, 4]])
    np.testing.assert_array_equal(to_numpy(F.interpolate(x, scale_factor=2)),
                                  to_numpy(F.upsample_nearest(x, (2, 2))))


def test_interpolate_backward_is_the_adjoint(xp):
    r = np.random.default_rng(8)
    x, g = xp.asarray(r.standard_normal((2, 3, 5, 4))), xp.asarray(r.standard_normal((2, 3, 7, 9)))
    for kwargs in (dict(mode="bilinear"), dict(mode="bilinear", align_corners=True),
                   dict(mode="nearest")):
        y = F.interpolate(x, size=(7, 9), **kwargs)
        gx = F.interpolate_backward(g, (5, 4), None, **kwargs)
        assert float((y * g).sum()) == pytest.approx(float((x * gx).sum()), rel=1e-12)


def test_mse_mean_is_unchanged_bit_for_bit(xp):
    r = np.random.default_rng(9)
    p, t = (xp.asarray(r.standard_normal((4, 1, 5, 5)).astype(np.float32)) for _ in range(2))
    mse = nn.MSELoss()
    loss = mse(p, t)
    diff = p - t
    assert to_numpy(loss) == to_numpy(F.mean_square(diff))
    np.testing.assert_array_equal(to_numpy(mse.backward()), to_numpy(diff * (2.0 / diff.size * 1.0)))
    g = xp.asarray(np.float32(0.7))
    mse(p, t)
    np.testing.assert_array_equal(to_numpy(mse.backward(g)), to_numpy(diff * (2.0 / diff.size) * g))


def test_reductions_by_hand():
    p = np.array([[1.0, -2.0], [3.0, 0.5]])
    t = np.zeros((2, 2))
    assert float(nn.MSELoss(reduction="sum")(p, t)) == 14.25
    np.testing.assert_array_equal(nn.MSELoss(reduction="none")(p, t), p ** 2)
    assert float(nn.L1Loss()(p, t)) == 6.5 / 4
    assert float(nn.L1Loss(reduction="sum")(p, t)) == 6.5
    l1 = nn.L1Loss(reduction="none")
    np.testing.assert_array_equal(l1(p, t), abs(p))
    np.testing.assert_array_equal(l1.backward(np.full((2, 2), 2.0)), 2 * np.sign(p))


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    loss = nn.BCEWithLogitsLoss(reduction="none")
    values = loss(x, t)
    np.testing.assert_allclose(values, [1000.0, np.log1p(np.exp(-30)), np.log(2),
                                        np.log1p(np.exp(-30)), 1000.0], rtol=1e-12)
    grad = loss.backward(np.ones(5))
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [-1.0, 0.0, -0.5, 0.0, 1.0], atol=1e-12)
    bce = nn.BCELoss(reduction="none")                   # log clamped at -100, as in PyTorch
    np.testing.assert_array_equal(bce(np.array([0.0, 1.0]), np.array([1.0, 0.0])), [100.0, 100.0])
    assert np.isfinite(bce.backward(np.ones(2))).all()


# --- one op each way -----------------------------------------------------------------------
NEW_LAYERS = [
    (lambda: nn.PReLU(2), (2, 2, 3), "prelu", "prelu_backward"),
    (lambda: nn.Dropout(0.5), (2, 3), "dropout", "dropout_backward"),
    (lambda: nn.Dropout(0.5).eval(), (2, 3), "dropout", "dropout_backward"),
    (lambda: nn.ReLU(inplace=True), (2, 3), "relu", "relu_backward"),
    (lambda: nn.LeakyReLU(inplace=True), (2, 3), "leaky_relu", "leaky_relu_backward"),
    (lambda: nn.Upsample(2, "bilinear"), (1, 2, 3, 3), "interpolate", "interpolate_backward"),
    (lambda: nn.Upsample(size=5), (1, 2, 3, 3), "interpolate", "interpolate_backward"),
    (lambda: nn.Upsample(2.0), (1, 2, 3, 3), "upsample_nearest", "upsample_nearest_backward"),
]


@pytest.mark.parametrize("make,shape,forward,backward", NEW_LAYERS,
                         ids=[f"{f}-{i}" for i, (_, _, f, _) in enumerate(NEW_LAYERS)])
def test_each_new_layer_calls_one_op_each_way(make, shape, forward, backward):
    layer = make().double()
    x = np.random.default_rng(0).standard_normal(shape)
    calls: list[str] = []
    with sn.override(**recording(calls)):
        y = layer(x)
        n = len(calls)
        layer.backward(np.ones_like(y))
    assert calls[0] == forward and n == 1 and calls[n:] == [backward], calls


@pytest.mark.parametrize("make,forward,backward", [
    (lambda: nn.MSELoss(reduction="sum"), "mse_loss", "mse_backward"),
    (nn.L1Loss, "l1_loss", "l1_loss_backward"),
    (nn.BCELoss, "binary_cross_entropy", "binary_cross_entropy_backward"),
    (nn.BCEWithLogitsLoss, "binary_cross_entropy_with_logits",
     "binary_cross_entropy_with_logits_backward"),
    (nn.CrossEntropyLoss, "cross_entropy", "cross_entropy_backward"),
])
def test_each_loss_calls_one_op_each_way(make, forward, backward):
    loss = make()
    calls: list[str] = []
    x = np.full((2, 3), 0.4)
    with sn.override(**recording(calls)):
        loss(x, np.ones(2, int) if make is nn.CrossEntropyLoss else np.ones((2, 3)))
        n = len(calls)
        loss.backward()
    assert calls[0] == forward and calls[n] == backward, calls


# --- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: nn.Dropout(1.5), r"Dropout: p must be a finite number in \[0, 1\], got 1.5"),
    (lambda: nn.Dropout(-0.1), r"p must be a finite number in \[0, 1\]"),
    (lambda: nn.Dropout("0.5"), r"p must be a finite number"),
    (lambda: nn.Dropout(0.5, inplace="yes"), "Dropout: inplace must be True or False"),
    (lambda: nn.ReLU(inplace=1), "ReLU: inplace must be True or False, got 1"),
    (lambda: nn.LeakyReLU(0.1, inplace=None), "LeakyReLU: inplace must be True or False"),
    (lambda: nn.PReLU(0), "PReLU: num_parameters must be a positive int, got 0"),
    (lambda: nn.PReLU(init=float("nan")), "PReLU: init must be a finite number"),
    (lambda: nn.MSELoss(reduction="avg"), "MSELoss: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: nn.L1Loss(reduction=None), "L1Loss: reduction must be"),
    (lambda: nn.BCELoss(reduction="elementwise"), "BCELoss: reduction must be"),
    (lambda: nn.BCEWithLogitsLoss(reduction="max"), "BCEWithLogitsLoss: reduction must be"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), "CrossEntropyLoss: reduction must be"),
    (lambda: nn.Upsample(), "Upsample: give exactly one of size and scale_factor"),
    (lambda: nn.Upsample(2, size=4), "Upsample: give exactly one of size and scale_factor"),
    (lambda: nn.Upsample(2, mode="bicubic"), "Upsample: mode 'bicubic' is not supported; expected one of 'nearest', 'bilinear'"),
    (lambda: nn.Upsample(2, align_corners=True), "align_corners can only be set with mode 'bilinear'"),
    (lambda: nn.Upsample(2, "bilinear", align_corners="yes"), "align_corners must be None, True or False"),
    (lambda: nn.Upsample(0), "scale_factor must be a positive number or a pair"),
    (lambda: nn.Upsample((2, 2, 2)), "scale_factor must be a positive number or a pair"),
    (lambda: nn.Upsample(size=(0, 3)), r"size must be a positive int or a pair of positive ints \(OH, OW\), got \(0, 3\)"),
])
def test_bad_arguments_are_one_line_value_errors(make, match):
    with pytest.raises(ValueError, match=match) as error:
        make()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("call,error,match", [
    (lambda: nn.Upsample(0.1)(np.zeros((1, 1, 4, 4))), ValueError,
     r"scale_factor \(0.1, 0.1\) turns the input size \(4, 4\) into \(0, 0\)"),
    (lambda: nn.Upsample(2, "bilinear")(np.zeros((4, 4))), ValueError,
     r"expected input of shape \(N, C, H, W\), got \(4, 4\)"),
    (lambda: F.interpolate(np.zeros((1, 4, 4)), scale_factor=2), ValueError,
     r"interpolate: expected input of shape \(N, C, H, W\), got \(1, 4, 4\)"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), 3, 2), ValueError, "give exactly one"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), 3, mode="linear"), ValueError, "mode 'linear'"),
    (lambda: nn.PReLU(3)(np.zeros((2, 4, 5), np.float32)), ValueError,
     r"expected input of shape \(N, 3, ...\), got \(2, 4, 5\)"),
    (lambda: nn.BCELoss()(np.array([0.5, 1.5]), np.ones(2)), ValueError,
     r"BCELoss: input values must lie in \[0, 1\] \(probabilities\), got \[0.5, 1.5\]; for logits use BCEWithLogitsLoss"),
    (lambda: nn.L1Loss()(np.ones(3), np.ones(4)), ValueError, r"L1Loss: input shape \(3,\) and target shape \(4,\) differ"),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(2))(np.ones((3, 2), np.float32),
                                                         np.ones((3, 2), np.float32)), TypeError,
     "BCEWithLogitsLoss: pos_weight is a float64 numpy array, the input a float32 numpy one"),
    (lambda: nn.CrossEntropyLoss()(np.ones((3, 2)), np.ones((3, 2))), ValueError,
     r"CrossEntropyLoss: expected logits \(N, C\) and class indices \(N,\), got shapes \(3, 2\) and \(3, 2\)"),
    (lambda: nn.CrossEntropyLoss()(np.ones((3, 2)), np.ones(3)), TypeError,
     "CrossEntropyLoss: expected floating-point logits and integer class indices, got float64 and float64"),
    (lambda: nn.CrossEntropyLoss()(np.ones((3, 2)), np.array([0, 2, 1])), ValueError,
     r"CrossEntropyLoss: class indices must lie in \[0, 2\), got \[0, 2\]"),
    (lambda: nn.BCELoss(weight=[1.0, 2.0]), TypeError, "BCELoss: weight must be None or a floating-point array"),
    (lambda: nn.Dropout()(np.zeros(3, np.int64)), TypeError, "expected a floating-point input"),
])
def test_bad_inputs_are_one_line_errors(call, error, match):
    with pytest.raises(error, match=match) as raised:
        call()
    assert "\n" not in str(raised.value)


def test_none_reduction_backward_needs_a_gradient():
    loss = nn.L1Loss(reduction="none")
    loss(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"L1Loss\(reduction='none'\).backward needs grad_output, "
                                         r"an array of the input's shape"):
        loss.backward()


# --- float32 stays float32 -------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nn.PReLU(2), lambda: nn.Dropout(0.4),
                                  lambda: nn.Upsample(1.5, "bilinear"),
                                  lambda: nn.Upsample(2, "bilinear", True),
                                  lambda: nn.Upsample(size=(3, 5)),
                                  lambda: nn.ReLU(inplace=True)])
def test_float32_layers_stay_float32(xp, make):
    layer = make().to(xp.__name__)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32))
    y = layer(x)
    gx = layer.backward(xp.ones_like(y))
    assert y.dtype == gx.dtype == np.float32
    assert backend.get_array_module(y) is xp and backend.get_array_module(gx) is xp
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_losses_stay_float32(xp, reduction):
    r = np.random.default_rng(1)
    x = xp.asarray(r.uniform(0.1, 0.9, (3, 4)).astype(np.float32))
    t = xp.asarray(r.random((3, 4)).astype(np.float32))
    w = xp.asarray(np.full(4, 2, np.float32))
    for loss in (nn.MSELoss(reduction=reduction), nn.L1Loss(reduction=reduction),
                 nn.BCELoss(w, reduction=reduction),
                 nn.BCEWithLogitsLoss(w, reduction=reduction, pos_weight=w)):
        value = loss(x, t)
        g = loss.backward(xp.ones_like(value) if reduction == "none" else 1.0)
        assert value.dtype == g.dtype == np.float32, type(loss).__name__
        assert backend.get_array_module(g) is xp
