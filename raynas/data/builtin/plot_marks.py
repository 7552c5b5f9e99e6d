"""Plot marks: matplotlib's marker shapes, hatch patterns and line dash patterns.

The geometry comes from matplotlib itself (``MarkerStyle`` paths, ``matplotlib.hatch`` paths,
the ``lines.*_pattern`` rc defaults); it is drawn with PIL on a 4x canvas and box-filtered to
32x32, which is far faster than a figure per image. Size, position, line width and colours are
random nuisances.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
from PIL import Image, ImageDraw

from raynas.data.builtin import RawImages, builtin
from raynas.data.builtin.shapes import SCALE, contrasting_colours, downsample

SIZE = 32
_CANVAS = SIZE * SCALE
MARKERS = [("circle", "o"), ("triangle down", "v"), ("triangle up", "^"), ("triangle left", "<"),
           ("triangle right", ">"), ("square", "s"), ("pentagon", "p"), ("star", "*"), ("hexagon", "h"),
           ("diamond", "D"), ("thin diamond", "d"), ("filled plus", "P"), ("filled x", "X"), ("tri down", "1"),
           ("tri up", "2"), ("tri left", "3"), ("tri right", "4")]
HATCHES = [("diagonal /", "/"), ("diagonal \\", "\\"), ("vertical", "|"), ("horizontal", "-"), ("plus", "+"),
           ("cross", "x"), ("small circles", "o"), ("large circles", "O"), ("dots", "."), ("stars", "*")]
_FILLED_HATCHES = {".", "*"}  # matplotlib fills and strokes these shapes, and only strokes the others
LINESTYLES = ["solid", "dashed", "dashdot", "dotted", "loosely dashed", "dashdotdot"]


def _dash_patterns() -> dict[str, tuple[float, ...]]:
    """On/off lengths in line widths: matplotlib's rc defaults for its named styles, and two
    variants (longer gaps; two dots per dash)."""
    import matplotlib as mpl

    dashed, dashdot, dotted = (tuple(mpl.rcParamsDefault[f"lines.{k}_pattern"])
                               for k in ("dashed", "dashdot", "dotted"))
    return {"solid": (), "dashed": dashed, "dashdot": dashdot, "dotted": dotted,
            "loosely dashed": (dashed[0], 3 * dashed[1]), "dashdotdot": dashdot + dashdot[2:]}


def _provenance(seed: int, **extra) -> dict:
    return {"source": "matplotlib marker, hatch and dash geometry, drawn with PIL",
            "package": f"matplotlib {version('matplotlib')}, pillow {version('pillow')}", "seed": seed, **extra}


def _marker_polygons(marker: str) -> tuple[list[np.ndarray], bool]:
    """The marker's outlines in matplotlib's marker units (y up), and whether it is filled."""
    from matplotlib.markers import MarkerStyle

    style = MarkerStyle(marker)
    path = style.get_path().transformed(style.get_transform())
    return path.to_polygons(closed_only=style.is_filled()), style.is_filled()


@builtin("plot-markers", domain="plot marks", seed=81,
         description="17 matplotlib marker shapes (o, v, ^, <, >, s, p, *, h, D, d, P, X, 1-4), colour, 32x32; "
                     "the class is the shape of one marker, filled, hollow or stroked")
def plot_markers() -> RawImages:
    rng = np.random.default_rng(81)
    images, labels = [], []
    for label, (_, marker) in enumerate(MARKERS):
        polygons, filled = _marker_polygons(marker)
        for _ in range(70):
            size = rng.uniform(0.5, 0.8) * _CANVAS  # matplotlib's marker size: the unit square's side
            angle = math.radians(rng.uniform(-6, 6))
            cx, cy = _CANVAS / 2 + rng.uniform(-0.12, 0.12, 2) * _CANVAS
            width = max(1, round(rng.uniform(0.02, 0.06) * _CANVAS))
            background, (face, edge) = contrasting_colours(rng, 2)
            canvas = Image.new("RGB", (_CANVAS, _CANVAS), background)
            draw = ImageDraw.Draw(canvas)
            c, s = math.cos(angle), math.sin(angle)
            hollow = rng.random() < 0.3
            for poly in polygons:
                pts = [(cx + size * (x * c - y * s), cy - size * (x * s + y * c)) for x, y in poly]
                if not filled:
                    draw.line(pts, fill=edge, width=2 * width)
                else:
                    draw.polygon(pts, fill=None if hollow else face, outline=edge, width=width)
            images.append(downsample(canvas, rng, 4))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), [n for n, _ in MARKERS], _provenance(
        81, markers=[m for _, m in MARKERS],
        nuisance="size U(0.5, 0.8) of the frame, position, rotation U(-6, 6) deg, edge width, face and edge "
                 "colours, 30% hollow, noise sigma 4",
        differs="the class is the shape of one marker; plot-hatches fills areas with repeated patterns and "
                "plot-linestyles varies the dashes of lines"))


def _hatch_tile(pattern: str, density: int, side: int, width: int, colour: tuple) -> Image.Image:
    """One period of matplotlib's hatch path, ``side`` px square, drawn on a transparent tile."""
    from matplotlib import hatch

    tile = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    for poly in hatch.get_path(pattern, density).to_polygons(closed_only=False):
        pts = [(x * side, (1 - y) * side) for x, y in poly]  # matplotlib's y points up
        if pattern in _FILLED_HATCHES:
            draw.polygon(pts, fill=colour + (255,), outline=colour + (255,), width=width)
        else:
            draw.line(pts, fill=colour + (255,), width=width)
    return tile


