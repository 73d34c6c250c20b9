"""optim.lr_scheduler step by step against PyTorch's schedulers, plus state round trips,
resuming and argument errors."""
import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn, optim
from scratchnet.optim import lr_scheduler as S


def _params(n=2):
    return [nn.Parameter(np.zeros(3)) for _ in range(n)]


def _mine(opt_name="SGD", lrs=(0.1, 0.02), **kw):
    p = _params(len(lrs))
    groups = [{"params": [q], "lr": lr} for q, lr in zip(p, lrs)]
    return getattr(optim, opt_name)(groups, **kw)


def _theirs(torch, opt_name="SGD", lrs=(0.1, 0.02), **kw):
    groups = [{"params": [torch.zeros(3, dtype=torch.float64, requires_grad=True)], "lr": lr}
              for lr in lrs]
    return getattr(torch.optim, opt_name)(groups, **kw)


CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5), 12),
    ("StepLR", dict(step_size=1), 5),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3), 12),
    ("ExponentialLR", dict(gamma=0.9), 10),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3), 20),      # past T_max: rises again
    ("CosineAnnealingLR", dict(T_max=4), 9),
    ("LambdaLR", dict(lr_lambda=lambda k: 1 / (k + 1)), 8),
    ("LambdaLR", dict(lr_lambda=[lambda k: 0.9 ** k, lambda k: k % 3 + 1]), 8),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=20), 19),
    ("OneCycleLR", dict(max_lr=0.3, epochs=3, steps_per_epoch=5, pct_start=0.4,
                        anneal_strategy="linear", three_phase=True), 15),
]


@pytest.mark.parametrize("name,kw,steps", CASES)
@pytest.mark.parametrize("opt_name,opt_kw", [("SGD", dict(momentum=0.9)), ("Adam", {})])
def test_scheduler_matches_pytorch_step_by_step(name, kw, steps, opt_name, opt_kw):
    torch = pytest.importorskip("torch")
    mine, theirs = _mine(opt_name, **opt_kw), _theirs(torch, opt_name, **opt_kw)
    a = getattr(S, name)(mine, **kw)
    b = getattr(torch.optim.lr_scheduler, name)(theirs, **kw)

    def same():
        assert a.last_epoch == b.last_epoch
        np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-12, atol=1e-15)
        for g, h in zip(mine.param_groups, theirs.param_groups):
            assert g["lr"] == pytest.approx(h["lr"], rel=1e-12, abs=1e-15)
            for key in ("momentum", "betas"):       # OneCycleLR cycles them
                if key in h:
                    np.testing.assert_allclose(g[key], h[key], rtol=1e-12)

    same()
    for _ in range(steps):
        mine.step()
        theirs.step()
        a.step()
        b.step()
        same()


def test_one_cycle_refuses_a_step_past_the_cycle():
    opt = _mine()
    sched = S.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="stepped 4 times; the cycle has 3 steps"):
        sched.step()


@pytest.mark.parametrize("kw", [
    dict(), dict(mode="max"), dict(patience=2, factor=0.5), dict(patience=0, cooldown=2),
    dict(threshold=0.1, threshold_mode="abs", patience=1), dict(min_lr=[0.05, 0.001], patience=1),
    dict(eps=0.05, patience=0, factor=0.9), dict(mode="max", threshold_mode="abs", threshold=0.2,
                                                 patience=1)])
def test_reduce_on_plateau_matches_pytorch(kw):
    torch = pytest.importorskip("torch")
    mine, theirs = _mine(), _theirs(torch)
    a = S.ReduceLROnPlateau(mine, **kw)
    b = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    metrics = [1.0, 0.9, 0.95, 0.92, 0.91, 0.899, 0.93, 0.94, 0.95, 0.96, 0.5, 0.6, 0.7, 0.8,
               0.9, 1.0, 1.1, 0.4, 0.45, 0.44, 0.43, 0.42, 0.41] * 2
    for m in metrics:
        a.step(np.float64(m))                    # a 0-d array or NumPy scalar works too
        b.step(m)
        assert a.get_last_lr() == pytest.approx(b.get_last_lr(), rel=1e-12)
        assert (a.num_bad_epochs, a.cooldown_counter, a.best, a.last_epoch) == \
            (b.num_bad_epochs, b.cooldown_counter, b.best, b.last_epoch)


def test_reduce_on_plateau_patience_counts_like_pytorch():
    opt = _mine(lrs=(1.0,))
    sched = S.ReduceLROnPlateau(opt, patience=2)
    lrs = []
    for loss in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        sched.step(loss)
        lrs.append(sched.get_last_lr()[0])
    # the best is set on the first call; 3 bad ones in a row (> patience 2) reduce the rate
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("name,kw", [(n, k) for n, k, _ in CASES if n != "LambdaLR"])
def test_state_dict_round_trip_continues_identically(name, kw, tmp_path):
    opt1 = _mine()
    s1 = getattr(S, name)(opt1, **kw)
    for _ in range(4):
        s1.step()
    path = tmp_path / "sched.npz"
    sn.save({"optimizer": opt1.state_dict(), "scheduler": s1.state_dict()}, path)
    saved = sn.load(path)
    opt2 = _mine(lrs=(9.0, 9.0))
    s2 = getattr(S, name)(opt2, **kw)
    opt2.load_state_dict(saved["optimizer"])
    s2.load_state_dict(saved["scheduler"])
    for _ in range(4):
        s1.step()
        s2.step()
        assert s1.get_last_lr() == s2.get_last_lr()
        assert [g["lr"] for g in opt1.param_groups] == [g["lr"] for g in opt2.param_groups]


