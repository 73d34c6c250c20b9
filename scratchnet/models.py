"""The denoisers, built from [`scratchnet.nn`](nn.md): the reference convolutional autoencoder,
a dense autoencoder, a U-Net with skip connections and DnCNN (residual learning for
photographs); and a model summary.

Every model says what images it takes: ``receptive_radius`` (None for the autoencoders, which
take 28x28 digits only; else how many pixels away an output pixel can see, so that an image
can be denoised tile by tile) and ``size_multiple`` (height and width must be multiples of it).

Course: [7. Skip connections](../learn/07-skip-connections.md) (UNet), [9. Training the
denoiser](../learn/09-training.md) (conv_autoencoder).
"""
from __future__ import annotations

from typing import Any, Callable

from . import functional as F
from . import nn
from .backend import get_backend
from .nn._checks import positive_int
from .ops import op

Array = Any

# The largest width a model is built with: what a checkpoint's config (or --width) may ask for
# before any memory is spent on it. A U-Net's parameters grow with width squared.
MAX_WIDTH = 256
MAX_DEPTH = 64                        # DnCNN's convolutions (the paper: 17 and 20)

__all__ = ["Autoencoder", "conv_autoencoder", "dense_autoencoder", "UNet", "unet_backward", "unet",
           "DnCNN", "dncnn", "build_model", "MODELS", "MAX_WIDTH", "MAX_DEPTH", "summary"]


class Autoencoder(nn.Module):
    """``decoder(encoder(x))``; encoder and decoder are reachable (and usable) separately.

    State-dict keys are "encoder.0.weight", ..., "decoder.5.bias".
    """
    receptive_radius: int | None = None          # 28x28 only: not fully convolutional
    size_multiple = 1

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

        encoder  (N,1,28,28) -Conv 3x3 s2 p1-> (N,16,14,14) -Conv 3x3 s2 p1-> (N,32,7,7)
                 -Conv 7x7-> (N,64,1,1)                       (ReLU after the first two)
        decoder  the mirror image with ConvTranspose2d

    The decoder has a ReLU between its layers and a Sigmoid at the end, so the output is an
    image in [0, 1].
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


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions (padding 1: the size is kept), each followed by batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class UNet(nn.Module):
    """A two-level U-Net for (N, 1, H, W) images, H and W divisible by 4.

        x ─ e1 ─────────────────────────────── cat ─ d1 ─ out ─ sigmoid ─ y     (w ch., H)
             └ pool1 ─ e2 ──────────── cat ─ d2 ─ u1 ┘                           (2w, H/2)
                        └ pool2 ─ b ─ u2 ┘                                       (4w, H/4)

    e1, e2, b, d2, d1 are [`conv_block`][scratchnet.models.conv_block]s; pool1/2 are 2x2 max pools; u2, u1 are 2x2
    stride-2 transposed convolutions; ``out`` is a 1x1 convolution. The state-dict keys,
    shapes and order are those of the equivalent PyTorch module (``e1.0.weight``, ...,
    ``e1.1.running_mean``, ..., ``out.bias``), so weights load in both directions.

    Backward is written out in the op [`unet_backward`][scratchnet.models.unet_backward], which
    [`backward`][scratchnet.models.UNet.backward] calls with the stages' own backward passes: at a
    concatenation the gradient is *split* by channels; a feature map that fed two consumers (e1
    and e2: the pool below and the skip) gets the *sum* of the two gradients.

    Any image whose sides are multiples of 4 goes through (``size_multiple``). An output pixel
    sees at most ``receptive_radius`` = 24 input pixels away: two 3x3 convolutions at each
    level on the way down and up, the deeper ones counting 2 and 4 input pixels per step, plus
    the pooling grid (tests/test_tiling.py measures it with an impulse at every phase).
    """
    receptive_radius = 24
    size_multiple = 4

    def __init__(self, width: int = 16):
        super().__init__()
        w = positive_int(width, "width", "UNet")
        if w > MAX_WIDTH:
            raise ValueError(f"UNet: width must be at most {MAX_WIDTH} (width 256 is about "
                             f"{117_393 * 256 ** 2 // 16 ** 2 / 1e6:.0f} million parameters), got {w}")
        self.e1, self.e2, self.b = conv_block(1, w), conv_block(w, 2 * w), conv_block(2 * w, 4 * w)
        self.pool1, self.pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)   # one per use: see Module
        self.u2, self.d2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), conv_block(4 * w, 2 * w)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * w, w, 2, 2), conv_block(2 * w, w)
        self.out, self.sigmoid = nn.Conv2d(w, 1, 1), nn.Sigmoid()

    def forward(self, x: Array) -> Array:
        if getattr(x, "ndim", 0) == 4 and (x.shape[2] % 4 or x.shape[3] % 4):
            raise ValueError(f"UNet: input height and width must be divisible by 4 (two 2x2 "
                             f"poolings), got {tuple(x.shape[2:])}")
        e1 = self.e1(x)
        e2 = self.e2(self.pool1(e1))
        up2 = self.u2(self.b(self.pool2(e2)))
        up1 = self.u1(self.d2(F.cat_channels(up2, e2)))
        self._cache = (up2.shape[1], up1.shape[1])          # where to split the gradients
        return self.sigmoid(self.out(self.d1(F.cat_channels(up1, e1))))

    def backward(self, grad_output: Array) -> Array:
        c_up2, c_up1 = self._pop_cache(grad_output)
        return unet_backward(grad_output, c_up2, c_up1,
                             lambda name, g: getattr(self, name).backward(g))