@builtin("plot-hatches", domain="plot marks", seed=82,
         description="10 matplotlib hatch patterns (/, \\, |, -, +, x, o, O, ., *) filling a bar, colour, 32x32; "
                     "the class is an area's fill pattern")
def plot_hatches() -> RawImages:
    rng = np.random.default_rng(82)
    images, labels = [], []
    for label, (_, pattern) in enumerate(HATCHES):
        for _ in range(120):
            side = int(rng.integers(14, 22)) * SCALE  # one hatch period, in canvas px
            density = int(rng.choice([2, 4]))  # matplotlib draws shape hatches only at even densities
            width = int(rng.integers(3, 7))
            background, (face, ink) = contrasting_colours(rng, 2)
            if np.linalg.norm(np.subtract(face, ink)) < 110:
                ink = tuple(255 - v for v in face)
            tile = _hatch_tile(pattern, density, side, width, ink)
            bar = Image.new("RGB", (_CANVAS, _CANVAS), face)
            ox, oy = rng.integers(0, side, 2)
            for x in range(-int(ox), _CANVAS, side):
                for y in range(-int(oy), _CANVAS, side):
                    bar.paste(tile, (x, y), tile)
            canvas = Image.new("RGB", (_CANVAS, _CANVAS), background)
            left, right = sorted(rng.uniform(0, 1, 2))
            x0 = round(min(left, 0.2) * _CANVAS)
            x1 = round(max(right, 0.8) * _CANVAS)
            y0 = round(rng.uniform(0, 0.25) * _CANVAS)
            mask = Image.new("L", (_CANVAS, _CANVAS), 0)
            ImageDraw.Draw(mask).rectangle((x0, y0, x1, _CANVAS), fill=255)
            canvas.paste(bar, (0, 0), mask)
            ImageDraw.Draw(canvas).rectangle((x0, y0, x1, _CANVAS + 8), outline=ink, width=width)
            images.append(downsample(canvas, rng, 4))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), [n for n, _ in HATCHES], _provenance(
        82, hatches=[h for _, h in HATCHES],
        nuisance="hatch period 14-21 px, density 2 or 4, line width, offset, bar extent, three colours, noise sigma 4",
        differs="the class is a repeated fill pattern; / and \\ are mirror images, so no flips"))


def _curve(rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve across the canvas, densely sampled: (K, 2) canvas coordinates."""
    t = np.linspace(-0.7, 0.7, 600)
    amplitude, freq, phase = rng.uniform(0, 0.25), rng.uniform(1, 4), rng.uniform(0, 2 * np.pi)
    y = rng.uniform(-0.25, 0.25) + rng.uniform(-0.5, 0.5) * t + amplitude * np.sin(freq * np.pi * t + phase)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return _CANVAS / 2 + _CANVAS * np.stack([t * c - y * s, t * s + y * c], axis=1)


def _dashed(draw: ImageDraw.ImageDraw, points: np.ndarray, pattern: tuple[float, ...], width: float, colour,
            offset: float) -> None:
    """Draw a polyline with an on/off dash ``pattern`` (in line widths), as matplotlib scales it."""
    if not pattern:
        draw.line([tuple(p) for p in points], fill=colour, width=round(width), joint="curve")
        return
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    edges = np.cumsum(np.asarray(pattern) * width)
    phase = (arc + offset * edges[-1]) % edges[-1]
    on = np.searchsorted(edges, phase, side="right") % 2 == 0  # even segments of the pattern are drawn
    starts = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
    ends = np.flatnonzero(on & ~np.concatenate([on[1:], [False]]))
    for a, b in zip(starts, ends):
        run = points[a:b + 1]
        if len(run) == 1:
            run = np.repeat(run, 2, axis=0)
        draw.line([tuple(p) for p in run], fill=colour, width=round(width))


@builtin("plot-linestyles", domain="plot marks", allow_flip=True, seed=83,
         description="6 line styles (solid, dashed, dashdot, dotted, loosely dashed, dashdotdot) of 1-2 random "
                     "curves, colour, 32x32; the class is the dash pattern of the lines")
def plot_linestyles() -> RawImages:
    rng = np.random.default_rng(83)
    patterns = _dash_patterns()
    images, labels = [], []
    for label, style in enumerate(LINESTYLES):
        for _ in range(170):
            lines = int(rng.integers(1, 3))
            background, colours = contrasting_colours(rng, lines)
            canvas = Image.new("RGB", (_CANVAS, _CANVAS), background)
            draw = ImageDraw.Draw(canvas)
            for colour in colours:
                width = rng.uniform(1.6, 2.6) * SCALE
                _dashed(draw, _curve(rng), patterns[style], width, colour, rng.uniform())
            images.append(downsample(canvas, rng, 4))
            labels.append(label)
    return RawImages(np.stack(images), np.array(labels), LINESTYLES, _provenance(
        83, patterns={k: list(v) for k, v in patterns.items()},
        nuisance="1-2 curves (line, slope, sine bend, rotation), width 1.6-2.6 px, dash offset, colours, noise 4",
        differs="the class is the dash pattern of thin curves, not a filled shape or an area pattern"))
