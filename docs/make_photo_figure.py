#!/usr/bin/env python
"""Draw docs/images/photo_before_after.png, the README's front-page figure: the shipped blind
DnCNN on scikit-image's `camera` (bundled with scikit-image) with Gaussian noise of sigma 25.

    python docs/make_photo_figure.py

The noise is the one `python examples/denoise_images.py --sigma 25 camera.png` adds (seed 0);
the crop is shown at full resolution, PSNR of the whole image in the titles.
"""
from pathlib import Path

import numpy as np
from skimage import data

from scratchnet import plotting, pretrained
from scratchnet.checkpoint import load_model
from scratchnet.data import NoiseSpec
from scratchnet.evaluation import image_scores
from scratchnet.inference import denoise_image

OUT = Path(__file__).parent / "images" / "photo_before_after.png"


def main() -> None:
    model, meta = load_model(pretrained.path())
    clean = data.camera().astype(np.float32) / 255
    noisy = NoiseSpec.from_sigma(25, test_seed=0).test_image(clean, 0)
    out = np.clip(denoise_image(model.eval(), noisy), 0, 1)
    window = (slice(60, 316), slice(130, 386))
    rows = [[("original", clean[window]),
             (f"noisy, sigma 25: {image_scores(clean, noisy)[0]:.2f} dB", noisy[window]),
             (f"denoised: {image_scores(clean, out)[0]:.2f} dB", out[window])]]
    plotting.save_figure(plotting.plot_crops(
        rows, "the shipped blind DnCNN on scikit-image's camera (512x512; a 256x256 crop at full "
              "resolution, PSNR of the whole image)"), OUT)
    print(OUT)


if __name__ == "__main__":
    main()
