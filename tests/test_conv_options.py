"""The convolution options (padding='same'/'valid', padding_mode, dilation, groups, and groups and
dilation of ConvTranspose2d): gradchecked on every backend, the pad op and its adjoint, the
errors, float32, and the fast paths (blocked CPU convolution, CUDA kernels) declining them."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import blocked, functional as F, nn, ops
from scratchnet.backend import to_numpy

MODES = ["zeros", "reflect", "replicate", "circular"]

CONV_CASES = [
    dict(padding="same"),
    dict(padding="same", kernel_size=(2, 4)),                 # odd totals: extra bottom/right
    dict(padding="valid"),
    dict(padding=2, padding_mode="reflect"),
    dict(padding=(1, 2), padding_mode="replicate", stride=2),
    dict(padding=(2, 1), padding_mode="circular"),
    dict(padding="same", padding_mode="reflect", kernel_size=4),
    dict(dilation=2),
    dict(dilation=(1, 3), padding=(0, 2), stride=(2, 1)),
    dict(dilation=2, padding="same"),
    dict(groups=2),
    dict(groups=4, out_channels=8, kernel_size=(3, 2)),      # depthwise, channel multiplier 2
    dict(groups=2, dilation=2, padding="same", padding_mode="reflect", bias=False),
    dict(groups=4, out_channels=4, padding=1, padding_mode="replicate", stride=2),
]

TRANSPOSED_CASES = [
    dict(groups=2),
    dict(groups=4, out_channels=8, stride=2, output_padding=1),
    dict(dilation=2),
    dict(dilation=(2, 3), stride=2, padding=1, output_padding=(1, 2)),
    dict(dilation=3, output_padding=2),                       # output_padding >= stride, < dilation
    dict(groups=2, dilation=2, stride=(2, 1), padding=(1, 0), bias=False),
]


def _conv(case, transposed=False):
    kwargs = dict(case)
    args = (4, kwargs.pop("out_channels", 6), kwargs.pop("kernel_size", 3))
    return (nn.ConvTranspose2d if transposed else nn.Conv2d)(*args, **kwargs)


@pytest.mark.parametrize("i", range(len(CONV_CASES)))
def test_conv2d_options_gradcheck(xp, i):
    sn.manual_seed(i)
    layer = _conv(CONV_CASES[i]).to(xp.__name__)
    x = xp.asarray(np.random.default_rng(i).standard_normal((2, 4, 7, 6)))
    sn.gradcheck(layer, x, seed=i)


@pytest.mark.parametrize("i", range(len(TRANSPOSED_CASES)))
def test_conv_transpose2d_options_gradcheck(xp, i):
    sn.manual_seed(i)
    layer = _conv(TRANSPOSED_CASES[i], transposed=True).to(xp.__name__)
    x = xp.asarray(np.random.default_rng(i).standard_normal((2, 4, 4, 3)))
    sn.gradcheck(layer, x, seed=i)


@pytest.mark.parametrize("mode", MODES)
def test_pad_is_a_gather_and_pad_backward_its_adjoint(xp, rng, mode):
    """pad against NumPy's own padding, and <pad(x), g> = <x, pad_backward(g)>."""
    x = rng.standard_normal((2, 3, 4, 5))
    padding = (3, 1, 0, 2)                                          # left, right, top, bottom
    numpy_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                  "circular": "wrap"}[mode]
    expected = np.pad(x, ((0, 0), (0, 0), (0, 2), (3, 1)), mode=numpy_mode)
    y = F.pad(xp.asarray(x), padding, mode)
    np.testing.assert_array_equal(to_numpy(y), expected)
    g = rng.standard_normal(expected.shape)
    dx = to_numpy(F.pad_backward(xp.asarray(g), padding, mode))
    assert dx.shape == x.shape
    np.testing.assert_allclose((expected * g).sum(), (x * dx).sum(), rtol=1e-12)


def test_pad_backward_folds_reflected_and_replicated_borders_back():
    """A row a b c padded by 2 on the left and 1 on the right, gradient 1 everywhere: each pixel
    gets 1 plus the number of border pixels copied from it (reflect: c b | a b c | b)."""
    g = np.ones((1, 1, 1, 6))
    fold = {m: F.pad_backward(g, (2, 1, 0, 0), m)[0, 0, 0].tolist() for m in MODES}
    assert fold == {"zeros": [1, 1, 1], "reflect": [1, 3, 2], "replicate": [3, 1, 2],
                    "circular": [2, 2, 2]}


