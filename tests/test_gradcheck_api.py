"""The gradient checker itself: it must fail on wrong backwards, including permuted ones, and
on backwards that assign a parameter's gradient instead of adding to it."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.gradcheck import OVERWRITTEN


class BrokenScale(nn.Module):
    """y = x * w (w per column) with a chosen mistake in backward."""

    def __init__(self, mistake, xp=np):
        super().__init__()
        self.w = nn.Parameter(xp.asarray(np.linspace(0.5, 2.0, 4)))
        self.mistake = mistake

    def forward(self, x):
        self._cache = x
        return x * self.w.data

    def backward(self, g):
        x = self._pop_cache(g)
        gw = (g * x).sum(axis=0)
        gx = g * self.w.data
        if self.mistake == "permuted":        # right values, wrong places: invisible to an
            gx = gx[::-1]                      # all-ones upstream gradient with symmetric x
        elif self.mistake == "scaled":
            gw = 1.01 * gw
        if self.mistake == "assigned":                 # the right values, but "=" for "+="
            self.w.grad = gw
        elif self.mistake == "assigned_in_place":
            self.w.grad[...] = gw
        elif self.mistake == "partly_assigned":
            self.w.grad[1:] += gw[1:]
            self.w.grad[0] = gw[0]
        elif self.mistake == "halved_first":          # grad *= 0.5, then the right +=
            self.w.grad *= 0.5
            self.w.grad += gw
        else:
            self.w.grad += gw
        return gx


def test_correct_backward_passes_and_reports():
    report = sn.gradcheck(BrokenScale(None), np.ones((3, 4)))
    assert report.passed and [c.name for c in report.checks] == ["input", "w"]
    assert "passed" in str(report)


def test_permuted_input_gradient_is_caught():
    with pytest.raises(sn.GradcheckError, match="FAIL input"):
        sn.gradcheck(BrokenScale("permuted"), np.ones((3, 4)))


def test_wrong_parameter_gradient_is_caught_and_located():
    report = sn.gradcheck(BrokenScale("scaled"), np.ones((3, 4)), raise_exception=False)
    assert not report.passed
    assert report.worst.name == "w" and report.max_rel_error > 5e-3


def test_directional_check_catches_errors_in_large_tensors():
    x = np.random.default_rng(0).standard_normal((600, 4))
    with pytest.raises(sn.GradcheckError, match="directions"):
        sn.gradcheck(BrokenScale("permuted"), x, max_elementwise=100)


def test_original_module_is_untouched():
    layer = nn.Conv2d(1, 2, 3)
    before = layer.weight.data.copy()
    sn.gradcheck(layer, np.random.default_rng(0).standard_normal((1, 1, 5, 5)))
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
    assert not layer.weight.grad.any()


# --- accumulation: backward must add into param.grad ------------------------------------------
def test_assigned_parameter_gradient_is_caught(xp):
    x = xp.asarray(np.random.default_rng(1).standard_normal((3, 4)))
    overwritten = r"FAIL w .*grad was overwritten, not accumulated \(\+=\)"
    with pytest.raises(sn.GradcheckError, match=overwritten):
        sn.gradcheck(BrokenScale("assigned", xp), x)
    report = sn.gradcheck(BrokenScale("assigned", xp), x, raise_exception=False)
    (inp, w) = report.checks
    assert inp.passed and inp.problem == ""
    assert not w.passed and w.problem == OVERWRITTEN
    assert w.failures == 4                   # grad after - grad before = G0 - R: all wrong


def test_assignment_needs_the_accumulation_check():
    """Starting from zeroed grads, "=" and "+=" leave the same values: the old check passed."""
    x = np.random.default_rng(1).standard_normal((3, 4))
    report = sn.gradcheck(BrokenScale("assigned"), x, check_accumulation=False)
    assert report.passed and all(c.problem == "" for c in report.checks)


def test_in_place_assignment_is_caught_too():
    x = np.random.default_rng(2).standard_normal((3, 4))
    with pytest.raises(sn.GradcheckError, match="grad was overwritten, not accumulated"):
        sn.gradcheck(BrokenScale("assigned_in_place"), x)


def test_partly_assigned_gradient_names_the_elements():
    x = np.random.default_rng(3).standard_normal((3, 4))
    report = sn.gradcheck(BrokenScale("partly_assigned"), x, raise_exception=False)
    w = report.checks[1]
    assert w.problem == "grad was overwritten at 1 of 4 elements, not accumulated (+=)"
    assert w.failures == 1 and "(0,)" in w.worst


def test_grad_changed_before_adding_is_caught():
    x = np.random.default_rng(4).standard_normal((3, 4))
    report = sn.gradcheck(BrokenScale("halved_first"), x, raise_exception=False)
    w = report.checks[1]
    assert not w.passed and "grad before backward was changed" in w.problem
    assert "grad before backward was changed" in str(report)


def test_accumulation_check_keeps_the_rest_of_the_report():
    """Same tensors, methods, sampled elements and (to rounding) errors with the check on/off."""
    sn.manual_seed(5)
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 5))
    on, off = (sn.gradcheck(layer, x, max_elementwise=64, check_accumulation=flag)
               for flag in (True, False))
    assert [(c.name, c.method, c.worst.split(" (")[0]) for c in on.checks] == \
        [(c.name, c.method, c.worst.split(" (")[0]) for c in off.checks]
    for a, b in zip(on.checks, off.checks):
        assert a.max_abs_error == pytest.approx(b.max_abs_error, rel=1e-3, abs=1e-12)
    assert not layer.weight.grad.any()       # the original module is still untouched


def test_shared_parameter_accumulates_both_uses():
    """One Parameter used twice in forward: each use adds its share, the check sees the sum."""
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.linspace(-1.0, 1.0, 4))

        def forward(self, x):
            self._cache = x
            return x * self.w.data + (x * x) * self.w.data

        def backward(self, g):
            x = self._pop_cache(g)
            self.w.grad += (g * x).sum(axis=0)
            self.w.grad += (g * x * x).sum(axis=0)
            return g * self.w.data * (1 + 2 * x)

    sn.gradcheck(Twice(), np.random.default_rng(6).standard_normal((3, 4)))


def test_library_layers_accumulate(xp):
    """Every layer with parameters passes with the accumulation check, on every backend."""
    r = np.random.default_rng(7)
    sn.manual_seed(7)
    cases = [(nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 6)),
             (nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 3, 4)),
             (nn.Linear(4, 3), (2, 4)), (nn.BatchNorm2d(3), (2, 3, 2, 3))]
    for layer, shape in cases:
        report = sn.gradcheck(layer.to(xp.__name__), xp.asarray(r.standard_normal(shape)))
        assert report.passed and len(report.checks) == 3


# --- non-finite values and bad settings: never a pass ---------------------------------------
class NaNBackward(nn.Module):
    """y = 2x whose backward returns NaN (or inf) for the input, or puts it into a grad."""

    def __init__(self, where="input", value=np.nan):
        super().__init__()
        self.w = nn.Parameter(np.ones(3))
        self.where, self.value = where, value

    def forward(self, x):
        self._cache = x
        return 2 * x * self.w.data

    def backward(self, g):
        x = self._pop_cache(g)
        gw = (2 * g * x).sum(axis=0)
        self.w.grad += gw * self.value if self.where == "param" else gw
        gx = 2 * g * self.w.data
        return gx * self.value if self.where == "input" else gx


@pytest.mark.parametrize("where", ["input", "param"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_gradient_fails_with_its_own_message(where, value):
    with pytest.raises(sn.GradcheckError, match="not finite") as info:
        sn.gradcheck(NaNBackward(where, value), np.ones((2, 3)))
    assert "FAILED" in str(info.value) and "passed" not in str(info.value)
    report = sn.gradcheck(NaNBackward(where, value), np.ones((2, 3)), raise_exception=False)
    assert not report.passed and report.max_rel_error == np.inf


def test_non_finite_gradient_fails_along_directions_too():
    x = np.ones((300, 3))
    report = sn.gradcheck(NaNBackward("input"), x, max_elementwise=10, n_samples=0,
                          raise_exception=False)
    assert not report.passed and report.checks[0].nonfinite == 4


def test_non_finite_forward_output_is_one_line():
    with pytest.raises(sn.GradcheckError, match="forward output is not finite"):
        sn.gradcheck(NaNBackward(), np.array([[1.0, np.nan, 2.0]]))


@pytest.mark.parametrize("option, value", [("eps", np.nan), ("eps", 0), ("eps", -1e-6),
                                           ("eps", np.inf), ("atol", np.nan), ("atol", -1.0),
                                           ("rtol", np.nan), ("rtol", np.inf), ("eps", "1e-6")])
def test_bad_step_or_tolerance_is_refused(option, value):
    with pytest.raises(ValueError, match=f"gradcheck: {option} must be a finite number"):
        sn.gradcheck(BrokenScale("scaled"), np.ones((3, 4)), **{option: value})


def test_backward_returning_none_is_one_line():
    class NoReturn(BrokenScale):
        def backward(self, g):
            super().backward(g)

    with pytest.raises(sn.GradcheckError, match=r"backward returned None \(a missing return\?\)"):
        sn.gradcheck(NoReturn(None), np.ones((3, 4)))
