"""The fused CuPy kernels (col2im gather, ReLU, Sigmoid, Adam) against the array code they
replace: the same code with fused kernels off on the GPU, and NumPy on the host. GPU only."""
import contextlib

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, functional as F, nn, optim
from scratchnet.models import conv_autoencoder
from test_functional import CASES

from conftest import needs_real_gpu

pytestmark = [pytest.mark.gpu, needs_real_gpu]


@pytest.fixture
def cupy():
    if not backend.is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    return backend.get_backend("cupy")


@contextlib.contextmanager
def fused(enabled):
    previous = backend.use_fused_kernels(enabled)
    try:
        yield
    finally:
        backend.use_fused_kernels(previous)


def both_ways(fn):
    """fn() with fused kernels on and off, results brought to the host."""
    out = {}
    for on in (True, False):
        with fused(on):
            out[on] = [backend.to_numpy(a) for a in fn()]
    return out[True], out[False]


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_gather_matches_strided_copy_and_numpy(cupy, kernel, stride, padding, shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    host = F.im2col(x, kernel, stride, padding)
    batch_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    for layout in (x, batch_last, x[:, :, ::-1]):
        on, off = both_ways(lambda: [F.im2col(cupy.asarray(layout), kernel, stride, padding)])
        expected = F.im2col(layout, kernel, stride, padding)
        assert on[0].dtype == dtype and on[0].flags.c_contiguous
        np.testing.assert_array_equal(on[0], expected)
        np.testing.assert_array_equal(off[0], expected)
    np.testing.assert_array_equal(F.im2col(cupy.asarray(x), kernel, stride, padding).get(), host)


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_col2im_gather_matches_slice_adds_and_numpy(cupy, kernel, stride, padding, shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    col = F.im2col(x, kernel, stride, padding)
    c = np.random.default_rng(1).standard_normal(col.shape).astype(dtype)
    host = F.col2im(c, stride, padding, shape[2:])
    on, off = both_ways(lambda: [F.col2im(cupy.asarray(c), stride, padding, shape[2:])])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    assert on[0].dtype == dtype and on[0].shape == host.shape
    np.testing.assert_allclose(on[0], host, **tol)
    np.testing.assert_allclose(off[0], host, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_and_sigmoid_kernels_match_array_code(cupy, dtype):
    r = np.random.default_rng(2)
    x = (r.standard_normal((4, 3, 5, 6)) * 30).astype(dtype)
    x.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 800.0]
    g = r.standard_normal(x.shape).astype(dtype)

    def run(layer):
        def go():
            y = layer(cupy.asarray(x))
            return [y, layer.backward(cupy.asarray(g))]
        return go

    for layer in (nn.ReLU(), nn.Sigmoid()):
        on, off = both_ways(run(layer))
        y_host = layer(x)
        gx_host = layer.backward(g)
        for a, b in zip(on + off, [y_host, gx_host] * 2):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0, equal_nan=True)


@pytest.mark.parametrize("opt_cls,kw", [(optim.Adam, {}), (optim.Adam, {"weight_decay": 1e-2}),
                                        (optim.AdamW, {"weight_decay": 1e-1})])
def test_adam_kernel_matches_array_code(cupy, opt_cls, kw):
    r = np.random.default_rng(3)
    p0 = r.standard_normal((5, 7)).astype(np.float32)
    grads = [r.standard_normal(p0.shape).astype(np.float32) for _ in range(6)]

    def run(xp_name):
        p = nn.Parameter(backend.to_backend(p0.copy(), xp_name))
        opt = opt_cls([p], lr=1e-2, **kw)
        for g in grads:
            p.grad[...] = backend.to_backend(g, xp_name)
            opt.step()
        s = opt.state[p]
        return [p.data, s["exp_avg"], s["exp_avg_sq"]]

    on, off = both_ways(lambda: run("cupy"))
    host = run("numpy")
    for a, b, c in zip(on, off, host):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-7)


def test_training_steps_fused_equal_unfused(cupy):
    def run():
        sn.manual_seed(0)
        model = conv_autoencoder().to("cupy")
        opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
        mse = nn.MSELoss()
        r = np.random.default_rng(0)
        losses = []
        for _ in range(5):
            clean = cupy.asarray(r.random((16, 1, 28, 28), dtype=np.float32))
            opt.zero_grad()
            losses.append(mse(model(cupy.clip(clean + 0.3, 0, 1)), clean))
            model.backward(mse.backward())
            opt.step()
        return [cupy.stack(losses), *[p.data for p in model.parameters()]]

    on, off = both_ways(run)
    for a, b in zip(on, off):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_switch_reports_previous_setting():
    previous = backend.use_fused_kernels(False)
    try:
        assert backend.use_fused_kernels() is False
        assert backend.use_fused_kernels(True) is False
        assert backend.use_fused_kernels() is True
    finally:
        backend.use_fused_kernels(previous)
