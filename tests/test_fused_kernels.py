"""The fused CuPy kernels (scratchnet/kernels: im2col/col2im gathers, ReLU, Sigmoid, batch
norm, channel sums, max pooling, the one-launch Adam and zero_grad) against the array code of
the ops they are the faster bodies of: the same code with fused kernels off on the GPU, and
NumPy on the host. GPU only."""
import contextlib

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, functional as F, kernels, nn, optim
from scratchnet.random import default_rng
from scratchnet.models import conv_autoencoder, unet
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
    previous = kernels.use_fused_kernels(enabled)
    try:
        yield
    finally:
        kernels.use_fused_kernels(previous)


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


ADAM_CASES = [(optim.Adam, {}), (optim.Adam, {"weight_decay": 1e-2}),
              (optim.AdamW, {"weight_decay": 1e-1}), (optim.AdamW, {"weight_decay": 0.0})]
SHAPES = [(5, 7), (3,), (16, 1, 3, 3), (1,), (64, 32, 3, 3), (2, 2, 2)]


@pytest.mark.parametrize("opt_cls,kw", ADAM_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_launch_adam_gives_numpys_bits(cupy, opt_cls, kw, dtype):
    """Every parameter of the group in one kernel, each operation rounded as NumPy rounds it:
    the parameters and both moments equal the per-parameter NumPy update bit for bit."""
    r = np.random.default_rng(3)
    p0 = [r.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[r.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(6)]

    def run(xp_name):
        params = [nn.Parameter(backend.to_backend(p.copy(), xp_name)) for p in p0]
        opt = opt_cls(params, lr=1e-2, **kw)
        for step in grads:
            opt.zero_grad()
            for p, g in zip(params, step):
                p.grad += backend.to_backend(g, xp_name)
            opt.step()
        return [a for p in params for a in (p.data, opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"])]

    on, off = both_ways(lambda: run("cupy"))
    host = [np.asarray(a) for a in run("numpy")]
    for a, b, c in zip(on, off, host):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, c)
        np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-7)


def test_one_launch_adam_follows_new_arrays(cupy):
    """The address table is rebuilt when an array is replaced (new p.data, .to(), a loaded
    state), and falls back to the per-parameter code for mixed step counts."""
    r = np.random.default_rng(4)
    params = [nn.Parameter(cupy.asarray(r.standard_normal(s).astype(np.float32))) for s in SHAPES]
    host = [nn.Parameter(backend.to_numpy(p.data).copy()) for p in params]
    opts = [optim.Adam(params, lr=1e-2), optim.Adam(host, lr=1e-2)]

    def step(g):
        for ps, opt, xp_name in ((params, opts[0], "cupy"), (host, opts[1], "numpy")):
            opt.zero_grad()
            for p, gi in zip(ps, g):
                p.grad += backend.to_backend(gi, xp_name)
            opt.step()

    def grads():
        return [r.standard_normal(s).astype(np.float32) for s in SHAPES]

    step(grads())
    params[1].data = params[1].data.copy()                   # a new array object
    opts[0].load_state_dict(opts[0].state_dict())            # new moment arrays
    step(grads())
    for a, b in zip(params, host):
        np.testing.assert_array_equal(a.data.get(), b.data)
    extra = nn.Parameter(cupy.ones(3, dtype=np.float32))     # a parameter at step 0
    opts[0].param_groups[0]["params"].append(extra)
    opts[0].step()                                           # mixed steps: per parameter
    assert opts[0].state[extra]["step"] == 1 and opts[0].state[params[0]]["step"] == 3


def test_one_launch_zero_grad(cupy):
    params = [nn.Parameter(cupy.ones(s, dtype=np.float32)) for s in SHAPES]
    for p in params:
        p.grad += 2.5
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(float(abs(p.grad).max()) == 0 for p in params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 16, 28, 28), (2, 7, 1, 1)])
def test_batch_norm_kernels_match_array_code(cupy, dtype, affine, training, shape):
    r = np.random.default_rng(5)
    x = (r.standard_normal(shape) * 3 + 50).astype(dtype)       # a mean far from 0
    g = r.standard_normal(shape).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)

    w, b = r.standard_normal(shape[1]).astype(dtype), r.standard_normal(shape[1]).astype(dtype)

    def layer_run(xp_name):
        bn = nn.BatchNorm2d(shape[1], affine=affine).to(xp_name, dtype)
        if affine:
            bn.weight.data[...] = backend.to_backend(w, xp_name)
            bn.bias.data[...] = backend.to_backend(b, xp_name)
        bn.running_mean[...] = 49.0
        bn.running_var[...] = 8.0
        bn.train(training)
        y = bn(backend.to_backend(x, xp_name))
        gx = bn.backward(backend.to_backend(g, xp_name))
        out = [y, gx, bn.running_mean, bn.running_var]
        if affine:
            out += [bn.weight.grad, bn.bias.grad]
        return out

    on, off = both_ways(lambda: layer_run("cupy"))
    host = layer_run("numpy")
    for a, b_, c in zip(on, off, host):
        assert a.dtype == dtype and a.shape == c.shape
        np.testing.assert_allclose(a, c, **tol)
        np.testing.assert_allclose(b_, c, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_channel_sums_and_bias_grad(cupy, dtype):
    r = np.random.default_rng(7)
    gy = r.standard_normal((8, 5, 6, 7)).astype(dtype)
    b = r.standard_normal((5, 8 * 6 * 7)).astype(dtype)
    a = np.ascontiguousarray(gy.transpose(1, 2, 3, 0)).reshape(5, -1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for layout in (gy, F.batch_last(gy)):
        on, off = both_ways(lambda: [F.bias_grad(cupy.asarray(layout)),
                                     F.channel_sums(cupy.asarray(a), cupy.asarray(b))])
        for got in (on, off):
            np.testing.assert_allclose(got[0], gy.sum(axis=(0, 2, 3)), **tol)
            np.testing.assert_allclose(got[1], np.stack([a.sum(1), (a * b).sum(1)]), **tol)


POOL_CASES = [((2, 2), (2, 2), (0, 0), (4, 3, 8, 8)), ((3, 3), (2, 2), (1, 1), (2, 4, 7, 9)),
              ((3, 2), (1, 2), (1, 0), (3, 2, 5, 6)), ((2, 2), (2, 2), (0, 0), (64, 16, 28, 28))]


@pytest.mark.parametrize("kernel,stride,padding,shape", POOL_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_gathers_match_array_code(cupy, kernel, stride, padding, shape, dtype):
    r = np.random.default_rng(8)
    x = r.integers(-3, 4, shape).astype(dtype)                # many ties
    x.flat[:5] = [np.nan, np.inf, -np.inf, np.nan, 2.0]
    gy_shape = F.max_pool2d(x, kernel, stride, padding)[0].shape
    g = r.standard_normal(gy_shape).astype(dtype)

    def run(layout):
        def go():
            y, argmax = F.max_pool2d(cupy.asarray(layout), kernel, stride, padding)
            return [y, argmax, F.max_pool2d_backward(cupy.asarray(g), argmax, kernel, stride,
                                                     padding, shape[2:])]
        return go

    y, argmax = F.max_pool2d(x, kernel, stride, padding)
    host = [y, argmax, F.max_pool2d_backward(g, argmax, kernel, stride, padding, shape[2:])]
    for layout in (x, F.batch_last(x)):
        on, off = both_ways(run(layout))
        for a, b, c in zip(on, off, host):
            np.testing.assert_array_equal(a, c)                # a gather adds in the same order
            np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-12)


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


def test_unet_training_steps_fused_equal_unfused(cupy):
    """Four U-Net steps in float64, where rounding cannot hide a difference (in float32 the
    gradient that reaches the first layers through batch norm carries visible rounding, and
    Adam turns the noise of a near-zero gradient into +-lr steps): same losses, same weights."""
    def run():
        sn.manual_seed(0)
        model = unet(8).to("cupy", "float64")
        opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
        mse = nn.MSELoss()
        r = np.random.default_rng(0)
        losses = []
        for _ in range(4):
            clean = cupy.asarray(r.random((16, 1, 28, 28)))
            opt.zero_grad()
            losses.append(mse(model(cupy.clip(clean + 0.3, 0, 1)), clean))
            model.backward(mse.backward())
            opt.step()
        return [cupy.stack(losses), *[p.data for p in model.parameters() if p.data.ndim == 4]]

    on, off = both_ways(run)
    np.testing.assert_allclose(on[0], off[0], rtol=1e-10)
    for a, b in zip(on[1:], off[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scaled_sums_and_mse(cupy, dtype):
    r = np.random.default_rng(9)
    a, b = (r.standard_normal((4, 300)).astype(dtype) for _ in range(2))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)

    def run(xp_name):
        def go():
            to = lambda v: backend.to_backend(v.copy(), xp_name)  # noqa: E731
            sums = F.channel_sums(to(a), to(b), scale=0.5)
            mse = nn.MSELoss()
            loss = mse(to(a), to(b))
            return [sums, loss, mse.backward()]
        return go

    on, off = both_ways(run("cupy"))
    host = run("numpy")()
    for x, y, z in zip(on, off, host):
        assert x.shape == z.shape and x.dtype == dtype
        np.testing.assert_allclose(x, z, **tol)
        np.testing.assert_allclose(y, z, **tol)


def test_an_override_turns_the_kernels_off(cupy):
    """Under an override the readable array code runs, so the replacing function is called
    where the library's code calls it (here col2im inside conv2d_grad_input)."""
    x = cupy.asarray(np.random.default_rng(12).standard_normal((2, 3, 6, 5)))
    seen = []

    def col2im(col, stride, padding, size):
        seen.append(type(col).__module__)
        return F.col2im(col, stride, padding, size)

    layer = nn.Conv2d(3, 4, 3, padding=1).to("cupy", "float64")
    with sn.override(col2im=col2im):
        y = layer(x)
        layer.backward(cupy.ones_like(y))
    assert seen == ["cupy"]


def test_batch_norm_counts_batches_and_activations_keep_batch_last(cupy):
    bn = nn.BatchNorm2d(3).to("cupy")
    x = cupy.asarray(np.random.default_rng(10).standard_normal((4, 3, 5, 5)).astype(np.float32))
    for _ in range(3):
        y = bn(x)
    assert int(bn.num_batches_tracked) == 3
    for layer in (nn.ReLU(), nn.Sigmoid()):
        out = layer(y)                                     # y: a view of a batch-last buffer
        assert out.transpose(1, 2, 3, 0).flags.c_contiguous
        g = layer.backward(F.batch_last(cupy.ones_like(out)))
        assert g.transpose(1, 2, 3, 0).flags.c_contiguous


def test_gaussian_noise_kernel(cupy):
    from scratchnet.data import add_noise
    x = cupy.asarray(np.random.default_rng(11).random((8, 1, 6, 6), dtype=np.float32))
    for clip in (True, False):
        on, off = both_ways(lambda: [add_noise("gaussian", x, 0.7, clip,
                                               default_rng(5, "cupy"))])
        np.testing.assert_allclose(on[0], off[0], rtol=1e-6, atol=1e-6)
        assert (on[0].min() >= 0 and on[0].max() <= 1) == clip or not clip


def test_switch_reports_previous_setting():
    previous = kernels.use_fused_kernels(False)
    try:
        assert kernels.use_fused_kernels() is False
        assert kernels.use_fused_kernels(True) is False
        assert kernels.use_fused_kernels() is True
        assert backend.use_fused_kernels is kernels.use_fused_kernels     # the old name
    finally:
        kernels.use_fused_kernels(previous)
