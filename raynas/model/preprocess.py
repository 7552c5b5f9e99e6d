"""Preprocessing: any image a user has -> the tensor the trained network expects.

It repeats the two steps every training image went through, in the same order and with the
same functions: the import (decode as RGB, centre-crop and resize to the dataset's stored
side, convert to its stored channels, all in uint8) and the loader (to float at the
network's input size, then the dataset's per-channel normalisation). So an image file gives
the same input tensor as the same image stored in the dataset.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from raynas.data.imaging import MAX_IMAGE_PIXELS, decode_rgb, fit_square, rgb_to_chw, to_channels
from raynas.data.transforms import Normalize, to_float
from raynas.errors import RaynasError


@dataclass(frozen=True)
class Preprocess:
    """Callable: a PIL image, a uint8 array (H x W, H x W x C or C x H x W), image bytes or an
    image path -> float tensor C x H x W (``batch`` does N at once)."""

    stored_size: int  # the dataset's stored side: images are fitted to it first, as the import did
    stored_channels: int  # 1 or 3, as stored
    image_size: int  # the network's input side
    channels: int  # the network's input channels
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.stored_channels not in (1, 3) or self.channels not in (1, 3):
            raise RaynasError(f"preprocessing needs 1 or 3 channels, got {self.stored_channels} and {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels or min(self.std) <= 0:
            raise RaynasError(f"preprocessing statistics do not fit {self.channels} channels "
                              f"(mean {self.mean}, std {self.std})")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Preprocess":
        try:
            return cls(**{k: d[k] for k in ("stored_size", "stored_channels", "image_size", "channels", "mean", "std")})
        except (KeyError, TypeError, ValueError) as exc:
            raise RaynasError(f"the model's preprocessing record is incomplete: {exc!r}",
                              "the model file is damaged or from another program; retrain to write it again") from None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size

    def __call__(self, image: Any, name: str = "image") -> torch.Tensor:
        return self.batch(self.stored_uint8(image, name)[None])[0]

    def stored_uint8(self, image: Any, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
        """uint8 C x H x W at the stored side and channels: what the import would have stored."""
        if isinstance(image, (str, Path)):
            image = decode_rgb(Path(image), str(image), max_pixels)
        elif isinstance(image, (bytes, bytearray, memoryview)):
            image = decode_rgb(io.BytesIO(image), name, max_pixels)
        elif isinstance(image, np.ndarray):
            image = _array_to_image(image, name)
        elif isinstance(image, Image.Image):
            max_pixels = max_pixels or MAX_IMAGE_PIXELS
            if image.width * image.height > max_pixels:
                raise RaynasError(f"{name} is {image.width}x{image.height} pixels, more than the "
                                  f"{max_pixels / 2**20:g} megapixels raynas takes", "shrink it first")
            image = image.convert("RGB")
        else:
            raise RaynasError(f"{name}: cannot preprocess a {type(image).__name__}",
                              "give a PIL image, a uint8 array, image bytes or an image path")
        chw = rgb_to_chw(fit_square(image, self.stored_size))
        return to_channels(chw[None], self.stored_channels)[0]

    def batch(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W as stored (a dataset's rows, or :meth:`stored_uint8`'s) -> network input."""
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != self.stored_channels:
            raise RaynasError(f"expected uint8 images of shape N x {self.stored_channels} x H x W, got "
                              f"{x.dtype} {tuple(x.shape)}", "pass images as stored, or single images to the call")
        return Normalize(self.mean, self.std)(to_float(x, self.image_size, self.channels))


def _array_to_image(a: np.ndarray, name: str) -> Image.Image:
    """uint8 H x W, H x W x {1,3,4} or {1,3} x H x W -> RGB PIL image."""
    if a.dtype != np.uint8:
        raise RaynasError(f"{name}: arrays must be uint8 (0..255), got {a.dtype}",
                          "convert it first, e.g. (x * 255).round().astype('uint8') for floats in 0..1")
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(a), mode="L").convert("RGB")
    if a.ndim == 3 and a.shape[-1] in (3, 4) and min(a.shape[:2]) > 0:
        return Image.fromarray(np.ascontiguousarray(a[..., :3]), mode="RGB")
    raise RaynasError(f"{name}: an image array must be H x W, H x W x C or C x H x W, got shape {a.shape}",
                      "pass one image, not a batch (use Preprocess.batch for N x C x H x W uint8)")
