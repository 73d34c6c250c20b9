"""Optimizers against hand-computed references and PyTorch's formulas, plus state round trips."""
import numpy as np
import pytest

from scratchnet import nn, optim
from scratchnet.backend import to_numpy
from reference import adam_reference, sgd_reference


def _run(opt_cls, xp, theta0, grads, **kw):
    p = nn.Parameter(xp.array(theta0))           # a copy: updates are in place
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        opt.zero_grad()
        p.grad += xp.asarray(g)
        opt.step()
        out.append(to_numpy(p.data).copy())
    return out


@pytest.mark.parametrize("cls,decoupled", [(optim.Adam, False), (optim.AdamW, True)])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_family_matches_reference(xp, rng, cls, decoupled, wd):
    theta0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(6)]
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    got = _run(cls, xp, theta0, grads, **kw)
    want = adam_reference(theta0, grads, decoupled=decoupled, **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [
    (0.0, 0.0, 0.0, False), (0.9, 0.0, 0.0, False), (0.9, 0.1, 0.01, False), (0.9, 0.0, 0.01, True)])
def test_sgd_matches_reference(xp, rng, momentum, dampening, wd, nesterov):
    theta0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(5)]
    kw = dict(lr=0.1, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov)
    got = _run(optim.SGD, xp, theta0, grads, **kw)
    want = sgd_reference(theta0, grads, **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_adam_matches_torch_trajectory(rng):
    torch = pytest.importorskip("torch")
    theta0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(8)]
    for cls, tcls in [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)]:
        got = _run(cls, np, theta0, grads, lr=0.05, weight_decay=0.01)
        t = torch.tensor(theta0, requires_grad=True)
        topt = tcls([t], lr=0.05, weight_decay=0.01)
        for g, mine in zip(grads, got):
            t.grad = torch.tensor(g)
            topt.step()
            np.testing.assert_allclose(mine, t.detach().numpy(), rtol=1e-14, atol=1e-15)


def test_state_dict_round_trip_continues_identically(rng):
    theta0 = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(6)]
    p1 = nn.Parameter(theta0.copy())
    o1 = optim.Adam([p1], lr=0.01, weight_decay=1e-3)
    p2 = nn.Parameter(theta0.copy())
    for i, g in enumerate(grads):
        o1.zero_grad()
        p1.grad += g
        o1.step()
        if i == 2:
            saved = o1.state_dict()
            p2.data[...] = p1.data
            o2 = optim.Adam([p2], lr=0.5)
            o2.load_state_dict(saved)
        elif i > 2:
            o2.zero_grad()
            p2.grad += g
            o2.step()
    np.testing.assert_array_equal(p1.data, p2.data)
    assert o2.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.Adam(p, lr=-1e-3), "learning rate"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta1"),
    (lambda p: optim.Adam(p, eps=-1.0), "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "weight_decay"),
    (lambda p: optim.SGD(p, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, nesterov=True), "nesterov"),
    (lambda p: optim.Adam([], lr=1e-3), "empty parameter list"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([nn.Parameter(np.zeros(2, np.float32))])