@pytest.mark.parametrize("make,shape,match", [
    (lambda: nn.Conv2d(4, 6, 3, groups=4), None, r"Conv2d: groups=4 must divide out_channels \(6\)"),
    (lambda: nn.Conv2d(3, 6, 3, groups=2), None, r"Conv2d: groups=2 must divide in_channels \(3\)"),
    (lambda: nn.Conv2d(2, 2, 3, groups=0), None, "groups must be a positive int, got 0"),
    (lambda: nn.Conv2d(1, 1, 3, padding="same", stride=2), None,
     r"padding='same' needs stride 1 \(as in PyTorch\), got stride \(2, 2\)"),
    (lambda: nn.Conv2d(1, 1, 3, padding="full"), None,
     "padding must be 'same', 'valid', an int or a pair of ints, got 'full'"),
    (lambda: nn.Conv2d(1, 1, 3, padding_mode="mirror"), None,
     "padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got 'mirror'"),
    (lambda: nn.Conv2d(1, 1, 3, dilation=0), None, "dilation must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, padding=4, padding_mode="reflect"), (1, 1, 4, 6),
     r"reflect padding \(4, 4, 4, 4\) must be smaller than the input size \(4, 6\)"),
    (lambda: nn.Conv2d(1, 1, 3, padding=(0, 3), padding_mode="circular"), (1, 1, 4, 2),
     r"circular padding \(3, 3, 0, 0\) must be at most the input size \(4, 2\)"),
    (lambda: nn.Conv2d(1, 1, 3, dilation=3), (1, 1, 6, 9),
     r"input size \(6, 9\) .* smaller than the kernel \(3, 3\) dilated by \(3, 3\)"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=4), None,
     r"ConvTranspose2d: groups=4 must divide out_channels \(6\)"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect"), None,
     "ConvTranspose2d: padding_mode must be 'zeros'"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, padding="same"), None,
     "ConvTranspose2d: padding must be an int or a pair of ints"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, dilation=3, output_padding=3), None,
     r"output_padding \(3, 3\) must be smaller than stride \(2, 2\) or dilation \(3, 3\)"),
])
def test_bad_options_are_one_line_value_errors_naming_the_argument(make, shape, match):
    with pytest.raises(ValueError, match=match) as err:
        layer = make()
        layer(np.zeros(shape, np.float32))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("call,match", [
    (lambda x: F.pad(x, (1, 1, 1, 1), "mirror"), "pad: mode must be one of"),
    (lambda x: F.pad(x, (1, 1, 3, 1), "reflect"), r"pad: reflect padding \(1, 1, 3, 1\)"),
    (lambda x: F.pad(x, (1, -1, 0, 0), "zeros"), "pad: padding must be 4 ints >= 0"),
])
def test_bad_pad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((1, 1, 3, 3)))


FLOAT32 = ([(c, False) for c in CONV_CASES[:8:2] + CONV_CASES[11:12]]
           + [(c, True) for c in TRANSPOSED_CASES[:2]])


