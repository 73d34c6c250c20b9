"""scratchnet.no_grad(): forward passes that keep nothing for backward, with the same results."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.evaluation import predict, score_model
from scratchnet.models import build_model


@pytest.mark.parametrize("name,width", [("conv", None), ("dense", None), ("unet", 4)])
def test_same_output_and_no_cache_in_any_layer(name, width, xp):
    sn.manual_seed(0)
    model = build_model(name, width).to(xp.__name__)
    x = xp.asarray(np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32))
    model(x)                                       # some running statistics for batch norm
    model.eval()
    expected = sn.to_numpy(model(x))
    with sn.no_grad():
        assert not sn.nn.is_grad_enabled()
        got = sn.to_numpy(model(x))
    assert sn.nn.is_grad_enabled()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)   # BN folded: rounding
    kept = [n for n, m in model.named_modules()
            if m._cache is not None and "no_grad" not in repr(m._cache)]
    assert kept == []
    with pytest.raises(RuntimeError, match=r"backward\(\): the forward ran under "
                                           r"scratchnet.no_grad\(\), which keeps nothing"):
        model.backward(xp.ones_like(x))


def test_no_grad_nests_and_restores_after_an_error():
    with sn.no_grad():
        with sn.no_grad():
            pass
        assert not sn.nn.is_grad_enabled()
    with pytest.raises(ValueError):
        with sn.no_grad():
            raise ValueError
    assert sn.nn.is_grad_enabled()


def test_training_after_inference_still_works():
    sn.manual_seed(0)
    layer = nn.Conv2d(1, 2, 3)
    x = np.random.default_rng(1).random((2, 1, 5, 5), dtype=np.float32)
    with sn.no_grad():
        layer(x)
    y = layer(x)
    layer.backward(np.ones_like(y))
    assert np.abs(layer.weight.grad).sum() > 0


def test_scoring_runs_under_no_grad_and_restores_the_mode(monkeypatch):
    sn.manual_seed(0)
    model = build_model("unet", 4)
    seen = []
    real_forward = model.forward

    def spy(x):
        seen.append((sn.nn.is_grad_enabled(), model.training))
        return real_forward(x)

    monkeypatch.setattr(model, "forward", spy)
    x = np.random.default_rng(2).random((5, 1, 28, 28), dtype=np.float32)
    predict(model, x, batch_size=2)
    score_model(model, x, x, batch_size=5, ssim=False)
    assert seen and all(s == (False, False) for s in seen)
    assert model.training and sn.nn.is_grad_enabled()