def test_lambda_state_saves_callable_objects_not_functions():
    class Warmup:
        def __init__(self):
            self.scale = 2.0

        def __call__(self, k):
            return self.scale * (k + 1)

    fn = Warmup()
    sched = S.LambdaLR(_mine(), [fn, lambda k: 1.0])
    fn.scale = 3.0
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"scale": 3.0}, None]
    other = Warmup()
    again = S.LambdaLR(_mine(), [other, lambda k: 1.0])
    again.load_state_dict(state)
    assert other.scale == 3.0


def test_resuming_with_last_epoch_needs_initial_lr():
    opt = _mine()
    with pytest.raises(KeyError, match="no 'initial_lr' to resume from"):
        S.StepLR(opt, step_size=2, last_epoch=3)
    S.StepLR(opt, step_size=2)                       # records initial_lr
    resumed = S.StepLR(opt, step_size=2, last_epoch=3)
    assert resumed.last_epoch == 4                     # PyTorch: the constructor is a step


def test_cosine_keeps_its_steps_taken_last_epoch():
    """CosineAnnealingLR(..., last_epoch=k) continues at step k (a resumed training run)."""
    opt = _mine(lrs=(0.1,))
    full = S.CosineAnnealingLR(opt, T_max=10)
    lrs = []
    for _ in range(6):
        lrs.append(full.get_last_lr()[0])
        full.step()
    opt2 = _mine(lrs=(0.1,))
    resumed = optim.CosineAnnealingLR(opt2, T_max=10, last_epoch=3)
    assert resumed.last_epoch == 3 and resumed.get_last_lr()[0] == lrs[3]
    resumed.step()
    assert resumed.get_last_lr()[0] == lrs[4]
    assert S.CosineAnnealingLR(_mine(), T_max=5, last_epoch=-1).last_epoch == 0   # PyTorch's default
    expected = 0.1 * (1 + math.cos(math.pi * 3 / 10)) / 2
    assert lrs[3] == expected


def test_chained_schedulers_compose_as_in_pytorch():
    torch = pytest.importorskip("torch")
    mine, theirs = _mine(), _theirs(torch)
    a = [S.StepLR(mine, 3, 0.5), S.ExponentialLR(mine, 0.9)]
    b = [torch.optim.lr_scheduler.StepLR(theirs, 3, 0.5),
         torch.optim.lr_scheduler.ExponentialLR(theirs, 0.9)]
    for _ in range(10):
        mine.step()
        theirs.step()
        for s in a + b:
            s.step()
        assert a[1].get_last_lr() == pytest.approx(b[1].get_last_lr(), rel=1e-12)


def test_step_with_an_epoch_warns_and_uses_the_closed_form():
    sched = S.StepLR(_mine(lrs=(1.0,)), step_size=2, gamma=0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(5)
    assert sched.last_epoch == 5 and sched.get_last_lr() == [0.25]


def test_import_paths_and_the_same_cosine_class():
    from scratchnet.optim.lr_scheduler import StepLR
    import scratchnet.optim.lr_scheduler as mod
    assert StepLR is S.StepLR and mod is S
    assert optim.CosineAnnealingLR is S.CosineAnnealingLR
    assert isinstance(optim.CosineAnnealingLR(_mine(), T_max=3), S.LRScheduler)


@pytest.mark.parametrize("make,match", [
    (lambda o: S.StepLR(o, step_size=0), "step_size must be an int >= 1"),
    (lambda o: S.StepLR(o, step_size=2, gamma=-1), "gamma must be a finite number > 0"),
    (lambda o: S.MultiStepLR(o, milestones=[2, "x"]), "a milestone must be an int"),
    (lambda o: S.ExponentialLR(o, gamma=float("nan")), "gamma must be a finite number"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), "T_max must be a positive int"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), r"factor must be a finite number >= 0.0 and < 1.0"),
    (lambda o: S.ReduceLROnPlateau(o, mode="lowest"), "mode must be 'min' or 'max'"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), "threshold_mode must be"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1]), "min_lr has 1 values; the optimizer has 2"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1), "give total_steps, or epochs and steps_per_epoch"),
    (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=5, pct_start=1), "pct_start must be a float"),
    (lambda o: S.LambdaLR(o, lr_lambda=[lambda k: 1]), "lr_lambda has 1 values"),
    (lambda o: S.StepLR("sgd", step_size=1), "expected a scratchnet optimizer"),
])
def test_bad_arguments_name_the_scheduler(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(_mine())
