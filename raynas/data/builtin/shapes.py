"""Procedural shapes drawn with PIL: what a shape is, how many there are, and where one lies
relative to another. Position, size, rotation and gray levels or colours are random nuisances.

Shapes are drawn on a 4x canvas and box-filtered down to 32x32, so their edges are anti-aliased.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
from PIL import Image, ImageDraw

from raynas.data.builtin import RawImages, builtin

SIZE = 32
SCALE = 4
_CANVAS = SIZE * SCALE
SHAPES = ["circle", "ring", "triangle", "square", "pentagon", "hexagon", "star", "cross"]
RELATIONS = ["circle left of square", "circle right of square", "circle above square", "circle below square"]


def _polygon(points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float) -> list[tuple]:
    """Unit-radius ``points`` rotated by ``angle``, scaled by ``r`` and moved to (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


def _regular(n: int, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular n-gon of radius 1, or an n-pointed star whose inner vertices lie at radius ``inner``."""
    if inner is None:
        return [(math.sin(2 * math.pi * k / n), -math.cos(2 * math.pi * k / n)) for k in range(n)]
    return [(rad * math.sin(math.pi * k / n), -rad * math.cos(math.pi * k / n))
            for k, rad in zip(range(2 * n), [1.0, inner] * n)]


_OUTLINES = {
    "triangle": _regular(3), "square": _regular(4), "pentagon": _regular(5), "hexagon": _regular(6),
    "star": _regular(5, inner=0.42),
    "cross": [(x, y) for x, y in [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
                                  (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]],
}


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    """One filled shape of circumradius ``r`` (canvas pixels) centred at (cx, cy)."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "ring":
        draw.ellipse(box, outline=fill, width=max(1, round(0.35 * r)))
    else:
        draw.polygon(_polygon(_OUTLINES[kind], cx, cy, r, angle), fill=fill)


def downsample(canvas: Image.Image, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Box-filter the canvas to 32x32, add Gaussian noise; uint8 (C, H, W)."""
    small = np.asarray(canvas.reduce(SCALE), dtype=np.float64)
    small = small + rng.normal(0, noise, small.shape)
    small = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return small[None] if small.ndim == 2 else small.transpose(2, 0, 1)


def contrasting_colours(rng: np.random.Generator, count: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """A background colour and ``count`` object colours at least 110 apart from it (RGB distance)."""
    background = rng.integers(0, 256, 3)
    out = []
    while len(out) < count:
        colour = rng.integers(0, 256, 3)
        if np.linalg.norm(colour - background) >= 110:
            out.append(tuple(int(v) for v in colour))
    return tuple(int(v) for v in background), out


def _provenance(seed: int, **extra) -> dict:
    return {"source": "procedural (PIL drawing)", "package": f"pillow {version('pillow')}", "seed": seed, **extra}


@builtin("shape-types", domain="shapes", allow_flip=True, seed=61,
         description="8 shape types (circle, ring, triangle, square, pentagon, hexagon, star, cross), one per image, "
                     "gray, 32x32; the class is the shape")
def shape_types() -> RawImages:
    rng = np.random.default_rng(61)
    images, labels = [], []
    for label, kind in enumerate(SHAPES):
        for _ in range(150):
            fg, bg = rng.integers(0, 256, 2)
            while abs(int(fg) - int(bg)) < 80:
                fg, bg = rng.integers(0, 256, 2)
            canvas = Image.new("L", (_CANVAS, _CANVAS), int(bg))
            r = rng.uniform(0.2, 0.42) * _CANVAS
            cx, cy = rng.uniform(r, _CANVAS - r, 2)
            draw_shape(ImageDraw.Draw(canvas), kind, cx, cy, r, rng.uniform(0, 2 * math.pi), int(fg))
            images.append(downsample(canvas, rng, 6))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), SHAPES, _provenance(
        61, nuisance="position, radius U(0.2, 0.42) of the frame, rotation, gray levels 80+ apart, noise sigma 6",
        differs="the class is the shape type of one object; shape-counts counts objects and "
                "shape-relations labels a spatial relation"))


def _place(rng: np.random.Generator, radii: list[float], gap: float) -> list[tuple[float, float]] | None:
    """Centres for circles of ``radii`` inside the canvas, ``gap`` px apart; None if one does not fit."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(200):
            x, y = rng.uniform(r + 2, _CANVAS - r - 2, 2)
            if all(math.hypot(x - a, y - b) >= r + s + gap for (a, b), s in zip(centres, radii)):
                centres.append((x, y))
                break
        else:
            return None
    return centres


@builtin("shape-counts", domain="shapes", allow_flip=True, seed=62,
         description="1 to 6 small shapes of random types and colours, colour, 32x32; the class is how many there are")
def shape_counts() -> RawImages:
    rng = np.random.default_rng(62)
    names = [str(n) for n in range(1, 7)]
    images, labels = [], []
    for label in range(len(names)):
        count = label + 1
        for _ in range(200):
            centres = None
            while centres is None:
                radii = list(rng.uniform(0.07, 0.11, count) * _CANVAS)
                centres = _place(rng, radii, gap=0.05 * _CANVAS)
            background, colours = contrasting_colours(rng, count)
            canvas = Image.new("RGB", (_CANVAS, _CANVAS), background)
            draw = ImageDraw.Draw(canvas)
            for (cx, cy), r, colour in zip(centres, radii, colours):
                kind = SHAPES[int(rng.integers(len(SHAPES)))]
                draw_shape(draw, kind, cx, cy, r, rng.uniform(0, 2 * math.pi), colour)
            images.append(downsample(canvas, rng, 5))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), names, _provenance(
        62, nuisance="shape types, colours, radii U(0.07, 0.11) of the frame, positions (not overlapping), noise 5",
        differs="the class is the number of objects, whatever their types; the other shape sets show one "
                "or two objects"))


@builtin("shape-relations", domain="shapes", seed=63,
         description="a circle and a square, colour, 32x32; the class is where the circle lies relative to the square "
                     "(left, right, above, below)")
def shape_relations() -> RawImages:
    rng = np.random.default_rng(63)
    directions = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # image y grows downwards: "above" is -y
    images, labels = [], []
    for label, (ux, uy) in enumerate(directions):
        for _ in range(250):
            while True:
                r_circle, r_square = rng.uniform(0.1, 0.17, 2) * _CANVAS
                along = rng.uniform(r_circle + r_square + 0.06 * _CANVAS, 0.75 * _CANVAS)
                across = rng.uniform(-0.5, 0.5) * along  # the main axis dominates: the relation is unambiguous
                dx, dy = ux * along + uy * across, uy * along + ux * across
                margin = max(r_circle, r_square) + 2
                lo_x, hi_x = margin + max(0.0, -dx), _CANVAS - margin - max(0.0, dx)
                lo_y, hi_y = margin + max(0.0, -dy), _CANVAS - margin - max(0.0, dy)
                if lo_x < hi_x and lo_y < hi_y:
                    break
            sx, sy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
            background, (c_circle, c_square) = contrasting_colours(rng, 2)
            canvas = Image.new("RGB", (_CANVAS, _CANVAS), background)
            draw = ImageDraw.Draw(canvas)
            draw_shape(draw, "square", sx, sy, r_square, rng.uniform(0, 2 * math.pi), c_square)
            draw_shape(draw, "circle", sx + dx, sy + dy, r_circle, 0.0, c_circle)
            images.append(downsample(canvas, rng, 5))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), RELATIONS, _provenance(
        63, nuisance="positions, radii U(0.1, 0.17) of the frame, square rotation, colours, noise sigma 5",
        differs="the class is a spatial relation between two fixed shapes, not a shape type or a count; "
                "mirroring changes it, so no flips"))
