"""Faces: scikit-image's bundled LFW subset (100 faces, 100 non-faces, 25x25 gray)."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from raynas.data.builtin import RawImages, builtin


@builtin("lfw-faces", domain="faces", description="scikit-image LFW subset: face / non-face, 25x25",
         allow_flip=True)
def lfw_faces() -> RawImages:
    from skimage import data

    x = data.lfw_subset()  # first 100 are faces, the rest are not (scikit-image docs)
    images = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)[:, None]
    labels = np.repeat([0, 1], [100, len(x) - 100])
    return RawImages(images, labels, ["face", "non-face"],
                     {"source": "skimage.data.lfw_subset", "package": f"scikit-image {version('scikit-image')}"})
