"""A float32 training step stays float32: activations, gradients, parameters, optimizer state."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn, optim
from scratchnet.models import conv_autoencoder, dense_autoencoder


@pytest.mark.parametrize("build", [conv_autoencoder, dense_autoencoder], ids=["conv", "dense"])
@pytest.mark.parametrize("opt_cls", [optim.Adam, optim.AdamW, optim.SGD])
def test_training_step_keeps_float32(xp, build, opt_cls):
    sn.manual_seed(0)
    model = build().to(xp.__name__)
    kw = {"momentum": 0.9} if opt_cls is optim.SGD else {}
    opt = opt_cls(model.parameters(), lr=1e-3, weight_decay=1e-5, **kw)
    mse = nn.MSELoss()
    x = xp.asarray(np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32))
    seen = []
    for _ in range(2):
        h = x
        for layer in list(model.encoder) + list(model.decoder):
            h = layer(h)
            seen.append(("activation", type(layer).__name__, h.dtype))
        loss = mse(h, x)
        seen.append(("loss", "", loss.dtype))
        g = mse.backward()
        for layer in reversed(list(model.encoder) + list(model.decoder)):
            g = layer.backward(g)
            seen.append(("gradient", type(layer).__name__, g.dtype))
        opt.step()
        opt.zero_grad()
    seen += [("param", n, p.dtype) for n, p in model.named_parameters()]
    seen += [("grad", n, p.grad.dtype) for n, p in model.named_parameters()]
    for s in opt.state.values():
        seen += [("state", k, v.dtype) for k, v in s.items() if hasattr(v, "dtype")]
    bad = [s for s in seen if s[2] != np.float32]
    assert not bad
