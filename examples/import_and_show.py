"""Import your own images and look at them.

Draws a small class-per-folder tree of PNG shapes (circles, squares, triangles), imports it
into the raynas format, prints what was stored, writes a labelled sample grid and streams one
augmented epoch through the loader.

    python examples/import_and_show.py [--home DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from raynas.data import IMPORTERS, DatasetStore
from raynas.data.grid import sample_grid
from raynas.data.loader import LoaderConfig, create_loader


def draw_shapes(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for shape in ("circle", "square", "triangle"):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (48, 48), tuple(int(v) for v in rng.integers(0, 80, 3)))
            draw = ImageDraw.Draw(img)
            r = int(rng.integers(8, 18))
            cx, cy = (int(v) for v in rng.integers(r + 2, 46 - r, 2))
            fill = tuple(int(v) for v in rng.integers(150, 256, 3))
            if shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            elif shape == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
            img.save(root / shape / f"{i:03d}.png")
    return root


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--home", default=None, help="raynas home (default: a temporary directory)")
    args = p.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="raynas-example-"))
    store = DatasetStore(home)

    source = draw_shapes(Path(tempfile.mkdtemp(prefix="shapes-")))
    dataset = IMPORTERS.get("imagefolder")(source, name="shapes", image_size=32, domain="synthetic shapes")
    path = store.save(dataset, overwrite=True)
    info = store.info("shapes")
    print(f"stored {path}: {info.num_images} images, classes {info.class_names}, shape {info.shape}, "
          f"splits {info.split_counts}")

    grid = sample_grid(store.load("shapes"), home / "shapes.png", per_class=6)
    print(f"sample grid: {grid}")

    loader = create_loader("shapes", "train", LoaderConfig(image_size=16, channels=3, batch_size=8, augment=True),
                           store)
    for x, y in loader:
        print(f"batch {tuple(x.shape)} labels {y.tolist()}")


if __name__ == "__main__":
    main()
