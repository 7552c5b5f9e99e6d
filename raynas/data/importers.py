"""Importers: bring external images into the raynas format (one registry entry per format).

Every importer returns a validated :class:`ImageDataset`; nothing touches the store until
all files have been read and checked, so a bad input never leaves half a dataset behind.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from raynas.data.format import ImageDataset, make_dataset
from raynas.data.imaging import (IMAGE_EXTENSIONS, array_to_nchw, fit_square, is_grayscale, is_image_file, read_rgb,
                                 resize_nchw, rgb_to_chw, to_channels)
from raynas.errors import RaynasError
from raynas.progress import progress
from raynas.registry import Registry

Importer = Callable[..., ImageDataset]
IMPORTERS: Registry[Importer] = Registry("import format")


def _provenance(source: str | Path, fmt: str, **extra: Any) -> dict[str, Any]:
    return {"source": str(source), "format": fmt,
            "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **extra}


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise RaynasError(f"--channels must be 1 or 3, got {channels}")


def _check_size(image_size: int | None) -> None:
    if image_size is not None and image_size < 4:
        raise RaynasError(f"--image-size must be at least 4, got {image_size}")


def _finish(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Pick the channel count: as asked, else 1 when every image is gray, else 3."""
    if channels is None:
        channels = 1 if is_grayscale(images) else 3
    return to_channels(images, channels)


def images_from_files(files: Sequence[Path], image_size: int | None, channels: int | None) -> np.ndarray:
    """Decode files into uint8 NCHW; without ``image_size`` all files must share one square size."""
    _check_channels(channels)
    _check_size(image_size)
    arrays, first = [], None
    for path in progress(files, "reading images"):
        img = read_rgb(path)
        if image_size is None:
            if first is None:
                first = (path, img.size)
            if img.size != first[1] or img.size[0] != img.size[1]:
                raise RaynasError(
                    f"images differ in size or are not square ({first[1][0]}x{first[1][1]} in {first[0]}, "
                    f"{img.size[0]}x{img.size[1]} in {path})",
                    "pass --image-size N to centre-crop and resize every image to NxN",
                )
        else:
            img = fit_square(img, image_size)
        arrays.append(rgb_to_chw(img))
    return _finish(np.stack(arrays), channels)


@IMPORTERS.register("imagefolder")
def import_imagefolder(path: str | Path, *, name: str, image_size: int | None = None,
                       channels: int | None = None, domain: str = "custom", seed: int = 0,
                       fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A class-per-folder tree: ``PATH/<class>/<image>``; files with other extensions are skipped."""
    root = Path(path)
    if not root.is_dir():
        raise RaynasError(f"{root} is not a directory", "give the folder that holds one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise RaynasError(f"{root} has no class folders", "put the images of each class in their own sub-folder")
    files, labels = [], []
    for label, cdir in enumerate(class_dirs):
        found = sorted(p for p in cdir.rglob("*") if p.is_file() and is_image_file(p))
        if not found:
            raise RaynasError(
                f"class folder '{cdir.name}' has no image files ({', '.join(IMAGE_EXTENSIONS)})",
                f"add images to {cdir} or remove the folder",
            )
        files += found
        labels += [label] * len(found)
    images = images_from_files(files, image_size, channels)
    return make_dataset(name, images, np.array(labels), [d.name for d in class_dirs], domain=domain,
                        provenance=_provenance(root, "imagefolder"), seed=seed, fractions=fractions)


@IMPORTERS.register("meta-album")
def import_meta_album(path: str | Path, *, name: str, image_size: int | None = None,
                      channels: int | None = None, domain: str | None = None, seed: int = 0,
                      fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A Meta-Album dataset folder: ``labels.csv`` (FILE_NAME, CATEGORY) and ``images/``."""
    root = Path(path)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise RaynasError(f"{csv_path} not found",
                          "give a Meta-Album dataset folder holding labels.csv and an images/ folder")
    image_dir = root / "images" if (root / "images").is_dir() else root
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"FILE_NAME", "CATEGORY"} - set(reader.fieldnames or [])
        if missing:
            raise RaynasError(f"{csv_path} lacks the column(s) {sorted(missing)}",
                              "Meta-Album labels.csv files have FILE_NAME and CATEGORY columns")
        rows = [(r["FILE_NAME"], r["CATEGORY"]) for r in reader]
    if not rows:
        raise RaynasError(f"{csv_path} lists no images", "add one row per image")
    files = [image_dir / f for f, _ in rows]
    for f in files:
        if not f.is_file():
            raise RaynasError(f"{f} is listed in {csv_path} but does not exist",
                              "restore the file or remove its row from labels.csv")
    class_names = sorted({c for _, c in rows})
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[c] for _, c in rows])
    images = images_from_files(files, image_size, channels)
    return make_dataset(name, images, labels, class_names, domain=domain or "meta-album",
                        provenance=_provenance(root, "meta-album"), seed=seed, fractions=fractions)


