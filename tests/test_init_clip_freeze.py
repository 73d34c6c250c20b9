"""nn.init against PyTorch's fans, gains and distributions; gradient clipping against
torch.nn.utils; frozen parameters (requires_grad = False) left alone by every optimizer
and by clipping; zero_grad(set_to_none=...)."""
import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, nn, optim
from scratchnet.backend import to_numpy
from scratchnet.nn import init

from conftest import needs_real_gpu

SHAPES = [(5, 3), (8, 4, 3, 2), (4, 8, 3, 3), (6, 2, 1, 1), (3, 7, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_are_pytorchs(shape):
    torch = pytest.importorskip("torch")
    want = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(np.empty(shape, dtype=np.float32)) == want


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("conv_transpose2d", None), ("sigmoid", None),
    ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
    ("leaky_relu", 2), ("selu", None)])
def test_gains_are_pytorchs(nonlinearity, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_kaiming_uniform_with_sqrt5_is_the_layers_default_init():
    sn.manual_seed(7)
    conv = nn.Conv2d(3, 4, 3)
    sn.manual_seed(7)
    w = nn.Parameter(np.zeros((4, 3, 3, 3), dtype=np.float32))
    assert init.kaiming_uniform_(w, a=math.sqrt(5)) is w
    np.testing.assert_allclose(w.data, conv.weight.data, rtol=1e-6)


@pytest.mark.parametrize("fn,kw,dist,scale", [
    (init.kaiming_normal_, dict(nonlinearity="relu"), "normal", math.sqrt(2 / 288)),
    (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), "normal", math.sqrt(2 / 576)),
    (init.kaiming_uniform_, dict(nonlinearity="relu"), "uniform", math.sqrt(6 / 288)),
    (init.kaiming_uniform_, dict(a=0.2), "uniform", math.sqrt(3) * math.sqrt(2 / 1.04) / math.sqrt(288)),
    (init.xavier_uniform_, dict(gain=2.0), "uniform", 2 * math.sqrt(6 / (288 + 576))),
    (init.xavier_normal_, dict(), "normal", math.sqrt(2 / (288 + 576))),
    (init.normal_, dict(mean=1.0, std=0.5), "normal", 0.5),
    (init.uniform_, dict(a=-0.5, b=2.0), "uniform", None),
])
def test_distributions_have_pytorchs_parameters(fn, kw, dist, scale):
    w = np.zeros((64, 32, 3, 3), dtype=np.float32)      # fan_in 288, fan_out 576
    sn.manual_seed(0)
    out = fn(w, **kw)
    assert out is w and w.dtype == np.float32
    if dist == "normal":
        assert w.std() == pytest.approx(scale, rel=0.02)
        assert w.mean() == pytest.approx(kw.get("mean", 0.0), abs=0.02 * scale)
    elif scale is not None:
        assert -scale <= w.min() < -0.99 * scale and 0.99 * scale < w.max() <= scale
    else:
        assert -0.5 <= w.min() < -0.49 and 1.99 < w.max() <= 2.0


def test_constant_ones_zeros_and_a_given_generator(xp):
    p = nn.Parameter(xp.zeros((2, 3), dtype=xp.float64))
    init.constant_(p, 0.25)
    assert (to_numpy(p.data) == 0.25).all()
    init.ones_(p.data)
    assert (to_numpy(p.data) == 1).all()
    init.zeros_(p)
    assert not to_numpy(p.data).any()
    a = init.normal_(xp.zeros(5), generator=np.random.default_rng(3))
    np.testing.assert_array_equal(to_numpy(a), np.random.default_rng(3).normal(0, 1, 5))


def test_same_seed_same_weights_on_every_backend(xp):
    sn.manual_seed(1)
    host = init.kaiming_normal_(np.zeros((4, 3, 3, 3), dtype=np.float32))
    sn.manual_seed(1)
    dev = init.kaiming_normal_(xp.zeros((4, 3, 3, 3), dtype=xp.float32))
    np.testing.assert_array_equal(to_numpy(dev), host)


def test_init_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(np.zeros(3))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(np.zeros((2, 2)), mode="fan")
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="a Parameter or an array"):
        init.zeros_([1.0, 2.0])
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(np.zeros((0, 3)))


