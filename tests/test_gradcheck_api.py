"""The gradient checker itself: it must fail on wrong backwards, including permuted ones."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn


class BrokenScale(nn.Module):
    """y = x * w (w per column) with a chosen mistake in backward."""

    def __init__(self, mistake):
        super().__init__()
        self.w = nn.Parameter(np.linspace(0.5, 2.0, 4))
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
