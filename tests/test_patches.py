"""Random training patches with the 8 flips and rotations, and the noise specification."""
import numpy as np
import pytest

from scratchnet.backend import backend_name, default_rng, to_numpy
from scratchnet.data import NoiseSpec, PatchLoader


def _images(n=3, h=20, w=17):
    return np.random.default_rng(0).random((n, h, w), dtype=np.float32)


def _reference_patch(images, i, top, left, mode, P):
    """The patch by NumPy's own flips: crop, then transpose / flip rows / flip columns."""
    p = images[i, top:top + P, left:left + P]
    if mode & 1:
        p = p.T
    if mode & 2:
        p = p[::-1]
    if mode & 4:
        p = p[:, ::-1]
    return p


def test_every_patch_is_a_crop_under_one_of_the_8_symmetries(xp):
    images = _images()
    loader = PatchLoader(xp.asarray(images), patch_size=6, batch_size=50, patches_per_image=40, seed=3)
    batch = to_numpy(loader.batch(2, 1))
    assert batch.shape == (50, 1, 6, 6) and batch.dtype == np.float32
    for patch, (i, top, left, mode, scale) in zip(batch[:, 0], zip(*loader.indices(2, 1))):
        assert scale == 0
        np.testing.assert_array_equal(patch, _reference_patch(images, i, top, left, mode, 6))


def test_the_8_transforms_are_the_8_symmetries_of_the_square():
    square = np.arange(16.0).reshape(4, 4)
    made = {_reference_patch(square[None], 0, 0, 0, m, 4).tobytes() for m in range(8)}
    group = {np.rot90(f, k).tobytes() for f in (square, square.T) for k in range(4)}
    assert made == group and len(made) == 8


def test_batches_come_from_seed_epoch_batch_streams(xp):
    images = xp.asarray(_images())
    a = PatchLoader(images, 5, 8, 16, seed=1)
    b = PatchLoader(images, 5, 8, 16, seed=1)
    assert len(a) == 6                                        # ceil(3 * 16 / 8)
    straight = [to_numpy(x) for x in a]                       # epoch 0, iterated
    b.epoch = 0
    np.testing.assert_array_equal(to_numpy(b.batch(0, 4)), straight[4])   # any batch, directly
    assert a.epoch == 1                                       # iterating advances the epoch
    assert not np.array_equal(to_numpy(a.batch(1, 4)), straight[4])       # a new epoch differs
    assert not np.array_equal(to_numpy(PatchLoader(images, 5, 8, 16, seed=2).batch(0, 4)), straight[4])


def test_cupy_draws_the_same_patches_as_numpy(xp):
    images = _images()
    ours = to_numpy(PatchLoader(xp.asarray(images), 7, 16, 4, seed=5).batch(3, 2))
    np.testing.assert_array_equal(ours, PatchLoader(images, 7, 16, 4, seed=5).batch(3, 2))


def test_patches_reach_every_corner_and_transform():
    loader = PatchLoader(_images(2, 8, 9), 4, 4000, 1, seed=0)
    image, top, left, mode, _ = loader.indices(0, 0)
    assert set(image) == {0, 1} and set(mode) == set(range(8))
    assert set(top) == set(range(5)) and set(left) == set(range(6))


def test_without_scales_the_draws_are_the_streams_own():
    """The default draws no scale: a run's patches are those of a loader before scales."""
    loader = PatchLoader(_images(3, 20, 17), 6, 10, 4, seed=4)
    r = default_rng((4, 2, 3, 1), "numpy")
    want = (r.integers(0, 3, 10), r.integers(0, 15, 10), r.integers(0, 12, 10), r.integers(0, 8, 10))
    for got, expected in zip(loader.indices(2, 3), want):
        np.testing.assert_array_equal(got, expected)


def test_scaled_patches_are_crops_of_the_resized_images(xp):
    from PIL import Image
    images = _images(3, 30, 26)
    loader = PatchLoader(xp.asarray(images), 8, 64, 4, seed=2, scales=(1, 0.8, 0.5))
    assert loader.sizes.tolist() == [[30, 26], [24, 21], [15, 13]]
    resized = {k: np.stack([np.clip(np.asarray(Image.fromarray(x, mode="F").resize((w, h), Image.BICUBIC)), 0, 1)
                            for x in images]) for k, (h, w) in enumerate(loader.sizes) if k}
    resized[0] = images
    batch = to_numpy(loader.batch(1, 3))
    seen = set()
    for patch, (i, top, left, mode, k) in zip(batch[:, 0], zip(*loader.indices(1, 3))):
        h, w = loader.sizes[k]
        assert top <= h - 8 and left <= w - 8
        np.testing.assert_array_equal(patch, _reference_patch(resized[k], i, top, left, mode, 8))
        seen.add(int(k))
    assert seen == {0, 1, 2}


def test_each_scale_is_drawn_as_often_as_it_has_patch_positions():
    loader = PatchLoader(_images(2, 40, 40), 10, 20000, 1, seed=0, scales=(1, 0.5))
    positions = np.array([31 * 31, 11 * 11])
    share = np.bincount(loader.indices(0, 0)[4], minlength=2) / 20000
    np.testing.assert_allclose(share, positions / positions.sum(), atol=0.01)


