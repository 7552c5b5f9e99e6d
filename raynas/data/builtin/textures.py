"""Natural textures and photo patches cut from scikit-image's bundled sample images,
labelled by the image they come from."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from PIL import Image

from raynas.data.builtin import RawImages, builtin

SIZE = 32
GRAY_SOURCES = ["brick", "grass", "gravel", "moon", "camera", "coins"]
COLOR_SOURCES = ["astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
                 "rocket", "motorcycle"]


def _load(source: str) -> np.ndarray:
    from skimage import data

    if source == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, source)()


def cut_patches(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random square crops of side 32-64 px, resized to 32x32; returns uint8 (count, H, W[, C])."""
    img = Image.fromarray(image)
    out = []
    for _ in range(count):
        side = int(rng.integers(SIZE, 2 * SIZE + 1))
        x = int(rng.integers(0, img.width - side + 1))
        y = int(rng.integers(0, img.height - side + 1))
        out.append(np.asarray(img.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)))
    return np.stack(out)


def _patch_dataset(sources: list[str], per_class: int, seed: int, channels: int) -> RawImages:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, source in enumerate(sources):
        img = _load(source)
        if channels == 3 and img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        patches = cut_patches(img[..., :3] if img.ndim == 3 else img, per_class, rng)
        images.append(patches[:, None] if channels == 1 else patches.transpose(0, 3, 1, 2))
        labels += [label] * per_class
    return RawImages(np.concatenate(images), np.array(labels), sources, {
        "source": "skimage.data sample images", "package": f"scikit-image {version('scikit-image')}",
        "patches": "random squares of side 32-64 px resized to 32x32", "seed": seed})


@builtin("textures", domain="natural textures", description="gray 32x32 patches of 6 scikit-image photos",
         allow_flip=True, seed=31)
def textures() -> RawImages:
    return _patch_dataset(GRAY_SOURCES, per_class=150, seed=31, channels=1)


@builtin("photo-patches", domain="natural textures", description="colour 32x32 patches of 8 scikit-image photos",
         allow_flip=True, seed=32)
def photo_patches() -> RawImages:
    return _patch_dataset(COLOR_SOURCES, per_class=120, seed=32, channels=3)
