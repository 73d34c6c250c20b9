"""BatchNorm2d, the poolings and the U-Net against PyTorch in float64 (torch optional)."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.models import UNet
from test_torch_reference import norm_rel

torch = pytest.importorskip("torch")
tnn = torch.nn
from torch_models import UNet as torch_unet, adam_steps_side_by_side  # noqa: E402   (needs torch)


def layer_vs_torch(ours, theirs, x, train=True):
    """Forward and backward (random upstream gradient) of a layer and its PyTorch twin."""
    y = ours(x)
    g = np.random.default_rng(99).standard_normal(y.shape)
    gx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    assert norm_rel(y, ty.detach().numpy()) < 1e-12
    assert norm_rel(gx, tx.grad.numpy()) < 1e-12
    return ty


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (1, 3, 2, 2)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_matches_pytorch_in_training_and_eval(shape, momentum):
    r = np.random.default_rng(0)
    bn = nn.BatchNorm2d(shape[1], momentum=momentum).double()
    tbn = tnn.BatchNorm2d(shape[1], momentum=momentum).double()
    bn.weight.data[...] = r.uniform(0.5, 2, shape[1])
    bn.bias.data[...] = r.standard_normal(shape[1])
    tbn.load_state_dict({k: torch.tensor(v) for k, v in bn.state_dict().items()})
    for step in range(4):                                   # several steps of running statistics
        bn.zero_grad()
        tbn.zero_grad()
        layer_vs_torch(bn, tbn, r.standard_normal(shape) * 2 + 0.5)
        np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.bias.grad, tbn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    for key, value in tbn.state_dict().items():
        assert norm_rel(bn.state_dict()[key], value.numpy()) < 1e-12, key
    bn.eval()
    tbn.eval()
    layer_vs_torch(bn, tbn, r.standard_normal(shape))


@pytest.mark.parametrize("ours,theirs", [
    (lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2)),
    (lambda: nn.MaxPool2d(3, 2, 1), lambda: tnn.MaxPool2d(3, 2, 1)),
    (lambda: nn.MaxPool2d(3, 1), lambda: tnn.MaxPool2d(3, 1)),
    (lambda: nn.AvgPool2d(3, 2, 1), lambda: tnn.AvgPool2d(3, 2, 1)),
    (lambda: nn.Upsample(2), lambda: tnn.Upsample(scale_factor=2, mode="nearest")),
], ids=["max2", "max3s2p1", "max3s1", "avg3s2p1", "upsample2"])
def test_pooling_matches_pytorch(ours, theirs):
    layer_vs_torch(ours(), theirs(), np.random.default_rng(1).standard_normal((2, 3, 7, 8)))


def test_maxpool_ties_pick_the_same_position_as_pytorch():
    x = np.random.default_rng(2).integers(0, 3, (2, 2, 6, 6)).astype(np.float64)
    layer_vs_torch(nn.MaxPool2d(2), tnn.MaxPool2d(2), x)


def test_unet_state_dict_matches_pytorch_and_loads_both_ways():
    sn.manual_seed(0)
    model = UNet()
    tmodel = torch_unet()
    ours, theirs = model.state_dict(), tmodel.state_dict()
    assert list(ours) == list(theirs)                       # keys and order
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)
    tmodel.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ours.items()})
    torch.manual_seed(1)
    other = torch_unet()
    model.load_state_dict({k: v.numpy() for k, v in other.state_dict().items()})
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v.numpy())


def test_unet_three_adam_steps_match_pytorch_float64():
    sn.manual_seed(0)
    model = UNet().double()
    tmodel = torch_unet().double()
    for step, loss, tloss, gx, tgx in adam_steps_side_by_side(model, tmodel):
        assert abs(loss - tloss) / tloss < 1e-9
        assert norm_rel(gx, tgx) < 1e-9
        # A convolution's bias in front of batch norm has gradient 0 in exact arithmetic (the
        # mean is subtracted again), so both sides hold only rounding noise (~1e-18) there:
        # those are measured against the largest gradient of the model instead.
        scale = max(float(np.linalg.norm(tp.grad.numpy())) for tp in tmodel.parameters())
        for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            diff = float(np.linalg.norm(p.grad - tp.grad.numpy()))
            assert diff < 1e-9 * max(float(np.linalg.norm(tp.grad.numpy())), 1e-6 * scale), name
    for key, value in tmodel.state_dict().items():      # parameters and running statistics
        assert norm_rel(model.state_dict()[key], value.numpy()) < 1e-9, key
    model.eval()
    tmodel.eval()
    x = np.random.default_rng(1).random((2, 1, 28, 28))
    assert norm_rel(model(x), tmodel(torch.tensor(x)).detach().numpy()) < 1e-9