@IMPORTERS.register("npz")
def import_npz(path: str | Path, *, name: str, image_size: int | None = None, channels: int | None = None,
               domain: str = "custom", seed: int = 0,
               fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A ``.npz`` with ``x`` (images) and ``y`` (integer labels), optionally ``class_names``."""
    _check_channels(channels)
    _check_size(image_size)
    src = Path(path)
    try:
        with np.load(src, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise RaynasError(f"{src} not found", "check the path") from None
    except (OSError, ValueError) as exc:
        raise RaynasError(f"cannot read {src} as .npz: {exc}",
                          "save the arrays with numpy.savez(path, x=images, y=labels)") from exc
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise RaynasError(f"{src} lacks the array(s) {missing} (has {sorted(arrays)})",
                          "save the arrays with numpy.savez(path, x=images, y=labels)")
    x, y = arrays["x"], np.asarray(arrays["y"])
    if y.ndim != 1 or len(x) != len(y):
        raise RaynasError(f"{src}: mismatched lengths: {len(x)} images but {len(y)} labels",
                          "give exactly one label per image")
    images = array_to_nchw(x, str(src))
    if image_size is not None:
        if images.shape[2] != images.shape[3]:
            side = min(images.shape[2:])
            top, left = (images.shape[2] - side) // 2, (images.shape[3] - side) // 2
            images = images[:, :, top:top + side, left:left + side]
        images = resize_nchw(np.ascontiguousarray(images), image_size)
    images = _finish(images, channels)
    if y.dtype.kind in "US":  # string labels name their classes
        class_names, y = np.unique(y, return_inverse=True)
        class_names = [str(c) for c in class_names]
    elif "class_names" in arrays:
        class_names = [str(c) for c in arrays["class_names"]]
    else:
        top = int(np.max(y)) if y.size and y.dtype.kind in "iuf" and np.all(np.isfinite(y)) else -1
        class_names = [str(i) for i in range(top + 1)]
    return make_dataset(name, images, y, class_names, domain=domain,
                        provenance=_provenance(src, "npz"), seed=seed, fractions=fractions)


def from_torchvision(dataset: Any, *, name: str, class_names: Sequence[str] | None = None,
                     image_size: int | None = None, channels: int | None = None,
                     domain: str = "torchvision", seed: int = 0,
                     fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """Wrap any map-style torchvision dataset yielding (PIL image or tensor, int label)."""
    from torchvision.transforms.functional import to_pil_image

    _check_channels(channels)
    _check_size(image_size)
    images, labels = [], []
    for i in progress(range(len(dataset)), f"reading {type(dataset).__name__}"):
        img, target = dataset[i]
        if not hasattr(img, "convert"):
            img = to_pil_image(img)
        img = img.convert("RGB")
        if image_size is not None:
            img = fit_square(img, image_size)
        elif images and img.size[::-1] != images[0].shape[1:]:
            raise RaynasError(f"item {i} is {img.size[0]}x{img.size[1]}, unlike the first item",
                              "pass image_size=N to resize every image to NxN")
        images.append(rgb_to_chw(img))
        labels.append(int(target))
    if not images:
        raise RaynasError(f"{type(dataset).__name__} is empty")
    names = class_names or getattr(dataset, "classes", None) or [str(i) for i in range(max(labels) + 1)]
    return make_dataset(name, _finish(np.stack(images), channels), np.array(labels), names, domain=domain,
                        provenance={"source": type(dataset).__name__, "format": "torchvision"},
                        seed=seed, fractions=fractions)