@pytest.mark.parametrize("case,transposed", FLOAT32,
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         if isinstance(c, dict) else ("transposed" if c else "conv"))
def test_float32_stays_float32(xp, rng, case, transposed):
    layer = _conv(case, transposed).to(xp.__name__)
    x = xp.asarray(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    y = layer(x)
    gx = layer.backward(xp.ones_like(y))
    assert y.dtype == gx.dtype == layer.weight.grad.dtype == xp.float32
    assert gx.shape == x.shape


@pytest.mark.parametrize("case", CONV_CASES + [dict(padding=1), dict(padding="same", stride=1)],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_the_blocked_cpu_path_leaves_the_options_to_the_reference(rng, case):
    """With the blocked path on for every array, a layer with options still runs (and keeps)
    im2col and gives exactly the reference's results; a layer without them ('valid', 'same'
    with an odd kernel, plain zero padding) takes the blocked path, held to the reference."""
    sn.manual_seed(0)
    layer = _conv(case).double()
    x = rng.standard_normal((2, 4, 7, 6))
    g = rng.standard_normal(layer(x).shape)
    layer.backward(g)
    plain = blocked.plain(layer._padding(), layer.dilation, layer.groups, layer.padding_mode)
    results = {}
    for mode in ("never", "always"):
        previous = blocked.use_blocked_cpu(mode)
        try:
            layer.zero_grad()
            y = layer(x)
            assert isinstance(layer._cache[0], blocked.PaddedInput) == (plain and mode == "always")
            results[mode] = (y, layer.backward(g), layer.weight.grad.copy(), layer.bias.grad.copy()
                             if layer.bias is not None else 0)
        finally:
            blocked.use_blocked_cpu(previous)
    for ours, ref in zip(results["always"], results["never"]):
        if plain:
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(ours, ref)


def test_the_predicates_of_the_fast_bodies_say_no_to_the_options(monkeypatch):
    from scratchnet.kernels import conv as kconv
    monkeypatch.setattr(kconv, "on_gpu", lambda x, *args, **kwargs: True)   # as if on a GPU
    x = np.zeros((1, 2, 5, 5))
    im2col, = [b for b in ops._faster["im2col"]]
    col2im, = [b for b in ops._faster["col2im"]]
    assert im2col.applies(x, (3, 3), (1, 1), (0, 0))
    assert im2col.applies(x, (3, 3), (1, 1), (0, 0), 0.0, (1, 1))
    assert not im2col.applies(x, (3, 3), (1, 1), (0, 0), 0.0, (2, 1))
    assert not im2col.applies(x, (3, 3), (1, 1), (0, 0), dilation=(1, 2))
    col = np.zeros((2, 3, 3, 3, 3, 1))
    assert col2im.applies(col, (1, 1), (0, 0), (5, 5))
    assert not col2im.applies(col, (1, 1), (0, 0), (5, 5), (2, 2))
    forward, = [b for b in ops._faster["conv2d_forward"]]
    w = np.zeros((2, 2, 3, 3))
    previous = blocked.use_blocked_cpu("always")
    try:
        assert forward.applies(x, w, None, (1, 1), (1, 1))
        for options in [dict(dilation=(2, 2)), dict(groups=2), dict(padding_mode="reflect")]:
            assert not forward.applies(x, w, None, (1, 1), (1, 1), **options), options
        assert not forward.applies(x, w, None, (1, 1), (1, 1), (1, 2))
        assert not forward.applies(x, w, None, (1, 1), (0, 1, 0, 1))      # asymmetric padding
    finally:
        blocked.use_blocked_cpu(previous)


def test_without_options_the_ops_get_their_original_arguments():
    """A convolution without options calls the ops below it as before, so a replacement
    written for the original signature runs inside the layers; a dilated one passes dilation."""
    seen = []

    def col2im(col, stride, padding, size):
        seen.append("col2im")
        return ops.reference("col2im")(col, stride, padding, size)

    with sn.override(col2im=col2im):
        layer = nn.Conv2d(2, 3, 3, padding=1).double()
        layer.backward(np.ones_like(layer(np.ones((1, 2, 5, 5)))))
    assert seen == ["col2im"]
    calls = []
    with sn.override(col2im=lambda *args, **kwargs: calls.append(kwargs) or F.col2im(*args, **kwargs)):
        layer = nn.Conv2d(2, 3, 3, dilation=2, groups=1).double()
        layer.backward(np.ones_like(layer(np.ones((1, 2, 6, 6)))))
    assert calls == [{"dilation": (2, 2)}]


@pytest.mark.parametrize("layer", [nn.Conv2d(4, 8, 3, padding="same", padding_mode="reflect",
                                             dilation=2, groups=4),
                                   nn.ConvTranspose2d(4, 8, 3, groups=2, dilation=2)])
def test_each_layer_with_options_calls_one_op_each_way(layer):
    from test_ops import recording
    calls = []
    layer.double()
    with sn.override(**recording(calls)):
        y = layer(np.ones((1, 4, 6, 6)))
        n = len(calls)
        layer.backward(np.ones_like(y))
    forward = "conv2d_forward" if isinstance(layer, nn.Conv2d) else "conv_transpose2d"
    assert calls[0] == forward and calls[n] == forward.replace("_forward", "") + "_backward"


def test_cupy_stand_in_gives_numpy_results(xp, rng):
    if xp is np:
        pytest.skip("compares another backend with NumPy")
    for case, transposed in [(CONV_CASES[12], False), (CONV_CASES[4], False),
                             (TRANSPOSED_CASES[3], True)]:
        sn.manual_seed(0)
        ours = _conv(case, transposed).double()
        sn.manual_seed(0)
        theirs = _conv(case, transposed).double().to(xp.__name__)
        x = rng.standard_normal((2, 4, 6, 5))
        y = ours(x)
        g = rng.standard_normal(y.shape)
        np.testing.assert_allclose(to_numpy(theirs(xp.asarray(x))), y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(theirs.backward(xp.asarray(g))), ours.backward(g),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(theirs.weight.grad), ours.weight.grad,
                                   rtol=1e-12, atol=1e-12)
