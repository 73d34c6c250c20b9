"""Module API, initialisation, errors and dtype behaviour of the layers."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.backend import to_numpy
from scratchnet.models import conv_autoencoder, summary


def test_parameters_in_registration_order_with_pytorch_keys():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(4, 5, bias=False))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight"]
    assert len(list(model.parameters())) == 3


def test_weight_layouts_and_default_init_bounds():
    sn.manual_seed(0)
    conv = nn.Conv2d(4, 8, (3, 2))
    convt = nn.ConvTranspose2d(4, 8, (3, 2))
    lin = nn.Linear(10, 3)
    assert conv.weight.shape == (8, 4, 3, 2) and convt.weight.shape == (4, 8, 3, 2)
    assert lin.weight.shape == (3, 10)
    for layer, fan_in in [(conv, 4 * 6), (convt, 8 * 6), (lin, 10)]:
        bound = 1 / np.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            assert p.dtype == np.float32
            assert np.abs(p.data).max() <= bound
        assert np.abs(layer.weight.data).max() > 0.8 * bound     # spread over the interval


def test_same_seed_same_weights():
    sn.manual_seed(3)
    a = conv_autoencoder().state_dict()
    sn.manual_seed(3)
    b = conv_autoencoder().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_gradients_accumulate_until_zero_grad(xp, rng):
    layer = nn.Conv2d(2, 3, 3).to(xp.__name__)
    x = xp.asarray(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    g = xp.ones((2, 3, 3, 3), dtype=xp.float32)
    layer(x)
    layer.backward(g)
    once = to_numpy(layer.weight.grad).copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(to_numpy(layer.weight.grad), 2 * once, rtol=1e-6)
    layer.zero_grad()
    assert not to_numpy(layer.weight.grad).any()


def test_backward_before_forward_is_a_runtime_error():
    for layer in [nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MSELoss(), nn.Linear(1, 1)]:
        with pytest.raises(RuntimeError, match="without a preceding forward"):
            layer.backward(np.zeros((1, 1, 1, 1), dtype=np.float32))


def test_backward_checks_grad_output_shape():
    layer = nn.Conv2d(1, 2, 3)
    layer(np.zeros((1, 1, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"grad_output has shape \(1, 2, 2, 2\), expected \(1, 2, 3, 3\)"):
        layer.backward(np.zeros((1, 2, 2, 2), dtype=np.float32))


@pytest.mark.parametrize("make,x,match", [
    (lambda: nn.Conv2d(1, 16, 3), np.zeros((28, 28), np.float32),
     r"Conv2d\(1, 16, .*expected input of shape \(N, 1, H, W\), got \(28, 28\)"),
    (lambda: nn.Conv2d(3, 16, 3), np.zeros((2, 1, 28, 28), np.float32),
     r"expected input of shape \(N, 3, H, W\), got \(2, 1, 28, 28\)"),
    (lambda: nn.Conv2d(1, 1, 7), np.zeros((1, 1, 5, 9), np.float32),
     r"input size \(5, 9\) .* smaller than the kernel \(7, 7\)"),
    (lambda: nn.ConvTranspose2d(2, 1, 3), np.zeros((1, 3, 4, 4), np.float32),
     r"expected input of shape \(N, 2, H, W\), got \(1, 3, 4, 4\)"),
    (lambda: nn.ConvTranspose2d(1, 1, 1, padding=3), np.zeros((1, 1, 4, 4), np.float32),
     r"empty output"),
    (lambda: nn.Linear(4, 2), np.zeros((3, 5), np.float32),
     r"expected input of shape \(N, 4\), got \(3, 5\)"),
    (lambda: nn.Unflatten(1, (2, 3)), np.zeros((3, 5), np.float32), r"cannot be split"),
])
def test_bad_input_shapes_name_layer_and_shapes(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


def test_dtype_and_backend_mismatch_are_type_errors():
    layer = nn.Conv2d(1, 1, 3)
    with pytest.raises(TypeError, match="input dtype float64 differs from the parameters' float32"):
        layer(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        layer(np.zeros((1, 1, 4, 4), dtype=np.uint8))


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv2d(1, 1, 0), "kernel_size must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, stride=0), "stride must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, stride=(1, -2)), "stride must be >= 1"),
    (lambda: nn.Conv2d(1, 1, 3, padding=-1), "padding must be >= 0"),
    (lambda: nn.Conv2d(0, 1, 3), "in_channels must be a positive int"),
    (lambda: nn.Conv2d(1, 1, (3, 3, 3)), "kernel_size must be an int or a pair"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2), "output_padding .* smaller than stride"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=(2, 1), output_padding=(1, 1)), "smaller than stride"),
    (lambda: nn.Linear(0, 3), "in_features must be a positive int"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mse_loss_value_backward_and_errors(xp):
    mse = nn.MSELoss()
    p = xp.asarray([[1.0, 2.0], [3.0, 5.0]], dtype=xp.float32)
    t = xp.zeros((2, 2), dtype=xp.float32)
    loss = mse(p, t)
    assert loss.shape == () and float(loss) == pytest.approx(39 / 4)
    assert loss.dtype == xp.float32
    g = mse.backward()
    np.testing.assert_allclose(to_numpy(g), to_numpy(p) / 2)
    assert g.dtype == xp.float32
    with pytest.raises(ValueError, match=r"input shape \(2, 2\) and target shape \(4,\) differ"):
        mse(p, xp.zeros(4, dtype=xp.float32))


def test_sequential_indexing_slicing_and_repr():
    model = conv_autoencoder()
    enc = model.encoder
    assert isinstance(enc[0], nn.Conv2d) and len(enc) == 5
    tail = model.decoder[2:]
    assert isinstance(tail, nn.Sequential) and list(tail.state_dict())[0] == "2.weight"
    text = repr(model)
    assert "(encoder): Sequential(" in text
    assert "(0): Conv2d(1, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))" in text
    assert ("(2): ConvTranspose2d(32, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
            "output_padding=(1, 1))") in text


def test_state_dict_round_trip_and_errors():
    sn.manual_seed(1)
    a = conv_autoencoder()
    sn.manual_seed(2)
    b = conv_autoencoder()
    b.load_state_dict({k: v.copy() for k, v in a.state_dict().items()})
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb)
    with pytest.raises(KeyError, match="missing keys"):
        b.load_state_dict({})
    bad = dict(a.state_dict())
    bad["encoder.0.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="'encoder.0.weight' has shape"):
        b.load_state_dict(bad)


def test_to_changes_dtype_in_place_and_train_eval():
    model = conv_autoencoder()
    params = list(model.parameters())
    model.to("float64")
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert list(model.parameters())[0] is params[0]           # optimizers keep their references
    model.float()
    assert model.dtype == np.float32
    assert model.eval().training is False and model.decoder[5].training is False
    assert model.train().decoder[5].training is True
    with pytest.raises(ValueError, match="unknown backend"):
        model.to(backend="tpu")


def test_summary_lists_shapes_and_counts():
    text = summary(conv_autoencoder(), (1, 1, 28, 28))
    assert "(1, 64, 1, 1)" in text and "(1, 1, 28, 28)" in text
    total = sum(p.size for p in conv_autoencoder().parameters())
    assert f"{total:,}" in text.splitlines()[-1]


def test_cupy_request_without_gpu_says_how_to_install():
    from scratchnet import backend
    if backend.is_available("cupy"):
        pytest.skip("a GPU is present")
    with pytest.raises(backend.BackendUnavailableError, match="cupy"):
        conv_autoencoder().to("cupy")


def test_a_shared_parameter_is_listed_and_counted_once():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.bias"]
    assert model.num_parameters() == 9 + 3 + 3


def test_replacing_a_child_or_parameter_keeps_its_place():
    seq = nn.Sequential(nn.ReLU(), nn.Sigmoid(), nn.Tanh())
    setattr(seq, "0", nn.LeakyReLU())
    assert [type(m).__name__ for m in seq] == ["LeakyReLU", "Sigmoid", "Tanh"]
    lin = nn.Linear(2, 3)
    lin.weight = nn.Parameter(np.zeros((3, 2), np.float32))
    assert list(lin.state_dict()) == ["weight", "bias"]