@op
def unet_backward(grad_output: Array, c_up2: int, c_up1: int,
                  stage: Callable[[str, Array], Array]) -> Array:
    """The U-Net's backward pass, from dL/dy to dL/dx: the order of its stages' backward
    passes, its two splits and its two sums (`UNet.backward` calls it).

    Args:
        grad_output: dL/dy, (N, 1, H, W).
        c_up2: the channels of up2, the first part of cat(up2, e2).
        c_up1: the channels of up1, the first part of cat(up1, e1).
        stage: ``stage(name, g)`` runs the backward pass of the stage ``name`` ('sigmoid',
            'out', 'd1', 'u1', 'd2', 'u2', 'b', 'pool2', 'e2', 'pool1', 'e1') on ``g``, the
            gradient of its output: it adds the stage's parameter gradients and returns the
            gradient of its input. Each stage's backward runs once per forward pass.

    Returns:
        dL/dx, (N, 1, H, W).
    """
    g = stage("d1", stage("out", stage("sigmoid", grad_output)))
    g_up1, g_e1_skip = F.skip_split(g, c_up1)                 # split at cat(up1, e1)
    g = stage("d2", stage("u1", g_up1))
    g_up2, g_e2_skip = F.skip_split(g, c_up2)                 # split at cat(up2, e2)
    g_e2 = F.skip_sum(stage("pool2", stage("b", stage("u2", g_up2))), g_e2_skip)
    g_e1 = F.skip_sum(stage("pool1", stage("e2", g_e2)), g_e1_skip)   # e2 complete, then down
    return stage("e1", g_e1)


def unet(width: int = 16) -> UNet:
    """The U-Net denoiser (width 16: 117,393 parameters)."""
    return UNet(width)


