"""Scene regions: a third natural-texture set, cut from the two sample photos scikit-learn ships
(china.jpg, flower.jpg), which the scikit-image sets do not use. Each class is a region of one
photo (a pagoda, foliage, a lake; a dahlia, its dark leafy background), marked by hand as boxes."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from PIL import Image

from raynas.data.builtin import RawImages, builtin

SIZE = 32
# class -> (photo, boxes (x0, y0, x1, y1) in pixels of the 640x427 photo); checked by eye
REGIONS = {
    "pagoda": ("china", [(100, 100, 320, 330)]),
    "trees": ("china", [(360, 305, 640, 427), (555, 150, 640, 305)]),
    "lake": ("china", [(345, 215, 545, 300)]),
    "dahlia": ("flower", [(218, 128, 402, 312)]),
    "dark leaves": ("flower", [(0, 0, 170, 427), (460, 0, 640, 360)]),
}


def _patch(photo: Image.Image, boxes: list[tuple[int, int, int, int]], rng: np.random.Generator) -> np.ndarray:
    """A random square of side 32-64 px inside one of the boxes, resized to 32x32 (H, W, 3)."""
    x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))]
    side = int(rng.integers(SIZE, min(2 * SIZE, x1 - x0, y1 - y0) + 1))
    x = int(rng.integers(x0, x1 - side + 1))
    y = int(rng.integers(y0, y1 - side + 1))
    return np.asarray(photo.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


@builtin("scene-regions", domain="natural textures", allow_flip=True, seed=33,
         description="colour 32x32 patches of 5 regions (pagoda, trees, lake, dahlia, dark leaves) of scikit-learn's "
                     "two sample photos; classes are parts of a scene, not whole photos")
def scene_regions() -> RawImages:
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(33)
    photos = {name: Image.fromarray(load_sample_image(f"{name}.jpg")) for name in ("china", "flower")}
    images, labels = [], []
    for label, (photo, boxes) in enumerate(REGIONS.values()):
        for _ in range(160):
            images.append(_patch(photos[photo], boxes, rng).transpose(2, 0, 1))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), list(REGIONS), {
        "source": "sklearn.datasets.load_sample_image (china.jpg, flower.jpg)",
        "package": f"scikit-learn {version('scikit-learn')}",
        "regions": {name: {"photo": photo, "boxes": [list(b) for b in boxes]}
                    for name, (photo, boxes) in REGIONS.items()},
        "patches": "random squares of side 32-64 px inside a region's boxes, resized to 32x32", "seed": 33,
        "differs": "scikit-learn's photos, which textures and photo-patches (scikit-image photos) do not use; "
                   "classes are regions within a photo, not whole photos"})
