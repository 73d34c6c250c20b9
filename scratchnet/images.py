"""Reading and writing photographs at their own size and bit depth, with one-line errors.

    picture = read_image("photo.png")            # pixels float32 in [0, 1], (H, W) or (H, W, C)
    write_image("out.png", picture, denoised)    # same format, mode and bit depth as the input

Formats: PNG (8- and 16-bit grayscale, grayscale + alpha, RGB and RGBA), JPEG, TIFF (8- and
16-bit grayscale and RGB), BMP and WebP (8-bit). Pillow reads and writes them, except the two
it cannot keep at 16 bits: 16-bit colour PNG (pypng) and 16-bit colour TIFF (tifffile). An
alpha channel is carried through unchanged; an ICC profile and EXIF data are copied to the
output. Palette, CMYK, bilevel and animated images are refused with a line saying why.

Every problem is an [`ImageError`][scratchnet.images.ImageError] whose message is one line naming the file.
"""
from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy
from PIL import Image

from .fileio import atomic_write

__all__ = ["ImageError", "Picture", "read_image", "write_image", "EXTENSIONS", "MAX_PIXELS"]

EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS        # Pillow's decompression-bomb limit (89,478,485)
_MODES = {"L": (1, 8), "LA": (2, 8), "RGB": (3, 8), "RGBA": (4, 8),
          "I;16": (1, 16), "I;16B": (1, 16), "I;16L": (1, 16)}


class ImageError(ValueError):
    """An image that cannot be read, written or denoised (the message is one line)."""


@dataclasses.dataclass
class Picture:
    """A decoded image: ``pixels`` float32 in [0, 1], (H, W) for grayscale, (H, W, C) else
    (C = 2: gray + alpha, 3: RGB, 4: RGBA); ``bits`` 8 or 16; the file's format; metadata
    (ICC profile, EXIF) to carry over."""
    path: Path
    pixels: numpy.ndarray
    bits: int
    format: str
    info: dict[str, Any]

    @property
    def color(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] >= 3

    @property
    def alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] in (2, 4)

    def describe(self) -> str:
        kind = {2: "grayscale + alpha", 3: "RGB", 4: "RGBA"}.get(
            self.pixels.shape[2] if self.pixels.ndim == 3 else 1, "grayscale")
        H, W = self.pixels.shape[:2]
        return f"{W}x{H} {self.bits}-bit {kind} {self.format}"


def _png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG's IHDR, or None for another format."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24], data[25]
    return None


def _fail(path: Path, what: str) -> ImageError:
    return ImageError(f"{path}: {what}".replace("\n", " "))


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> Picture:
    """Decode ``path`` completely (so a damaged file fails here, not later).

    Args:
        max_pixels: refuse images with more pixels (Pillow's decompression-bomb guard);
            None: no limit.
    Raises:
        ImageError: unreadable, unsupported, or over the pixel cap; one line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read ({exc.strerror or exc})") from None
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None              # checked below, against max_pixels, in words
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:     # reads the header only
                W, H = im.size
                if max_pixels is not None and W * H > max_pixels:
                    raise _fail(path, f"{W}x{H} is {W * H:,} pixels, more than the limit of "
                                      f"{max_pixels:,} (a guard against decompression bombs; if "
                                      "you trust the file, raise it with --max-pixels)")
                return _decode(path, data, im)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise _fail(path, "not an image file Pillow can read (unknown or damaged format)") from None
    except Exception as exc:       # Pillow's decoders raise many kinds on damaged files
        raise _fail(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _decode(path: Path, data: bytes, im: Image.Image) -> Picture:
    fmt = im.format or "PNG"
    if getattr(im, "n_frames", 1) > 1:
        raise _fail(path, f"an animated {fmt} of {im.n_frames} frames; denoising takes still "
                          "images (save the frame you want as a PNG)")
    if im.mode == "P":
        raise _fail(path, "a palette image (mode P): its pixels are indices into a colour "
                          "table, not intensities; convert it to RGB or grayscale first")
    if im.mode == "CMYK":
        raise _fail(path, "a CMYK image (print colours); convert it to RGB first")
    if im.mode == "1":
        raise _fail(path, "a bilevel (1-bit) image: there is no noise to remove")
    info = {k: im.info[k] for k in ("icc_profile", "exif") if im.info.get(k)}
    header = _png_header(data)
    if header is not None and header[0] == 16 and header[1] in (2, 4, 6):   # 16-bit colour or
                                                                             # gray + alpha PNG
        import png                                   # pypng: Pillow keeps 8 bits of these
        width, height, rows, meta = png.Reader(bytes=data).asDirect()
        planes = meta["planes"]
        pixels = numpy.vstack([numpy.asarray(r, numpy.uint16) for r in rows]).reshape(height, width, planes)
        return Picture(path, (pixels / 65535).astype(numpy.float32), 16, "PNG", info)
    if fmt == "TIFF" and im.mode == "RGB" and _tiff_bits(im) == 16:      # 16-bit colour TIFF
        import tifffile
        pixels = tifffile.imread(io.BytesIO(data))
        if pixels.dtype != numpy.uint16 or pixels.ndim != 3:
            raise _fail(path, f"a TIFF of {pixels.dtype} {pixels.shape} that could not be read as 16-bit RGB")
        return Picture(path, (pixels / 65535).astype(numpy.float32), 16, "TIFF", info)
    if im.mode not in _MODES:
        raise _fail(path, f"images of mode {im.mode} are not supported; expected 8- or 16-bit "
                          "grayscale or colour")
    channels, bits = _MODES[im.mode]
    im.load()
    pixels = numpy.asarray(im)
    scale = 65535 if bits == 16 else 255
    return Picture(path, (pixels.astype(numpy.float32) / scale), bits, fmt, info)


def _tiff_bits(im: Image.Image) -> int:
    bits = getattr(im, "tag_v2", {}).get(258, (8,))
    return int(bits[0] if isinstance(bits, tuple) else bits)


def write_image(path: str | os.PathLike, like: Picture, pixels: numpy.ndarray) -> None:
    """Write ``pixels`` (shaped like ``like.pixels``, values in [0, 1]: clipped, rounded) in
    ``like``'s format and bit depth, atomically (never a half-written file)."""
    path = Path(path)
    scale = 65535 if like.bits == 16 else 255
    values = numpy.rint(numpy.clip(pixels, 0, 1) * scale).astype(
        numpy.uint16 if like.bits == 16 else numpy.uint8)
    fmt = like.format
    if like.bits == 16 and values.ndim == 3:
        if fmt == "PNG":
            import png
            H, W, C = values.shape
            writer = png.Writer(W, H, greyscale=C == 2, alpha=C in (2, 4), bitdepth=16)
            atomic_write(path, lambda fh: writer.write(fh, values.reshape(H, W * C)))
            return
        import tifffile
        buf = io.BytesIO()
        tifffile.imwrite(buf, values, photometric="rgb")
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
        return
    image = Image.fromarray(values)                 # uint16 (H, W): mode I;16
    options: dict[str, Any] = dict(like.info)
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)         # full-resolution colour (4:4:4)
    atomic_write(path, lambda fh: image.save(fh, format=fmt, **options))
