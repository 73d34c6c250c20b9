"""BatchNorm2d, the pooling layers, buffers and the U-Net: semantics, errors and gradient
checks (float64, random upstream gradient, input and every parameter), on every backend."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, functional as F, nn, optim
from scratchnet.checkpoint import load_checkpoint, save_checkpoint
from scratchnet.models import UNet, build_model, conv_autoencoder


def distinct(shape, seed, spacing=1e-3):
    """Values that are pairwise at least ``spacing`` apart (no ties, no near-ties for max pooling)."""
    r = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (r.permutation(n) * spacing - n * spacing / 2).reshape(shape) + r.random() * spacing / 2


# --- buffers -----------------------------------------------------------------------------
def test_batchnorm_buffers_are_saved_moved_and_never_optimised():
    bn = nn.BatchNorm2d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    bn.double()
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    opt = optim.Adam(bn.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == 2


def test_batchnorm_running_statistics_by_hand():
    r = np.random.default_rng(0)
    bn = nn.BatchNorm2d(2, momentum=0.3).double()
    xs = [r.standard_normal((4, 2, 3, 5)) * 2 + 1 for _ in range(3)]
    mean, var = np.zeros(2), np.ones(2)
    for x in xs:
        bn(x)
        M = 4 * 3 * 5
        mean = 0.7 * mean + 0.3 * x.mean(axis=(0, 2, 3))
        var = 0.7 * var + 0.3 * x.var(axis=(0, 2, 3)) * M / (M - 1)      # unbiased
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-12)
    assert int(bn.num_batches_tracked) == 3
    bn.eval()
    y = bn(xs[0])
    np.testing.assert_allclose(y, (xs[0] - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5),
                               rtol=1e-12)
    assert int(bn.num_batches_tracked) == 3                       # eval changes nothing


def test_batchnorm_cumulative_average_when_momentum_is_none():
    r = np.random.default_rng(1)
    bn = nn.BatchNorm2d(2, momentum=None).double()
    xs = [r.standard_normal((3, 2, 2, 2)) for _ in range(4)]
    for x in xs:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=(0, 2, 3)) for x in xs], axis=0),
                               rtol=1e-12)


def test_state_dict_round_trip_and_checkpoint_carry_buffers(tmp_path):
    sn.manual_seed(0)
    model = UNet(4)
    model(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32))   # moves stats
    saved = {k: np.array(v) for k, v in model.state_dict().items()}
    assert int(saved["e1.1.num_batches_tracked"]) == 1
    opt = optim.Adam(model.parameters())
    save_checkpoint(tmp_path / "c.npz", model, opt)
    sn.manual_seed(1)
    fresh = UNet(4)
    load_checkpoint(tmp_path / "c.npz", fresh, optim.Adam(fresh.parameters()))
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, saved[k])
        assert v.dtype == saved[k].dtype


# --- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make,x,message", [
    (lambda: nn.BatchNorm2d(3), np.zeros((2, 4, 5, 5), np.float32), "expected input of shape (N, 3, H, W)"),
    (lambda: nn.BatchNorm2d(3), np.zeros((1, 3, 1, 1), np.float32), "more than 1 value per channel"),
    (lambda: nn.MaxPool2d(5), np.zeros((1, 1, 4, 4), np.float32), "smaller than the kernel"),
    (lambda: UNet(2), np.zeros((1, 1, 30, 28), np.float32), "divisible by 4"),
])
def test_bad_input_is_a_one_line_error_naming_the_layer(make, x, message):
    with pytest.raises(ValueError) as e:
        make()(x)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at most half the kernel"):
        nn.MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ValueError, match="only 'unet'"):
        build_model("conv", width=8)
    with pytest.raises(ValueError, match="'nearest'"):
        nn.Upsample(2, mode="bicubic")


def test_reference_model_weights_do_not_load_into_the_unet(tmp_path):
    save_checkpoint(tmp_path / "c.npz", conv_autoencoder())
    with pytest.raises(Exception) as e:
        load_checkpoint(tmp_path / "c.npz", UNet())
    assert "does not fit this model" in str(e.value) and "\n" not in str(e.value)


def test_batchnorm_eval_mode_with_batch_of_one_is_fine():
    bn = nn.BatchNorm2d(2).eval()
    assert bn(np.ones((1, 2, 1, 1), np.float32)).shape == (1, 2, 1, 1)


# --- gradient checks -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, 3, 4), (2, 3, 2, 2), (3, 2, 5, 3)])
@pytest.mark.parametrize("kind", ["train", "eval", "no_affine", "no_running_stats"])
def test_batchnorm_gradcheck(xp, shape, kind):
    bn = nn.BatchNorm2d(shape[1], affine=kind != "no_affine",
                        track_running_stats=kind != "no_running_stats").double()
    r = np.random.default_rng(sum(shape))
    if bn.affine:
        bn.weight.data[...] = r.uniform(0.5, 2, shape[1])
        bn.bias.data[...] = r.standard_normal(shape[1])
    if kind == "eval":
        bn.running_mean[...] = r.standard_normal(shape[1])
        bn.running_var[...] = r.uniform(0.5, 2, shape[1])
        bn.eval()
    bn.to(xp.__name__)
    report = sn.gradcheck(bn, xp.asarray(r.standard_normal(shape) * 3 + 1))
    assert [c.name for c in report.checks] == ["input"] + (["weight", "bias"] if bn.affine else [])


POOL_CASES = [(k, s, p) for k in (2, 3) for s in (1, 2, 3) for p in (0, 1)]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_maxpool_gradcheck(xp, kernel, stride, padding):
    x = distinct((2, 2, 7, 6), seed=kernel * 10 + stride + padding)
    sn.gradcheck(nn.MaxPool2d(kernel, stride, padding), xp.asarray(x))


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1)])
def test_avgpool_gradcheck(xp, kernel, stride, padding):
    x = np.random.default_rng(kernel + stride).standard_normal((2, 2, 7, 6))
    sn.gradcheck(nn.AvgPool2d(kernel, stride, padding), xp.asarray(x))


@pytest.mark.parametrize("scale", [2, (1, 3)])
def test_upsample_gradcheck(xp, scale):
    sn.gradcheck(nn.Upsample(scale), xp.asarray(np.random.default_rng(3).standard_normal((2, 2, 3, 4))))


def test_maxpool_gradient_goes_to_the_maximum_and_overlaps_add():
    x = np.array([[[[1., 5., 2.], [0., 3., 4.], [6., 0., 1.]]]])
    pool = nn.MaxPool2d(2, stride=1)
    y = pool(x)
    np.testing.assert_array_equal(y[0, 0], [[5, 5], [6, 4]])
    g = pool.backward(np.ones_like(y))
    np.testing.assert_array_equal(g[0, 0], [[0, 2, 0], [0, 0, 1], [1, 0, 0]])


def test_cat_channels_and_its_split(xp):
    r = np.random.default_rng(4)
    a, b = r.standard_normal((2, 3, 4, 5)), r.standard_normal((2, 2, 4, 5))
    y = F.cat_channels(xp.asarray(a), xp.asarray(b))
    np.testing.assert_array_equal(backend.to_numpy(y), np.concatenate([a, b], axis=1))


def _smallest_kink_distance(model, x):
    """min |input| over every ReLU of a forward pass: finite differences need distance from 0."""
    seen = []
    relus = [m for _, m in model.named_modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.forward = (lambda f: lambda a: (seen.append(float(abs(a).min())), f(a))[1])(m.forward)
    model(x)
    for m in relus:
        del m.__dict__["forward"]
    return min(seen)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_whole_unet_gradcheck(xp, mode):
    for seed in range(100):           # the first seed whose ReLU inputs all stay 10*eps from 0
        sn.manual_seed(seed)
        model = UNet(2).double()
        x = np.random.default_rng(seed).random((2, 1, 8, 8))
        if mode == "eval":
            model(x)                  # some running statistics
            model.eval()
        if _smallest_kink_distance(model, x) > 1e-5:
            break
    model.to(xp.__name__)
    report = sn.gradcheck(model, xp.asarray(x), max_elementwise=128, n_directions=3, n_samples=16)
    assert [c.name for c in report.checks] == ["input"] + [n for n, _ in model.named_parameters()]


def test_unet_float32_step_stays_float32(xp):
    sn.manual_seed(0)
    model = UNet(4).to(xp.__name__)
    opt = optim.Adam(model.parameters())
    mse = nn.MSELoss()
    x = xp.asarray(np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32))
    loss = mse(model(x), x)
    g = model.backward(mse.backward())
    opt.step()
    arrays = [loss, g, *model.state_dict().values(), *[p.grad for p in model.parameters()]]
    assert all(a.dtype in (np.float32, np.int64) for a in arrays)
    assert all(backend.get_array_module(a) is xp for a in arrays)