# --- clipping ------------------------------------------------------------------------------
def _grads(rng, shapes=((4, 3), (3,), (2, 2, 2))):
    return [rng.standard_normal(s) * 3 for s in shapes]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_pytorch(rng, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    grads = _grads(rng)
    params = [nn.Parameter(np.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad += g
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tparams, grads):
        t.grad = torch.tensor(g)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    grads = _grads(rng)
    params = [nn.Parameter(np.zeros_like(g)) for g in grads]
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(params, tparams, grads):
        p.grad += g
        t.grad = torch.tensor(g)
    assert nn.utils.clip_grad_value_(params, 1.5) is None
    torch.nn.utils.clip_grad_value_(tparams, 1.5)
    for p, t in zip(params, tparams):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_clipping_stays_on_the_backend_and_dtype_and_skips_frozen(xp, rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(xp.__name__)
    for p in model.parameters():
        p.grad += xp.asarray(rng.standard_normal(p.shape).astype(np.float32) * 10)
    model[0].requires_grad_(False)
    frozen = [to_numpy(p.grad).copy() for p in model[0].parameters()]
    live = [to_numpy(p.grad).copy() for p in model[2].parameters()]
    total = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert backend.backend_name(total) == xp.__name__ and total.dtype == np.float32
    want = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in live))
    assert float(total) == pytest.approx(want, rel=1e-5)
    for p, g in zip(model[0].parameters(), frozen):
        np.testing.assert_array_equal(to_numpy(p.grad), g)
    clipped = math.sqrt(sum(float((to_numpy(p.grad).astype(np.float64) ** 2).sum())
                            for p in model[2].parameters()))
    assert clipped == pytest.approx(1.0, rel=1e-4)
    nn.utils.clip_grad_value_(model.parameters(), 0.01)
    for p, g in zip(model[0].parameters(), frozen):
        np.testing.assert_array_equal(to_numpy(p.grad), g)
    assert all(float(abs(p.grad).max()) <= 0.01 for p in model[2].parameters())


def test_clip_grad_norm_nonfinite_and_bad_arguments():
    p = nn.Parameter(np.zeros(3))
    p.grad += np.array([1.0, np.inf, 0.0])
    with pytest.raises(RuntimeError, match="not finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert p.grad[1] == np.inf                         # left as it was
    with pytest.raises(ValueError, match="max_norm must be >= 0 and norm_type > 0"):
        nn.utils.clip_grad_norm_([p], -1.0)
    with pytest.raises(TypeError, match="expected Parameters"):
        nn.utils.clip_grad_norm_([np.zeros(3)], 1.0)
    assert float(nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    assert float(nn.utils.clip_grad_norm_(p.requires_grad_(False), 1.0)) == 0.0


# --- frozen parameters ---------------------------------------------------------------------
OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
              (optim.Adam, dict(lr=0.01, weight_decay=0.01)), (optim.AdamW, dict(lr=0.01))]


@pytest.mark.parametrize("cls,kw", OPTIMIZERS)
def test_frozen_parameters_get_no_update(xp, rng, cls, kw):
    sn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(xp.__name__)
    reference = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(xp.__name__)
    reference.load_state_dict(model.state_dict())
    model[0].weight.requires_grad = False
    opt = cls(model.parameters(), **kw)
    ref_opt = cls([p for n, p in reference.named_parameters() if n != "0.weight"], **kw)
    before = to_numpy(model[0].weight.data).copy()
    for _ in range(3):
        x = xp.asarray(rng.standard_normal((5, 3)).astype(np.float32))
        for m, o in ((model, opt), (reference, ref_opt)):
            o.zero_grad()
            m(x)
            m.backward(xp.ones((5, 2), dtype=xp.float32))
            o.step()
    np.testing.assert_array_equal(to_numpy(model[0].weight.data), before)
    assert model[0].weight not in opt.state
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if name != "0.weight":
            np.testing.assert_array_equal(to_numpy(p.data), to_numpy(q.data))
    model[0].weight.requires_grad = True             # unfreezing: it trains again
    opt.step()
    assert not np.array_equal(to_numpy(model[0].weight.data), before)


def test_freezing_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    sn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    model[0].requires_grad_(False)
    tmodel[0].requires_grad_(False)
    opt = optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.05, weight_decay=0.1)
    for _ in range(4):
        x = rng.standard_normal((6, 3))
        opt.zero_grad(set_to_none=True)
        topt.zero_grad(set_to_none=True)
        model(x)
        model.backward(np.full((6, 2), 0.5))
        (tmodel(torch.tensor(x)) * 0.5).sum().backward()
        opt.step()
        topt.step()
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-12, atol=1e-14)


@needs_real_gpu
@pytest.mark.gpu
def test_fused_adam_skips_frozen_parameters():
    if not backend.is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    cp = backend.get_backend("cupy")
    rng = np.random.default_rng(0)
    results = []
    for fused in (True, False):
        previous = backend.use_fused_kernels(fused)
        try:
            sn.manual_seed(0)
            model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to("cupy")
            model[2].bias.requires_grad = False
            opt = optim.Adam(model.parameters(), lr=0.01)
            frozen = model[2].bias.data.get()
            for step in range(3):
                opt.zero_grad()
                model(cp.asarray(np.random.default_rng(step).standard_normal((5, 3)).astype(np.float32)))
                model.backward(cp.ones((5, 2), dtype=cp.float32))
                opt.step()
            np.testing.assert_array_equal(model[2].bias.data.get(), frozen)
            results.append({k: v.get() for k, v in model.state_dict().items()})
        finally:
            backend.use_fused_kernels(previous)
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])
    del rng


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_gives_zeros_either_way(xp, set_to_none):
    model = nn.Sequential(nn.Linear(3, 2)).to(xp.__name__)
    opt = optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad += 1
    opt.zero_grad(set_to_none=set_to_none)
    assert all(p.grad is not None and not to_numpy(p.grad).any() for p in model.parameters())
    for p in model.parameters():
        p.grad += 1
    model.zero_grad(set_to_none)
    assert all(not to_numpy(p.grad).any() for p in model.parameters())
