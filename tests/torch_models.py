"""PyTorch twins of scratchnet's models (same layers, names and order), for the parity tests
and the benchmarks. Imported only where torch is installed."""
import torch
import torch.nn as tnn


class TorchAutoencoder(tnn.Module):
    """decoder(encoder(x)); state-dict keys "encoder.0.weight", ... as in scratchnet."""

    def __init__(self, encoder: tnn.Sequential, decoder: tnn.Sequential):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


def conv_autoencoder() -> TorchAutoencoder:
    return TorchAutoencoder(
        tnn.Sequential(tnn.Conv2d(1, 16, 3, stride=2, padding=1), tnn.ReLU(),
                       tnn.Conv2d(16, 32, 3, stride=2, padding=1), tnn.ReLU(),
                       tnn.Conv2d(32, 64, 7)),
        tnn.Sequential(tnn.ConvTranspose2d(64, 32, 7), tnn.ReLU(),
                       tnn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), tnn.ReLU(),
                       tnn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), tnn.Sigmoid()))


def dense_autoencoder() -> TorchAutoencoder:
    return TorchAutoencoder(
        tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 64), tnn.ReLU()),
        tnn.Sequential(tnn.Linear(64, 256), tnn.ReLU(), tnn.Linear(256, 784), tnn.Sigmoid(),
                       tnn.Unflatten(1, (1, 28, 28))))


def _block(i: int, o: int) -> tnn.Sequential:
    return tnn.Sequential(tnn.Conv2d(i, o, 3, padding=1), tnn.BatchNorm2d(o), tnn.ReLU(),
                          tnn.Conv2d(o, o, 3, padding=1), tnn.BatchNorm2d(o), tnn.ReLU())


class UNet(tnn.Module):
    """The U-Net of scratchnet.models.UNet, written the PyTorch way (one pool used twice)."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.e1, self.e2, self.b = _block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.pool = tnn.MaxPool2d(2)
        self.u2, self.d2 = tnn.ConvTranspose2d(4 * w, 2 * w, 2, 2), _block(4 * w, 2 * w)
        self.u1, self.d1 = tnn.ConvTranspose2d(2 * w, w, 2, 2), _block(2 * w, w)
        self.out = tnn.Conv2d(w, 1, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(self.pool(e1))
        b = self.b(self.pool(e2))
        d2 = self.d2(torch.cat([self.u2(b), e2], 1))
        d1 = self.d1(torch.cat([self.u1(d2), e1], 1))
        return torch.sigmoid(self.out(d1))


class DnCNN(tnn.Module):
    """scratchnet.models.DnCNN the PyTorch way: y = x - layers(x) (same keys: layers.0.weight, ...)."""

    def __init__(self, width: int = 64, depth: int = 17, channels: int = 1):
        super().__init__()
        layers = [tnn.Conv2d(channels, width, 3, padding=1), tnn.ReLU()]
        for _ in range(depth - 2):
            layers += [tnn.Conv2d(width, width, 3, padding=1, bias=False), tnn.BatchNorm2d(width),
                       tnn.ReLU()]
        layers.append(tnn.Conv2d(width, channels, 3, padding=1))
        self.layers = tnn.Sequential(*layers)

    def forward(self, x):
        return x - self.layers(x)


MODELS = {"conv": conv_autoencoder, "dense": dense_autoencoder, "unet": UNet, "dncnn": DnCNN}


def adam_steps_side_by_side(model, tmodel, steps: int = 3, seed: int = 0,
                            shape: tuple = (4, 1, 28, 28), clip: bool = True):
    """Train a scratchnet model and its PyTorch twin (float64, same weights) on the same noisy
    batches with Adam (lr 1e-3, weight decay 1e-5). Yields, per step and before the update:
    (step, loss, torch loss, dL/dx, torch dL/dx) with all parameter gradients in place."""
    import numpy as np
    from scratchnet import nn, optim
    tmodel.load_state_dict({k: torch.tensor(np.array(v)) for k, v in model.state_dict().items()})
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3, weight_decay=1e-5)
    mse, tmse = nn.MSELoss(), tnn.MSELoss()
    r = np.random.default_rng(seed)
    for step in range(steps):
        clean = r.random(shape)
        noisy = clean + 0.5 * r.standard_normal(clean.shape)
        noisy = np.clip(noisy, 0, 1) if clip else noisy
        opt.zero_grad()
        loss = mse(model(noisy), clean)
        gx = model.backward(mse.backward())
        topt.zero_grad()
        tx = torch.tensor(noisy, requires_grad=True)
        tloss = tmse(tmodel(tx), torch.tensor(clean))
        tloss.backward()
        yield step, float(loss), tloss.item(), gx, tx.grad.numpy()
        opt.step()
        topt.step()
