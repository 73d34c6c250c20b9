"""Images at their own size: tiled inference equals one pass (overlap >= receptive field), the
U-Net's reflect padding to a multiple of 4, the receptive radii the models state, colour modes."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet.inference import check_fits, denoise_color, denoise_image, pad_to_multiple
from scratchnet.models import DnCNN, UNet, conv_autoencoder


def _trained_like(model):
    """Batch norm with non-trivial running statistics, as after training."""
    r = np.random.default_rng(0)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf[...] = r.standard_normal(buf.shape) * 0.1
        elif name.endswith("running_var"):
            buf[...] = r.uniform(0.5, 2, buf.shape)
    return model


@pytest.mark.parametrize("make,shape", [(lambda: DnCNN(6, 8), (75, 61)),
                                        (lambda: UNet(4), (70, 93)),
                                        (lambda: UNet(4), (64, 64))],
                         ids=["dncnn", "unet-padded", "unet"])
@pytest.mark.parametrize("tile", [16, 24, 40])
def test_tiled_equals_untiled(make, shape, tile, xp):
    sn.manual_seed(0)
    model = _trained_like(make()).to(sn.backend.backend_name(xp))
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    whole = denoise_image(model, image, tile=10**6)
    tiled = denoise_image(model, image, tile=tile)
    assert whole.shape == shape and whole.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", [lambda: DnCNN(7, 8), lambda: UNet(4)], ids=["dncnn", "unet"])
def test_receptive_radius_bounds_an_impulse_response(make):
    """A change at one input pixel moves outputs no further than receptive_radius away (all
    four phases of the U-Net's pooling grid), and the bound is reached."""
    sn.manual_seed(0)
    model = make().double()
    x = np.random.default_rng(2).random((1, 1, 96, 96))
    with sn.nn.eval_mode(model), sn.no_grad():
        base = model(x)
        reach = 0
        for p in [(48, 48), (49, 50), (50, 51), (51, 49)]:
            moved = x.copy()
            moved[0, 0][p] += 1
            where = np.argwhere(np.abs(model(moved) - base)[0, 0] > 0)
            reach = max(reach, int(np.abs(where - p).max()))
    assert reach <= model.receptive_radius
    assert reach >= model.receptive_radius - 1


def test_unet_output_of_a_padded_image_is_cropped_back():
    sn.manual_seed(0)
    model = UNet(2)
    image = np.random.default_rng(0).random((30, 21), dtype=np.float32)
    out = denoise_image(model, image)
    padded = pad_to_multiple(image, 4)
    assert padded.shape == (32, 24)
    np.testing.assert_array_equal(padded[:30, :21], image)
    np.testing.assert_array_equal(padded[30:, :21], image[28:26:-1])           # reflected
    with sn.nn.eval_mode(model), sn.no_grad():
        np.testing.assert_allclose(out, model(padded[None, None])[0, 0, :30, :21], atol=1e-6)


def test_colour_per_channel_and_through_luminance():
    sn.manual_seed(0)
    model = DnCNN(3, 4)
    rgb = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    per = denoise_color(model, rgb, "channels")
    for c in range(3):
        np.testing.assert_array_equal(per[..., c], denoise_image(model, rgb[..., c]))
    lum = denoise_color(model, rgb, "luminance")
    w = np.array([0.299, 0.587, 0.114])
    y = (rgb @ w).astype(np.float32)
    np.testing.assert_allclose(lum @ w, denoise_image(model, y), atol=1e-5)    # Y is denoised
    np.testing.assert_allclose(lum[..., 0] - lum @ w, rgb[..., 0] - rgb @ w, atol=1e-5)   # R - Y kept


def test_check_fits_names_what_is_wrong():
    with pytest.raises(ValueError, match="takes 28x28 digits only"):
        check_fits(conv_autoencoder(), (40, 40))
    with pytest.raises(ValueError, match=r"the image is 1x1 pixels; at least 8x8 is needed"):
        check_fits(DnCNN(3, 4), (1, 1))
    with pytest.raises(ValueError, match="takes 3-channel images, this one has 1 channel"):
        check_fits(DnCNN(3, 4, channels=3), (20, 20))
    check_fits(UNet(2), (9, 30, 3))
