"""DnCNN: its hand-written backward by gradcheck (float64, random upstream gradient), against a
PyTorch twin in float64 (state dicts load both ways; forward, gradients and Adam steps agree),
and its checks of arguments and inputs."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet.gradcheck import gradcheck
from scratchnet.models import DnCNN, build_model
from test_torch_reference import norm_rel


@pytest.mark.parametrize("depth,width,channels", [(2, 3, 1), (4, 5, 1), (3, 4, 3)])
def test_gradcheck_float64(depth, width, channels):
    sn.manual_seed(depth)
    model = DnCNN(depth, width, channels).double()
    x = np.random.default_rng(depth).standard_normal((2, channels, 7, 6))
    report = gradcheck(model, x)                  # random upstream gradient, accumulation checked
    assert report.passed


def test_backward_is_the_skip_minus_the_stack(xp):
    """dL/dx = g - J^T g, and the stack's parameters see dL/dr = -g (a wrong sign here trains
    the model away from the clean image: its loss grows from the first step)."""
    sn.manual_seed(0)
    model = DnCNN(3, 4).double().to(sn.backend.backend_name(xp))
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1, 6, 6)))
    g = xp.asarray(np.random.default_rng(1).standard_normal((2, 1, 6, 6)))
    model(x)
    gx = model.backward(g)
    stack_grads = [sn.to_numpy(p.grad).copy() for p in model.layers.parameters()]
    model.zero_grad()
    model.layers(x)
    gx_stack = model.layers.backward(-g)
    np.testing.assert_allclose(sn.to_numpy(gx), sn.to_numpy(g + gx_stack), rtol=1e-12)
    for a, p in zip(stack_grads, model.layers.parameters()):
        np.testing.assert_allclose(a, sn.to_numpy(p.grad), rtol=1e-12)


def test_parameters_and_shapes():
    assert build_model("dncnn", 32, 10).num_parameters() == 74_849
    assert build_model("dncnn").num_parameters() == 556_097          # the paper's 17 x 64
    model = DnCNN(5, 8)
    assert model.receptive_radius == 5 and model.size_multiple == 1
    for shape in [(1, 1, 9, 13), (3, 1, 40, 40)]:
        assert model(np.zeros(shape, np.float32)).shape == shape


@pytest.mark.parametrize("kwargs,message", [
    (dict(depth=1), "depth must be >= 2"), (dict(width=0), "width"), (dict(channels=0), "channels")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DnCNN(**kwargs)


def test_bad_input_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, H, W\), got \(2, 3, 8, 8\)"):
        DnCNN(3, 4)(np.zeros((2, 3, 8, 8), np.float32))


def test_build_model_options():
    with pytest.raises(ValueError, match="model 'unet' has no depth option"):
        build_model("unet", depth=3)
    with pytest.raises(ValueError, match="model 'conv' has no width option"):
        build_model("conv", width=3)
    assert build_model("dncnn", 4, 3).depth == 3


# --- against PyTorch ----------------------------------------------------------------------
torch = pytest.importorskip("torch")
from torch_models import DnCNN as TorchDnCNN, adam_steps_side_by_side  # noqa: E402  (needs torch)


def test_state_dict_matches_pytorch_and_loads_both_ways():
    sn.manual_seed(0)
    model = DnCNN(5, 6)
    tmodel = TorchDnCNN(6, 5)
    ours, theirs = model.state_dict(), tmodel.state_dict()
    assert list(ours) == list(theirs)                       # keys and order
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)
    tmodel.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ours.items()})
    for k, v in tmodel.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ours[k])
    torch.manual_seed(1)
    other = TorchDnCNN(6, 5)
    model.load_state_dict({k: v.numpy() for k, v in other.state_dict().items()})
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v.numpy())


def test_forward_backward_and_adam_steps_match_pytorch_float64():
    sn.manual_seed(0)
    model = DnCNN(4, 6).double()
    tmodel = TorchDnCNN(6, 4).double()
    for step, loss, tloss, gx, tgx in adam_steps_side_by_side(model, tmodel, shape=(4, 1, 12, 10),
                                                              clip=False):
        assert abs(loss - tloss) / tloss < 1e-10
        assert norm_rel(gx, tgx) < 1e-10
        for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            assert norm_rel(p.grad, tp.grad.numpy()) < 1e-9, name
    for key, value in tmodel.state_dict().items():          # weights and running statistics
        assert norm_rel(model.state_dict()[key], value.numpy()) < 1e-9, key
    model.eval()
    tmodel.eval()
    x = np.random.default_rng(1).random((2, 1, 17, 23))
    assert norm_rel(model(x), tmodel(torch.tensor(x)).detach().numpy()) < 1e-12
