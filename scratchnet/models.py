"""The denoising autoencoders, built from :mod:`scratchnet.nn`, and a model summary."""
from __future__ import annotations

from typing import Any

from . import nn
from .backend import get_backend

Array = Any

__all__ = ["Autoencoder", "conv_autoencoder", "dense_autoencoder", "build_model", "MODELS",
           "summary"]


class Autoencoder(nn.Module):
    """``decoder(encoder(x))``; encoder and decoder are reachable (and usable) separately.

    State-dict keys are "encoder.0.weight", ..., "decoder.5.bias".
    """

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: Array) -> Array:
        return self.decoder(self.encoder(x))

    def backward(self, grad_output: Array) -> Array:
        return self.encoder.backward(self.decoder.backward(grad_output))


def conv_autoencoder() -> Autoencoder:
    """The reference convolutional denoising autoencoder for 1x28x28 images.

    encoder: (N,1,28,28) -Conv 3x3 s2 p1-> (N,16,14,14) -Conv 3x3 s2 p1-> (N,32,7,7)
             -Conv 7x7-> (N,64,1,1)                       (ReLU after the first two)
    decoder: the mirror image with ConvTranspose2d, ReLU between, Sigmoid at the end so the
             output is an image in [0, 1].
    """
    encoder = nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 7),
    )
    decoder = nn.Sequential(
        nn.ConvTranspose2d(64, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
    )
    return Autoencoder(encoder, decoder)


def dense_autoencoder(image_shape: tuple[int, int, int] = (1, 28, 28),
                      hidden: tuple[int, ...] = (256, 64)) -> Autoencoder:
    """A "vanilla" fully connected autoencoder: Flatten, Linear+ReLU down to ``hidden[-1]``,
    then back up, Sigmoid, Unflatten to ``image_shape``."""
    sizes = [image_shape[0] * image_shape[1] * image_shape[2], *hidden]
    enc: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes, sizes[1:]):
        enc += [nn.Linear(a, b), nn.ReLU()]
    dec: list[nn.Module] = []
    rev = sizes[::-1]
    for i, (a, b) in enumerate(zip(rev, rev[1:])):
        dec += [nn.Linear(a, b), nn.ReLU() if i < len(rev) - 2 else nn.Sigmoid()]
    dec.append(nn.Unflatten(1, image_shape))
    return Autoencoder(nn.Sequential(*enc), nn.Sequential(*dec))


MODELS = {"conv": conv_autoencoder, "dense": dense_autoencoder}


def build_model(name: str) -> Autoencoder:
    """``build_model("conv" | "dense")``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]()


def summary(model: nn.Module, input_shape: tuple[int, ...], dtype: str = "float32") -> str:
    """A table of every leaf layer: its output shape for ``input_shape`` and parameter count.

    Runs one forward pass on zeros (on the model's backend) to find the shapes.
    """
    xp = get_backend(model.backend)
    rows: list[tuple[str, str, str, int]] = []

    def walk(module: nn.Module, prefix: str, x: Array) -> Array:
        children = list(module._modules.items())
        if not children:
            y = module(x)
            n = sum(p.size for p in module.parameters())
            rows.append((prefix, type(module).__name__, str(tuple(y.shape)), n))
            return y
        for name, child in children:
            x = walk(child, f"{prefix}.{name}" if prefix else name, x)
        return x

    walk(model, "", xp.zeros(input_shape, dtype=dtype))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'layer':<{width}}{'type':<17}{'output shape':<20}{'params':>9}", "-" * (width + 46)]
    lines += [f"{name:<{width}}{kind:<17}{shape:<20}{n:>9,}" for name, kind, shape, n in rows]
    total = model.num_parameters()
    lines += ["-" * (width + 46), f"{'total':<{width + 37}}{total:>9,}"]
    return "\n".join(lines)
