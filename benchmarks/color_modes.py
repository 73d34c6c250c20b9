#!/usr/bin/env python
"""Colour photographs through a grayscale denoiser: each channel on its own, or the luma only.

    python benchmarks/color_modes.py                        # the shipped model, sigma 15 25 50
    python benchmarks/color_modes.py --checkpoint runs/.../checkpoint.npz --sigma 25

Gaussian noise of each sigma (0-255 scale, not clipped) is added to every channel of
scikit-image's colour test photographs (astronaut, coffee, chelsea, rocket: bundled with the
package, no download), seeded per image; PSNR over all channels against the original, outputs
clipped to [0, 1], averaged over the images.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from skimage import data

from scratchnet import pretrained
from scratchnet.checkpoint import load_model
from scratchnet.data import NoiseSpec
from scratchnet.evaluation import image_scores
from scratchnet.inference import COLOR_MODES, denoise_color

IMAGES = ("astronaut", "coffee", "chelsea", "rocket")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="[default: the shipped blind DnCNN]")
    p.add_argument("--sigma", type=float, nargs="+", default=[15, 25, 50])
    args = p.parse_args()
    model, _ = load_model(args.checkpoint or pretrained.path())
    model.eval()
    clean = [getattr(data, name)().astype(np.float32) / 255 for name in IMAGES]
    print(f"{'sigma':>5} {'noisy':>8}" + "".join(f" {m:>10}" for m in COLOR_MODES) + "   (PSNR dB, "
          f"mean of {len(IMAGES)} images: {', '.join(IMAGES)})")
    for s in args.sigma:
        spec = NoiseSpec.from_sigma(s)
        scores = {m: [] for m in ("noisy", *COLOR_MODES)}
        seconds = {m: 0.0 for m in COLOR_MODES}
        for i, c in enumerate(clean):
            noisy = spec.test_image(c, i)
            scores["noisy"].append(image_scores(c, noisy)[0])
            for m in COLOR_MODES:
                t0 = time.perf_counter()
                out = np.clip(denoise_color(model, noisy, m), 0, 1)
                seconds[m] += time.perf_counter() - t0
                scores[m].append(image_scores(c, out)[0])
        print(f"{s:>5g} {np.mean(scores['noisy']):>8.2f}" + "".join(
            f" {np.mean(scores[m]):>10.2f}" for m in COLOR_MODES)
            + "   (" + ", ".join(f"{m} {seconds[m]:.1f} s" for m in COLOR_MODES) + ")", flush=True)


if __name__ == "__main__":
    main()