class DnCNN(nn.Module):
    """DnCNN (Zhang et al., IEEE TIP 2017): a plain stack of 3x3 convolutions that predicts the
    noise, subtracted from the input (residual learning).

        x ─ conv ─ relu ─ [conv ─ bn ─ relu] x (depth - 2) ─ conv ─ r      y = x - r

    Args:
        depth: number of convolutions (>= 2; the paper: 17).
        width: channels of the hidden layers (the paper: 64).
        channels: image channels in and out (1: grayscale).

    Shapes: (N, channels, H, W) -> (N, channels, H, W) for any H, W (zero padding 1 keeps the
    size). The hidden convolutions have no bias (batch norm's shift replaces it): depth 10,
    width 32 is 74,849 parameters. State-dict keys ``layers.0.weight``, ``layers.0.bias``,
    ``layers.2.weight``, ``layers.3.weight``, ``layers.3.running_mean``, ..., as in the PyTorch
    twin (tests/torch_models.py).

    Backward, written out in [`backward`][scratchnet.models.DnCNN.backward]: ``y = x - r(x)``, so with ``g = dL/dy`` the
    stack's output gets ``dL/dr = -g`` (its parameters' gradients follow from that) and
    ``dL/dx = g + J_r^T (-g)``: the upstream gradient straight through the skip, plus the
    stack's backward of ``-g``.

    Each convolution sees one pixel further, so an output pixel depends on the inputs at most
    ``receptive_radius = depth`` pixels away: what tiled inference must overlap by.
    """
    size_multiple = 1

    def __init__(self, depth: int = 17, width: int = 64, channels: int = 1):
        super().__init__()
        depth = positive_int(depth, "depth", "DnCNN")
        if depth < 2:
            raise ValueError(f"DnCNN: depth must be >= 2 (a first and a last convolution), got {depth}")
        w = positive_int(width, "width", "DnCNN")
        if w > MAX_WIDTH or depth > MAX_DEPTH:
            raise ValueError(f"DnCNN: width must be at most {MAX_WIDTH} and depth at most "
                             f"{MAX_DEPTH}, got width {w}, depth {depth}")
        c = positive_int(channels, "channels", "DnCNN")
        self.depth, self.width, self.channels = depth, w, c
        layers: list[nn.Module] = [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        layers.append(nn.Conv2d(w, c, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        self.receptive_radius = depth

    def forward(self, x: Array) -> Array:
        if getattr(x, "ndim", 0) != 4 or x.shape[1] != self.channels:
            raise ValueError(f"DnCNN: expected input of shape (N, {self.channels}, H, W), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        return x - self.layers(x)

    def backward(self, grad_output: Array) -> Array:
        # dL/dr = -g: the stack's parameters get the gradient of -r, and dx = g + J_r^T (-g).
        return grad_output + self.layers.backward(-grad_output)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, channels={self.channels}"


def dncnn(width: int = 64, depth: int = 17, channels: int = 1) -> DnCNN:
    """DnCNN of ``depth`` convolutions of ``width`` channels (the paper's: 17, 64)."""
    return DnCNN(depth, width, channels)


MODELS = {"conv": conv_autoencoder, "dense": dense_autoencoder, "unet": unet, "dncnn": dncnn}
_OPTIONS = {"unet": {"width"}, "dncnn": {"width", "depth", "channels"}}   # beyond the defaults


def build_model(name: str, width: int | None = None, depth: int | None = None,
                channels: int | None = None) -> nn.Module:
    """``build_model("conv" | "dense" | "unet" | "dncnn", width=None, depth=None,
    channels=None)``; ``width`` is the U-Net's and DnCNN's, ``depth`` and ``channels`` DnCNN's
    (None: the model's default)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    given = {k: v for k, v in (("width", width), ("depth", depth), ("channels", channels))
             if v is not None}
    for option in given:
        if option not in _OPTIONS.get(name, ()):
            having = " and ".join(f"'{m}'" for m in MODELS if option in _OPTIONS.get(m, ()))
            raise ValueError(f"model {name!r} has no {option} option (only {having} does)")
    return MODELS[name](**given)


def summary(model: nn.Module, input_shape: tuple[int, ...], dtype: str = "float32") -> str:
    """A table of every leaf layer: its output shape for ``input_shape`` and parameter count.

    Runs one forward pass on zeros (on the model's backend, in eval mode so that no running
    statistics change) and reads each leaf's output shape; rows follow registration order.
    """
    xp = get_backend(model.backend)
    try:
        with nn.eval_mode(model), nn.no_grad():
            model(xp.zeros(input_shape, dtype=dtype))
    finally:
        model.to()                                       # drop the caches of that pass
    rows = [(name, type(m).__name__, str(tuple(m.__dict__.get("_out_shape") or ())),
             sum(p.size for p in m.parameters()))
            for name, m in model.named_modules() if name and not m._modules]
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'layer':<{width}}{'type':<17}{'output shape':<20}{'params':>9}", "-" * (width + 46)]
    lines += [f"{name:<{width}}{kind:<17}{shape:<20}{n:>9,}" for name, kind, shape, n in rows]
    total = model.num_parameters()
    lines += ["-" * (width + 46), f"{'total':<{width + 37}}{total:>9,}"]
    return "\n".join(lines)
