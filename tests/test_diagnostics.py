"""Training-health diagnostics: the statistics hooks record equal what a direct computation
gives, dead and saturated units are counted, the update ratio is the optimizer's step, only
every k-th step is sampled, and the figure and summary are written."""
import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import diagnostics, nn, optim
from scratchnet.backend import to_numpy


def _model(xp):
    sn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1),
                         nn.Sigmoid()).to(xp.__name__)


def _train(model, diag, xp, steps, lr=0.1):
    opt = optim.SGD(model.parameters(), lr=lr)
    mse = nn.MSELoss()
    x = xp.asarray(np.random.default_rng(0).random((4, 1, 6, 6)).astype(np.float32))
    for _ in range(steps):
        opt.zero_grad()
        mse(model(x), x)
        model.backward(mse.backward())
        opt.step()
        diag.step()
    return x


def test_statistics_equal_a_direct_computation(xp):
    model = _model(xp)
    seen = {}
    model[1].register_forward_hook(lambda m, a, out: seen.__setitem__("relu", to_numpy(out)))
    model[3].register_full_backward_hook(lambda m, gi, go: seen.__setitem__("g", to_numpy(go[0])))
    with diagnostics.watch(model, every=3) as diag:
        before = {n: to_numpy(p.data).copy() for n, p in model.named_parameters()}
        _train(model, diag, xp, 1)                   # step 0 is sampled
        grads = {n: to_numpy(p.grad) for n, p in model.named_parameters()}
        after = {n: to_numpy(p.data) for n, p in model.named_parameters()}
    relu, row = seen["relu"], diag.layers["1"]
    assert diag.steps == [0] and list(diag.layers) == ["1", "3"]
    assert row["mean"][0] == pytest.approx(relu.mean(), rel=1e-5)
    assert row["std"][0] == pytest.approx(relu.std(), rel=1e-5)
    assert row["saturated"][0] == pytest.approx((relu <= 0).mean())
    assert row["dead"][0] == pytest.approx((relu <= 0).all(axis=(0, 2, 3)).mean())
    assert diag.layers["3"]["grad_std"][0] == pytest.approx(seen["g"].std(), rel=1e-5)
    assert math.isnan(diag.layers["3"]["dead"][0])
    for name, row in diag.params.items():
        assert row["grad_std"][0] == pytest.approx(grads[name].std(), rel=1e-5)
        update = (after[name].astype(np.float64) - before[name]).std()
        data = before[name].std()
        if before[name].size == 1:                   # the one output bias: no spread, no ratio
            assert math.isnan(row["update_ratio"][0]) and math.isnan(row["grad_to_data"][0])
            continue
        assert row["update_ratio"][0] == pytest.approx(math.log10(update / data), abs=1e-4)
        assert row["grad_to_data"][0] == pytest.approx(grads[name].std() / data, rel=1e-4)
    assert not model[1]._forward_hooks or len(model[1]._forward_hooks) == 1   # its own hook only


def test_only_every_kth_step_is_sampled_and_remove_stops_it(xp):
    model = _model(xp)
    diag = diagnostics.watch(model, every=4)
    _train(model, diag, xp, 10)
    assert diag.steps == [0, 4, 8]
    assert all(len(v) == 3 for row in diag.layers.values() for v in row.values())
    assert all(len(v) == 3 for row in diag.params.values() for v in row.values())
    diag.remove()
    _train(model, diag, xp, 4)
    assert diag.steps == [0, 4, 8]
    resumed = diagnostics.watch(model, every=4)
    resumed.step_count = 10                           # a run resumed after 10 steps
    _train(model, resumed, xp, 3)
    assert resumed.steps == [12]


def test_dead_relus_and_saturated_sigmoids_are_counted():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Sigmoid())
    model[0].bias.data[:2] = -100.0                   # two units never fire
    model[2].bias.data[:] = 50.0                      # the sigmoid is pinned at 1
    diag = diagnostics.watch(model, every=1)
    model(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    assert diag.layers["1"]["dead"][0] == 0.5
    assert diag.layers["3"]["saturated"][0] == 1.0


def test_no_grad_forwards_and_gradcheck_copies_are_not_recorded():
    model = _model(np)
    diag = diagnostics.watch(model, every=1)
    with sn.no_grad():
        model(np.ones((1, 1, 4, 4), dtype=np.float32))
    sn.gradcheck(model, np.random.default_rng(0).random((1, 1, 4, 4)))
    assert diag.steps == []


def test_summary_plot_and_layer_choice(tmp_path):
    model = _model(np)
    diag = diagnostics.watch(model, every=2, layers="all")
    assert list(diag.layers) == ["0", "1", "2", "3"]
    assert "nothing sampled yet" in diag.summary()
    _train(model, diag, np, 5)
    text = diag.summary()
    assert text.splitlines()[0] == "step 4" and "1 (ReLU)" in text and "0.weight" in text
    path = tmp_path / "health.png"
    diag.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    named = diagnostics.watch(model, layers=["1"])
    assert list(named.layers) == ["1"]
    with pytest.raises(ValueError, match=r"no module named \['9'\]"):
        diagnostics.watch(model, layers=["9"])
    with pytest.raises(ValueError, match="every must be a positive int"):
        diagnostics.watch(model, every=0)
