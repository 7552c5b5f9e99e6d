"""Printed glyphs rendered from the fonts matplotlib ships (DejaVu, STIX, Computer Modern).

Each image is one character in one font with a small random affine jitter, so what varies
within a class is the typeface, not the pixels of one rendering.
"""

from __future__ import annotations

import math
import string
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raynas.data.builtin import RawImages, builtin

SIZE = 32
_CANVAS = 64
_DEJAVU = [f"DejaVu{family}{style}.ttf" for family in ("Sans", "SansMono", "Serif")
           for style in ("", "-Bold", "-Oblique" if family != "Serif" else "-Italic",
                         "-BoldOblique" if family != "Serif" else "-BoldItalic")]
_STIX = ["STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"]
_COMPUTER_MODERN = ["cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf"]
LATIN_FONTS = _DEJAVU + _STIX + _COMPUTER_MODERN
GREEK_FONTS = _DEJAVU + _STIX  # the Computer Modern files matplotlib ships have no Greek code points
GREEK = [("alpha", "α"), ("beta", "β"), ("gamma", "γ"), ("delta", "δ"), ("epsilon", "ε"), ("zeta", "ζ"),
         ("eta", "η"), ("theta", "θ"), ("iota", "ι"), ("kappa", "κ"), ("lambda", "λ"), ("mu", "μ"),
         ("nu", "ν"), ("xi", "ξ"), ("omicron", "ο"), ("pi", "π"), ("rho", "ρ"), ("sigma", "σ"),
         ("tau", "τ"), ("upsilon", "υ"), ("phi", "φ"), ("chi", "χ"), ("psi", "ψ"), ("omega", "ω")]


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=None)
def _font(name: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_dir() / name), size=48)


def _glyph_crop(char: str, font_name: str) -> Image.Image:
    """The tight bounding box of one character, white on black."""
    img = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(img)
    draw.text((48, 48), char, fill=255, font=_font(font_name), anchor="mm")
    box = img.getbbox()
    if box is None:
        raise RuntimeError(f"font {font_name} rendered nothing for {char!r}")
    return img.crop(box)


def render(char: str, font_name: str, rng: np.random.Generator) -> np.ndarray:
    """One jittered rendering: random scale, rotation, shear and shift, then downsampled."""
    glyph = _glyph_crop(char, font_name)
    target = 40 * rng.uniform(0.85, 1.1)
    scale = target / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.Resampling.LANCZOS)
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    canvas.paste(glyph, ((_CANVAS - glyph.width) // 2, (_CANVAS - glyph.height) // 2))
    angle = math.radians(rng.uniform(-8, 8))
    shear = rng.uniform(-0.15, 0.15)
    dx, dy = rng.uniform(-3, 3, size=2)
    # inverse affine map (output -> input) about the canvas centre
    a, b = math.cos(angle), math.sin(angle) + shear
    c, d = -math.sin(angle), math.cos(angle)
    cx = cy = _CANVAS / 2
    coeffs = (a, b, cx - a * cx - b * cy - dx, c, d, cy - c * cx - d * cy - dy)
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    return np.asarray(canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.uint8)


def render_set(chars: list[str], fonts: list[str], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    repeats = math.ceil(per_class / len(fonts))
    images, labels = [], []
    for label, char in enumerate(chars):
        for font_name in fonts:
            for _ in range(repeats):
                images.append(render(char, font_name, rng))
                labels.append(label)
    return np.stack(images)[:, None], np.array(labels)


def _glyph_dataset(chars: list[str], names: list[str], fonts: list[str], per_class: int, seed: int) -> RawImages:
    images, labels = render_set(chars, fonts, per_class, seed)
    return RawImages(images, labels, names, {
        "source": "fonts shipped with matplotlib", "package": f"matplotlib {version('matplotlib')}",
        "fonts": fonts, "jitter": "scale U(0.85,1.1), rotation U(-8,8) deg, shear U(-0.15,0.15), shift U(-3,3) px",
        "seed": seed})


@builtin("glyph-digits", domain="printed glyphs", description="digits 0-9 in 21 typefaces, 32x32", seed=21)
def glyph_digits() -> RawImages:
    chars = list(string.digits)
    return _glyph_dataset(chars, chars, LATIN_FONTS, per_class=120, seed=21)


@builtin("glyph-upper", domain="printed glyphs", description="letters A-Z in 21 typefaces, 32x32", seed=22)
def glyph_upper() -> RawImages:
    chars = list(string.ascii_uppercase)
    return _glyph_dataset(chars, chars, LATIN_FONTS, per_class=80, seed=22)


@builtin("glyph-lower", domain="printed glyphs", description="letters a-z in 21 typefaces, 32x32", seed=23)
def glyph_lower() -> RawImages:
    chars = list(string.ascii_lowercase)
    return _glyph_dataset(chars, chars, LATIN_FONTS, per_class=80, seed=23)


@builtin("glyph-greek", domain="printed glyphs", description="Greek letters alpha-omega in 16 typefaces, 32x32",
         seed=24)
def glyph_greek() -> RawImages:
    return _glyph_dataset([c for _, c in GREEK], [n for n, _ in GREEK], GREEK_FONTS, per_class=80, seed=24)
