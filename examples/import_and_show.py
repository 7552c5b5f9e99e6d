"""Import your own images: a class-per-folder tree -> a raynas dataset -> sample grid -> batches.

    python examples/import_and_show.py [--home DIR] [--per-class 20]

Draws a small tree of PNG images (circles, squares and triangles of random size, position
and shade, one folder per class), imports it with the Python API, prints what was stored,
writes a labelled sample grid and iterates one epoch of a loader. The same import from
the command line is ``raynas data import PATH --name shapes --image-size 32``.
"""

import argparse
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from raynas.data import IMPORTERS, DatasetStore
from raynas.data.grid import sample_grid
from raynas.data.loader import LoaderConfig, create_loader

SHAPES = ("circle", "square", "triangle")


def draw(shape, rng, size=48):
    """One gray image of ``shape`` on a noisy background."""
    img = Image.new("L", (size, size), rng.randint(0, 60))
    pen = ImageDraw.Draw(img)
    r = rng.randint(size // 6, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    shade = rng.randint(150, 255)
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shade)
    elif shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=shade)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=shade)
    for _ in range(size):  # a little salt noise
        img.putpixel((rng.randrange(size), rng.randrange(size)), rng.randint(0, 255))
    return img


def make_tree(root, per_class, seed=0):
    """``root/<shape>/<n>.png``: the layout the ``imagefolder`` importer reads."""
    rng = random.Random(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng).save(root / shape / f"{i:03d}.png")
    return root


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--home", default=None, help="raynas home (default: a new temporary directory)")
    p.add_argument("--per-class", type=int, default=20, help="images drawn per class (default 20)")
    args = p.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="raynas-example-"))

    with tempfile.TemporaryDirectory(prefix="raynas-shapes-") as tmp:
        tree = make_tree(Path(tmp) / "shapes", args.per_class)
        # The images are 48x48; image_size=32 resizes them (centre-cropping any non-square one).
        ds = IMPORTERS.get("imagefolder")(tree, name="shapes", image_size=32, domain="toy")
    store = DatasetStore(home)
    path = store.save(ds, overwrite=True)

    info = store.info("shapes")  # read back from the Parquet footer alone
    print(f"stored {info.name} at {path}")
    print(f"  {info.num_images} images of shape {'x'.join(map(str, info.shape))}, "
          f"{info.num_classes} classes: {', '.join(info.class_names)}")
    print(f"  splits: {info.split_counts}; content hash {info.content_hash[:16]}")

    grid = sample_grid(store.load("shapes"), home / "plots" / "shapes.png", per_class=6)
    print(f"sample grid: {grid}")

    loader = create_loader("shapes", "train", LoaderConfig(image_size=32, batch_size=8, augment=True), store)
    print(f"one epoch of the train split ({len(loader)} batches, backend memory):")
    for i, (x, y) in enumerate(loader):
        print(f"  batch {i}: images {tuple(x.shape)} {x.dtype}, labels {y.tolist()}")


if __name__ == "__main__":
    main()