def test_scaled_patches_keep_the_images_dtype():
    images = np.random.default_rng(1).random((2, 20, 20))            # float64
    loader = PatchLoader(images, 5, 64, 1, seed=0, scales=(1, 0.5))
    batch = loader.batch(0, 0)
    assert batch.dtype == np.float64
    for patch, (i, top, left, mode, k) in zip(batch[:, 0], zip(*loader.indices(0, 0))):
        if k == 0:                                                  # the images themselves
            np.testing.assert_array_equal(patch, _reference_patch(images, i, top, left, mode, 5))


def test_crop_titles_keep_their_line_breaks():
    """A multi-scale run's samples.png puts each patch's scale on a second title line."""
    from scratchnet import plotting
    fig = plotting.plot_crops([[("#1 t5\nx0.8", np.zeros((40, 40)))]], "t")
    title = fig.axes[0].get_title()
    fig.clf()
    assert title == "#1 t5\nx0.8"


@pytest.mark.parametrize("scales,message", [
    ((0.2,), "scale 0.2 makes the 20x17 images 4x3, smaller than the 4x4 patches"),
    ((1, 0), "scales must be one or more positive factors"),
    ((), "scales must be one or more positive factors"),
    ((1, 1.0), "scales must differ from each other"),
    ("ab", "scales must be a sequence of numbers")])
def test_bad_scales(scales, message):
    with pytest.raises(ValueError, match=message):
        PatchLoader(_images(), 4, 2, 1, scales=scales)


@pytest.mark.parametrize("kwargs,message", [
    (dict(patch_size=30), "patch_size 30 is larger than the images"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(patches_per_image=1.5), "patches_per_image must be a positive int")])
def test_bad_loader_arguments(kwargs, message):
    args = dict(patch_size=4, batch_size=2, patches_per_image=1, **{})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PatchLoader(_images(), **args)


# --- the noise specification ----------------------------------------------------------------
def test_sigma_spec_is_unclipped_gaussian_on_the_255_scale():
    spec = NoiseSpec.from_sigma(25)
    assert (spec.kind, spec.clip, spec.blind) == ("gaussian", False, False)
    assert spec.sigma == pytest.approx(25) and spec.describe("sigma") == "gaussian sigma 25 (unclipped)"
    blind = NoiseSpec.from_sigma(sigma_range=(0, 55))
    assert blind.factor_range == (0, 55 / 255) and blind.sigma == pytest.approx(27.5)
    assert blind.describe("sigma") == "gaussian sigma 0-55 (blind; unclipped)"
    assert NoiseSpec().describe() == "gaussian x0.5 (clipped to [0, 1])"


def test_blind_noise_draws_one_sigma_per_patch(xp):
    spec = NoiseSpec.from_sigma(sigma_range=(0, 55))
    x = xp.full((400, 1, 40, 40), 0.5, dtype=np.float32)
    noisy = to_numpy(spec.apply(x, default_rng(0, backend_name(xp))))
    assert noisy.dtype == np.float32
    stds = (noisy - 0.5).reshape(400, -1).std(axis=1) * 255
    assert stds.min() < 3 and stds.max() > 52                  # the range is covered
    assert np.histogram(stds, bins=5, range=(0, 55))[0].min() > 50   # about uniformly
    assert noisy.min() < 0 and noisy.max() > 1                 # not clipped


def test_test_images_have_their_own_streams_and_levels_scale_the_same_draws():
    clean = np.full((30, 20), 0.5, np.float32)
    spec = NoiseSpec.from_sigma(25, test_seed=7)
    a = spec.test_image(clean, 3)
    np.testing.assert_array_equal(a, spec.test_image(clean, 3))           # fixed
    assert not np.array_equal(a, spec.test_image(clean, 4))               # per image
    b = spec.at(50 / 255).test_image(clean, 3)
    np.testing.assert_allclose(b - 0.5, 2 * (a - 0.5), atol=1e-6)         # same draws, scaled
    expected = clean + (25 / 255 * default_rng((7, 3)).standard_normal(clean.shape)).astype(np.float32)
    np.testing.assert_array_equal(a, expected)


def test_spec_from_configs_old_and_new():
    spec = NoiseSpec.from_sigma(sigma_range=(5, 50), test_seed=3)
    import dataclasses
    assert NoiseSpec.from_config({"noise": dataclasses.asdict(spec)}) == spec
    old = NoiseSpec.from_config({"noise": "speckle", "noise_factor": 0.3, "clip": False, "test_seed": 9})
    assert old == NoiseSpec("speckle", 0.3, None, False, 9)
    assert NoiseSpec.from_config({}) == NoiseSpec()


@pytest.mark.parametrize("kwargs,message", [
    (dict(kind="pink"), "unknown noise 'pink'"), (dict(factor=-1), "noise factor must be >= 0"),
    (dict(factor_range=(0.2, 0.1)), "0 <= low <= high"),
    (dict(kind="speckle", factor_range=(0, 0.1)), "Gaussian noise only")])
def test_bad_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoiseSpec(**kwargs)
