"""The blocked CPU convolution (scratchnet/blocked.py) against the reference functions in
scratchnet/functional/conv.py, on a grid of shapes, and gradchecked through the layer."""
import contextlib

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import blocked, functional as F, nn, optim, threads
from scratchnet.models import unet
from test_functional import CASES

GRID = CASES + [
    ((3, 3), (1, 1), (1, 1), (3, 5, 10, 9)),    # the U-Net's layers: 3x3, padding 1
    ((3, 3), (1, 1), (2, 0), (2, 2, 6, 8)),     # padding > K - 1 on one axis
    ((3, 3), (2, 2), (3, 2), (2, 2, 7, 6)),     # padding > K - 1 with a stride: rows left out
    ((3, 2), (3, 2), (0, 1), (2, 3, 10, 7)),    # strides larger than 2, rows not covered
    ((1, 1), (1, 1), (0, 0), (2, 3, 4, 4)),     # the U-Net's output layer
    ((2, 2), (1, 1), (1, 1), (2, 2, 5, 5)),
]


@contextlib.contextmanager
def blocked_mode(mode, block_bytes=None):
    previous = blocked.use_blocked_cpu(mode)
    old_bytes = blocked.BLOCK_BYTES
    if block_bytes is not None:
        blocked.BLOCK_BYTES = block_bytes            # tiny blocks: many of them, on many threads
    try:
        yield
    finally:
        blocked.use_blocked_cpu(previous)
        blocked.BLOCK_BYTES = old_bytes


@pytest.mark.parametrize("kernel,stride,padding,shape", GRID)
@pytest.mark.parametrize("block_bytes", [1, 4 << 20])
def test_blocked_conv_equals_the_reference(rng, kernel, stride, padding, shape, block_bytes):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((4, shape[1], *kernel))
    b = rng.standard_normal(4)
    y_ref, col = F.conv2d(x, w, b, stride, padding)
    gy = rng.standard_normal(y_ref.shape)
    with blocked_mode("always", block_bytes):
        y, saved = blocked.conv2d_forward(x, w, b, stride, padding)
        dx, dw, db = blocked.conv2d_backward(gy, saved, w, shape[2:], stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, F.conv2d_grad_weight(gy, col), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, F.conv2d_grad_input(gy, w, shape[2:], stride, padding),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, F.bias_grad(gy), rtol=1e-12, atol=1e-12)
    assert y.shape == y_ref.shape and dx.shape == shape and dw.shape == w.shape


@pytest.mark.parametrize("stride,padding", [((1, 1), (1, 1)), ((2, 1), (1, 0)), ((2, 3), (0, 2))])
def test_dx_as_a_convolution_is_the_adjoint(rng, stride, padding):
    """<conv(x), gy> = <x, dx(gy)>: the flipped-kernel convolution of the dilated gy is the
    transpose of conv, for any stride and padding."""
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((5, 3, 3, 3))
    y, _ = F.conv2d(x, w, None, stride, padding)
    gy = rng.standard_normal(y.shape)
    dx = blocked.dx_as_convolution(gy, w, (7, 6), stride, padding)
    assert np.vdot(y, gy) == pytest.approx(np.vdot(x, dx), rel=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,shape", GRID)
def test_conv2d_layer_on_the_blocked_path_passes_gradcheck(rng, kernel, stride, padding, shape):
    sn.manual_seed(0)
    layer = nn.Conv2d(shape[1], 3, kernel, stride=stride, padding=padding)
    x = rng.standard_normal(shape)
    with blocked_mode("always", 1):
        report = sn.gradcheck(layer, x)
    assert report.passed


def test_float32_uses_it_float64_does_not_by_default(rng):
    layer = nn.Conv2d(8, 8, 3, padding=1)
    big = rng.standard_normal((64, 8, 28, 28)).astype(np.float32)   # im2col 14 MB: blocked
    layer(big)
    assert isinstance(layer._cache[0], blocked.PaddedInput)          # the padded input
    layer.double()
    layer(big.astype(np.float64))
    assert layer._cache[0].ndim == 6                                 # im2col
    layer.float()
    layer(big[:2])                                                   # small: one GEMM is best
    assert layer._cache[0].ndim == 6


def test_an_override_takes_the_readable_path(rng):
    """While an op is overridden, the layer runs the reference code (which calls it), and a
    blocked forward made before the override still gets its own backward."""
    layer = nn.Conv2d(8, 8, 3, padding=1)
    big = rng.standard_normal((64, 8, 28, 28)).astype(np.float32)
    calls = []

    def counting(gy, col):
        calls.append(col.shape)
        return F.conv2d_grad_weight(gy, col)

    with sn.override(conv2d_grad_weight=counting):
        y = layer(big)
        assert layer._cache[0].ndim == 6
        layer.backward(np.ones_like(y))
    assert calls == [(8, 3, 3, 28, 28, 64)]
    y = layer(big)
    with sn.override(conv2d_grad_weight=counting):
        layer.backward(np.ones_like(y))                              # the blocked backward
    assert len(calls) == 1


def test_training_steps_blocked_equal_reference():
    """Three U-Net steps in float64 (so rounding cannot hide a difference; the blocked path is
    forced): the same losses, and the same gradients in the first step."""
    def run(mode):
        with blocked_mode(mode, 1 << 16):
            sn.manual_seed(0)
            model = unet(4).double()
            opt = optim.Adam(model.parameters(), lr=1e-3)
            mse = nn.MSELoss()
            r = np.random.default_rng(0)
            losses, first_grads = [], None
            for _ in range(3):
                clean = r.random((8, 1, 28, 28))
                opt.zero_grad()
                losses.append(float(mse(model(np.clip(clean + 0.3, 0, 1)), clean)))
                model.backward(mse.backward())
                if first_grads is None:
                    first_grads = [p.grad.copy() for p in model.parameters()]
                opt.step()
            return losses, first_grads

    (la, ga), (lb, gb) = run("always"), run("never")
    np.testing.assert_allclose(la, lb, rtol=1e-10)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-12)        # biases before BN: ~0


def test_thread_count_does_not_change_results_beyond_rounding(rng, monkeypatch):
    x = rng.standard_normal((4, 6, 12, 12)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    out = {}
    for n in ("1", "3"):
        monkeypatch.setenv("SCRATCHNET_NUM_THREADS", n)
        with blocked_mode("always", 1):
            y, saved = blocked.conv2d_forward(x, w, None, (1, 1), (1, 1))
            out[n] = (y, *blocked.conv2d_backward(np.ones_like(y), saved, w, (12, 12), (1, 1),
                                                  (1, 1)))
    for a, b in zip(out["1"], out["3"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_thread_count_is_one_line(monkeypatch, value):
    monkeypatch.setenv("SCRATCHNET_NUM_THREADS", value)
    with pytest.raises(ValueError, match=f"SCRATCHNET_NUM_THREADS must be a positive integer, got '{value}'"):
        threads.num_threads()


def test_mode_switch_checks_its_value():
    with pytest.raises(ValueError, match="expected 'float32', 'always' or 'never', got 'fast'"):
        blocked.use_blocked_cpu("fast")
