"""Procedural textures computed with numpy: grating orientations, power-law noise spectra and
texture types. Contrast, scale, phase, colours and pixel noise are random nuisances.

Patterns with hard edges are evaluated on a 4x grid and box-filtered to 32x32 (anti-aliased).
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from raynas.data.builtin import RawImages, builtin

SIZE = 32
_SUPER = 4
ORIENTATIONS = [0.0, 22.5, 45.0, 67.5, 90.0, 112.5, 135.0, 157.5]
BETAS = [0.0, 0.6, 1.2, 1.8, 2.4, 3.0]
TEXTURES = ["stripes", "checks", "dots", "grid", "waves", "bricks", "blobs", "rings"]


def _grid(angle: float, supersample: int = _SUPER) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a 32x32 image (in output pixels, origin at the centre),
    rotated by ``angle`` radians; ``supersample`` points per pixel and axis."""
    n = SIZE * supersample
    t = (np.arange(n) + 0.5) / supersample - SIZE / 2
    x, y = np.meshgrid(t, t)
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _down(pattern: np.ndarray, supersample: int = _SUPER) -> np.ndarray:
    """Box-filter a supersampled (n, n[, C]) array to 32x32."""
    shape = (SIZE, supersample, SIZE, supersample) + pattern.shape[2:]
    return pattern.reshape(shape).mean(axis=(1, 3))


def _to_uint8(x: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    return np.clip(np.rint(x + rng.normal(0, noise, x.shape)), 0, 255).astype(np.uint8)


def _provenance(seed: int, **extra) -> dict:
    return {"source": "procedural (numpy)", "package": f"numpy {version('numpy')}", "seed": seed, **extra}


@builtin("gratings", domain="procedural textures", seed=71,
         description="gray gratings, 32x32, whose class is their orientation (8, 0-157.5 degrees, 22.5 apart); sine "
                     "or square waves of random frequency, phase and contrast")
def gratings() -> RawImages:
    rng = np.random.default_rng(71)
    images, labels = [], []
    for label, degrees in enumerate(ORIENTATIONS):
        for _ in range(150):
            u, _ = _grid(np.radians(degrees + rng.uniform(-3, 3)))
            cycles = rng.uniform(2.5, 6.0)  # per 32 px
            wave = np.sin(2 * np.pi * cycles * u / SIZE + rng.uniform(0, 2 * np.pi))
            if rng.random() < 0.5:
                wave = np.sign(wave)
            mean, amplitude = rng.uniform(90, 165), rng.uniform(30, 90)
            images.append(_to_uint8(mean + amplitude * _down(wave), rng, 12)[None])
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), [f"{d:g} deg" for d in ORIENTATIONS], _provenance(
        71, orientation="the angle of the wave vector from the +x axis, with the image's y axis pointing down",
        nuisance="orientation jitter U(-3, 3) deg, 2.5-6 cycles per image, phase, sine or square wave, mean, "
                     "amplitude, noise sigma 12",
        differs="the class is the orientation of one periodic pattern; noise-spectra has no orientation and "
                "texture-types labels the kind of pattern, so mirroring (which changes the angle) is off"))


@builtin("noise-spectra", domain="procedural textures", allow_flip=True, seed=72,
         description="gray 1/f^beta noise, 6 classes of spectral slope beta 0-3, 32x32; isotropic, aperiodic")
def noise_spectra() -> RawImages:
    rng = np.random.default_rng(72)
    n = 2 * SIZE  # synthesise a periodic 64x64 field and crop a quarter of it, so the crop is not periodic
    f = np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(f, f))
    radius[0, 0] = 1.0
    images, labels = [], []
    for label, beta in enumerate(BETAS):
        amplitude = radius ** (-beta / 2)  # power ~ 1/f^beta
        amplitude[0, 0] = 0.0
        for _ in range(200):
            spectrum = np.fft.fft2(rng.normal(size=(n, n))) * amplitude
            field = np.real(np.fft.ifft2(spectrum))
            x0, y0 = rng.integers(0, n - SIZE + 1, 2)
            patch = field[y0:y0 + SIZE, x0:x0 + SIZE]
            patch = (patch - patch.mean()) / (patch.std() + 1e-12)
            images.append(_to_uint8(rng.uniform(100, 155) + rng.uniform(25, 45) * patch, rng, 3)[None])
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), [f"beta {b:g}" for b in BETAS], _provenance(
        72, nuisance="the noise itself, 32x32 crop of a 64x64 field, mean U(100, 155), std U(25, 45), noise sigma 3",
        differs="the class is a second-order statistic (spectral slope) of random fields; the gratings and "
                "texture types are deterministic patterns"))


def _texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A binary-ish pattern in [0, 1] on the supersampled grid, at a random rotation and scale."""
    u, v = _grid(rng.uniform(0, 2 * np.pi))
    p = rng.uniform(5.0, 9.0)  # period in output pixels
    u, v = u / p + rng.uniform(0, 1), v / p + rng.uniform(0, 1)
    if kind == "stripes":
        return (u % 1 < rng.uniform(0.35, 0.6)).astype(float)
    if kind == "checks":
        return ((np.floor(u) + np.floor(v)) % 2).astype(float)
    if kind == "dots":
        return (np.hypot(u % 1 - 0.5, v % 1 - 0.5) < rng.uniform(0.22, 0.34)).astype(float)
    if kind == "grid":
        w = rng.uniform(0.14, 0.22)
        return ((u % 1 < w) | (v % 1 < w)).astype(float)
    if kind == "waves":
        return ((u + rng.uniform(0.3, 0.5) * np.sin(2 * np.pi * v / rng.uniform(1.5, 2.5))) % 1 < 0.5).astype(float)
    if kind == "bricks":
        row = np.floor(v)
        mortar = rng.uniform(0.12, 0.2)
        return ((v % 1 > mortar) & (((u / 2 + 0.5 * (row % 2)) % 1) > mortar / 2)).astype(float)
    if kind == "blobs":
        n = u.shape[0]
        freq = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n))) * n / SIZE  # cycles per output px
        smooth = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * np.exp(-(freq * p / 3) ** 2 * 4)))
        return (smooth > np.median(smooth)).astype(float)
    if kind == "rings":
        cx, cy = rng.uniform(-0.7, 0.7, 2) * SIZE / p
        return (np.hypot(u - u.mean() - cx, v - v.mean() - cy) % 1 < 0.5).astype(float)
    raise ValueError(kind)


@builtin("texture-types", domain="procedural textures", allow_flip=True, seed=73,
         description="8 texture types (stripes, checks, dots, grid, waves, bricks, blobs, rings), colour, 32x32; "
                     "the class is the kind of pattern, at random rotation, scale and colours")
def texture_types() -> RawImages:
    rng = np.random.default_rng(73)
    images, labels = [], []
    for label, kind in enumerate(TEXTURES):
        for _ in range(150):
            pattern = _texture(kind, rng)
            background = rng.integers(0, 256, 3).astype(float)
            colour = rng.integers(0, 256, 3).astype(float)
            while np.linalg.norm(colour - background) < 110:
                colour = rng.integers(0, 256, 3).astype(float)
            mixed = _down(pattern)[..., None] * (colour - background) + background
            images.append(_to_uint8(mixed, rng, 6).transpose(2, 0, 1))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), TEXTURES, _provenance(
        73, nuisance="rotation, period U(5, 9) px, phase, pattern parameters, two colours 110+ apart, noise sigma 6",
        differs="the class is the kind of pattern, in colour; gratings label an orientation and noise-spectra "
                "a spectral slope, both gray"))
