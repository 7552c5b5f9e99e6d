"""Turning image files and arrays of any common layout into uint8 (C, H, W) arrays."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from raynas.errors import RaynasError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_IMAGE_PIXELS = 8192 * 8192  # 64 megapixels, about 200 MB decoded; larger files are refused unread
WORK_CHUNK_BYTES = 64 << 20  # each float working buffer of resizing or gray conversion, whatever the image count


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _too_large(name: str, size: str, max_pixels: int) -> RaynasError:
    side = int(max_pixels ** 0.5)
    return RaynasError(
        f"image {name} is {size}, more than the {max_pixels / 2**20:g} megapixels ({side}x{side}) raynas decodes per image",
        "shrink it first (e.g. ImageMagick: mogrify -resize 1024x1024 FILE, or PIL's Image.thumbnail), "
        "then try again",
    )


def read_rgb(path: Path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode one image as RGB, naming the file on any failure.

    The size in the header is checked before any pixel is decoded, so a decompression bomb
    (a tiny file claiming 50000x50000) or a huge photograph never fills the memory.
    """
    return decode_rgb(path, str(path), max_pixels)


def decode_rgb(source: Path | BinaryIO, name: str, max_pixels: int | None = None) -> Image.Image:
    """:func:`read_rgb` for a path or an open binary stream (an upload, a Parquet cell);
    ``name`` says which image it is in errors; ``max_pixels`` defaults to MAX_IMAGE_PIXELS."""
    max_pixels = max_pixels or MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound is stricter
            img = Image.open(source)
        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise _too_large(name, f"{width}x{height} pixels", max_pixels)
            img.load()
            return _to_8bit(img).convert("RGB")
    except Image.DecompressionBombError as exc:  # PIL's own, looser bound (a bomb, most likely)
        raise _too_large(name, f"over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 2**20} megapixels", max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise RaynasError(
            f"cannot read image {name}: {exc}",
            "replace or remove the damaged file, then try again",
        ) from exc


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit and 32-bit gray images to 0..255 (``convert`` would clip them at 255).

    16-bit modes map by their full range; 32-bit integer or float images by their own range
    when it exceeds 0..255 (floats in 0..1 count as 0..1).
    """
    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    x = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        x = x / 257.0
    elif img.mode == "F" and x.size and 0.0 <= x.min() and x.max() <= 1.0:
        x = x * 255.0
    elif x.size and (x.min() < 0 or x.max() > 255):
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8), mode="L")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to ``size`` x ``size`` (keeps the aspect of content)."""
    if img.size == (size, size):
        return img
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)


def rgb_to_chw(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 (N, C, H, W) between 1 and 3 channels (ITU-R 601 luma for RGB -> gray)."""
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    out = np.empty((len(images), 1, *images.shape[2:]), np.uint8)
    # in chunks: a float copy of all images can be large (float32 RGB, 12 bytes a pixel)
    step = max(1, WORK_CHUNK_BYTES // (12 * images.shape[2] * images.shape[3]))
    for start in range(0, len(images), step):
        chunk = images[start:start + step].astype(np.float32)
        luma = np.tensordot(np.array([0.299, 0.587, 0.114]), chunk, axes=([0], [1]))
        out[start:start + step, 0] = np.clip(np.rint(luma), 0, 255)
    return out


def is_grayscale(images: np.ndarray) -> bool:
    """True when every RGB image has equal channels, so one channel keeps all information."""
    return images.shape[1] == 1 or bool(
        np.array_equal(images[:, 0], images[:, 1]) and np.array_equal(images[:, 1], images[:, 2])
    )


def image_layout(shape: tuple[int, ...], source: str) -> str:
    """How an array stores its images: 'NHW', 'NHWC' or 'NCHW' (known from the shape alone,
    so a file's header can be checked before its data is read)."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3):
        return "NHWC"
    if len(shape) == 4 and shape[1] in (1, 3, 4):
        return "NCHW"
    raise RaynasError(
        f"{source}: images have shape {tuple(shape)}, expected (N, H, W), (N, H, W, C) or (N, C, H, W)",
        "store one image per row along the first axis, with 1 or 3 channels",
    )


def nchw_shape(shape: tuple[int, ...], source: str) -> tuple[int, int, int, int]:
    """The (N, C, H, W) shape :func:`array_to_nchw` returns for an array of ``shape`` (alpha dropped)."""
    layout = image_layout(shape, source)
    if layout == "NHW":
        n, h, w = shape
        c = 1
    elif layout == "NHWC":
        n, h, w, c = shape
    else:
        n, c, h, w = shape
    return n, min(c, 3), h, w


def array_to_nchw(x: np.ndarray, source: str, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Accept (N, H, W), (N, H, W, C) or (N, C, H, W) arrays, uint8 or float; return uint8 NCHW.

    Floats in 0..1 are scaled to 0..255; ``value_range`` (the whole array's smallest and largest
    value) decides that for a part of an array read in chunks, which must all scale alike."""
    x = np.asarray(x)
    layout = image_layout(x.shape, source)
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] == 4:  # drop alpha
        x = x[:, :3]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind not in "fiub":
        raise RaynasError(f"{source}: images have dtype {x.dtype}, expected numbers")
    was_float = x.dtype.kind == "f"
    x = x.astype(np.float64)  # one working copy, changed in place below
    if not np.all(np.isfinite(x)):
        raise RaynasError(f"{source}: images contain NaN or infinite values", "clean the array first")
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    if lo < 0 or hi > 255:
        raise RaynasError(
            f"{source}: pixel values span {lo:g}..{hi:g}, expected 0..1 or 0..255",
            "rescale the images to 0..1 (floats) or 0..255 (integers)",
        )
    if was_float and hi <= 1.0:
        x *= 255.0
    np.rint(x, out=x)
    return np.clip(x, 0, 255, out=x).astype(np.uint8)


def resize_nchw(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 NCHW images to size x size with antialiasing (square inputs only), a chunk of
    images at a time: float copies of all images at once would take 4-8 times the result's memory."""
    if images.shape[2:] == (size, size):
        return images
    n, c, h, w = images.shape
    out = np.empty((n, c, size, size), np.uint8)
    step = max(1, WORK_CHUNK_BYTES // (4 * c * max(h * w, size * size)))
    for start in range(0, n, step):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + step])).float()
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + step] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out
