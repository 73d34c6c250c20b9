"""The reference autoencoder against the identical PyTorch model, in float64 (torch optional)."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.gradcheck import rel_error
from scratchnet.models import conv_autoencoder, dense_autoencoder

torch = pytest.importorskip("torch")
tnn = torch.nn
import torch_models  # noqa: E402   (needs torch)

torch_conv_autoencoder, torch_dense_autoencoder = torch_models.conv_autoencoder, torch_models.dense_autoencoder


def norm_rel(a, b):
    """||a - b|| / ||b|| over a whole tensor (element-wise ratios blow up on near-zero entries,
    e.g. an Adam step on a gradient that is zero up to rounding)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("ours,theirs", [(conv_autoencoder, torch_conv_autoencoder),
                                         (dense_autoencoder, torch_dense_autoencoder)],
                         ids=["conv", "dense"])
def test_autoencoder_matches_pytorch_float64(ours, theirs):
    sn.manual_seed(0)
    model = ours().double()
    tmodel = theirs().double()
    assert list(model.state_dict()) == list(tmodel.state_dict())      # same keys, same order
    tgrads = dict(tmodel.named_parameters())
    for step, loss, tloss, gx, tgx in torch_models.adam_steps_side_by_side(model, tmodel):
        assert rel_error(loss, tloss) < 1e-12
        assert norm_rel(gx, tgx) < 1e-12
        for name, p in model.named_parameters():
            assert norm_rel(p.grad, tgrads[name].grad.numpy()) < 1e-12, (step, name)
    for name, p in model.named_parameters():                       # after the third update
        assert norm_rel(p.data, tgrads[name].detach().numpy()) < 1e-12, name


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [
    (3, 2, 1, 1), ((2, 5), (3, 1), (2, 1), (2, 0)), (4, (1, 3), 0, (0, 2))])
def test_conv_layers_match_pytorch_forward_and_input_grad(rng, kernel, stride, padding, output_padding):
    sn.manual_seed(1)
    for ours, theirs, extra in [
            (nn.Conv2d, tnn.Conv2d, {}),
            (nn.ConvTranspose2d, tnn.ConvTranspose2d, {"output_padding": output_padding})]:
        layer = ours(3, 2, kernel, stride=stride, padding=padding, **extra).double()
        tlayer = theirs(3, 2, kernel, stride=stride, padding=padding, **extra).double()
        tlayer.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
        x = rng.standard_normal((2, 3, 9, 8))
        tx = torch.tensor(x, requires_grad=True)
        ty = tlayer(tx)
        y = layer(x)
        assert y.shape == tuple(ty.shape)
        g = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(g))
        gx = layer.backward(g)
        assert rel_error(y, ty.detach().numpy()) < 1e-12
        assert rel_error(gx, tx.grad.numpy()) < 1e-12
        assert rel_error(layer.weight.grad, tlayer.weight.grad.numpy()) < 1e-12
        assert rel_error(layer.bias.grad, tlayer.bias.grad.numpy()) < 1e-12
