"""Importers: bring external images into the raynas format (one registry entry per format).

Every importer returns a validated :class:`ImageDataset`; nothing touches the store until
all files have been read and checked, so a bad input never leaves half a dataset behind. Image
files (folders, Meta-Album), Parquet files and uint8 ``.npz`` arrays are also planned without reading their
pixels (:data:`FILE_IMPORTS`) and then streamed into the store chunk by chunk, which is how
``raynas data import`` reads them.
Input is treated as untrusted: options are checked before any file is read, every path
taken from the input must stay inside the folder being imported (no ``..``, no absolute
paths, no links leading out), and sizes are checked before memory is allocated for them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from raynas.data import splits, validate
from raynas.data.format import DatasetInfo, ImageDataset, make_dataset, tensor_column_to_numpy
from raynas.data.imaging import (IMAGE_EXTENSIONS, WORK_CHUNK_BYTES, array_to_nchw, decode_rgb, fit_square,
                                 is_grayscale, is_image_file, nchw_shape, read_rgb, resize_nchw, rgb_to_chw,
                                 to_channels)
from raynas.errors import RaynasError
from raynas.progress import progress
from raynas.registry import Registry

Importer = Callable[..., ImageDataset]
IMPORTERS: Registry[Importer] = Registry("import format")


def _provenance(source: str | Path, fmt: str, **extra: Any) -> dict[str, Any]:
    return {"source": str(source), "format": fmt,
            "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **extra}


def check_options(name: str, image_size: int | None, channels: int | None, seed: int,
                  fractions: Sequence[float]) -> None:
    """The cheap checks, done before a single file is read."""
    validate.check_name(name)
    validate.check_image_size(image_size)
    validate.check_channels(channels)
    validate.check_seed(seed)
    splits.check_fractions(fractions)


# What writing a dataset holds besides its images, per byte of them: the Arrow table's copy and
# the parquet writer's buffers of one row group (row groups are bounded, raynas.data.format).
# Measured: 100 RGB images resized to 1024x1024 (315 MB) peaked 1.0 GB above the imports' own
# 0.9 GB; with a single row group the writer had held 11-13x the images (4.1 GB).
SAVE_OVERHEAD = 3


def finish_bytes(n: int, c: int, side: int, channels: int | None) -> int:
    """Bytes an import holds from its ``n`` decoded uint8 images (``c`` channels, ``side`` pixels
    a side) to its end: the images, the gray test's mask and a copy in the final channel count
    (with a float chunk), then at saving the final images and the writer's buffers."""
    plane = n * side * side
    gray_test = channels is None and c == 3
    target = channels or c
    converted = plane if gray_test else plane * target if target != c else 0
    finish = plane * c + (plane if gray_test else 0) + converted + (WORK_CHUNK_BYTES if converted else 0)
    return max(finish, (1 + SAVE_OVERHEAD) * plane * target)


def npz_peak_bytes(shape: tuple[int, int, int, int], *, x_bytes: int, other_bytes: int, float_input: bool,
                   image_size: int | None, channels: int | None) -> int:
    """The most bytes an npz import holds at once. The memory check is made on this, not on the
    stored size: resizing 16x16 images to 1024x1024 makes them 4,096 times larger.

    ``shape`` is the images' (N, C, H, W); ``x_bytes`` the stored images', ``other_bytes`` the
    labels' and class names' (held to the end). Phase by phase: reading holds the stored images,
    a float64 working copy of non-uint8 ones and the uint8 images; resizing the uint8 images before
    (and a centre-cropped copy) and after, with float chunks; then :func:`finish_bytes`."""
    n, c, h, w = shape
    side = image_size or h
    before = n * c * h * w
    reading = x_bytes + before * (9 if float_input else 1)
    resizing = 2 * before + n * c * side * side + 3 * WORK_CHUNK_BYTES if image_size is not None else 0
    return other_bytes + max(reading, resizing, finish_bytes(n, c, side, channels))


def _finish(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Pick the channel count: as asked, else 1 when every image is gray, else 3."""
    if channels is None:
        channels = 1 if is_grayscale(images) else 3
    return to_channels(images, channels)


def images_from_files(files: Sequence[Path], image_size: int | None, channels: int | None) -> np.ndarray:
    """Decode files into uint8 NCHW; without ``image_size`` all files must share one square size.

    The first image fixes the size, so the memory the whole set needs is checked, and the
    array allocated once, before the other files are decoded.
    """
    validate.check_channels(channels)
    validate.check_image_size(image_size)
    out, first = None, None
    for i, path in enumerate(progress(files, "reading images")):
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
        if out is None:
            side = img.size[0]
            validate.check_max_side(side, side, str(path))
            validate.check_memory(finish_bytes(len(files), 3, side, channels), f"{len(files)} images of {side}x{side}")
            out = np.empty((len(files), 3, side, side), np.uint8)
        out[i] = rgb_to_chw(img)
    if out is None:
        raise RaynasError("no image files to import", "add images and run the import again")
    return _finish(out, channels)


def _outside(path: Path, root: Path) -> RaynasError | None:
    """An error when ``path`` (after following links) lies outside ``root`` (already resolved)."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL in the name
        return RaynasError(f"cannot follow {path}: {exc}", "remove the broken link and run the import again")
    if target == root or root in target.parents:
        return None
    return RaynasError(f"{path} is a link to {target}, outside the folder being imported ({root})",
                       "copy the file into the folder instead of linking it, or remove the link: "
                       "raynas never imports files from outside the folder it is given")


def _image_files(class_dir: Path, root: Path) -> list[Path]:
    """Image files below one class folder, sorted; links leading out of ``root`` are refused."""
    found = []
    for p in sorted(class_dir.rglob("*")):
        if p.is_symlink() and not p.name.startswith("."):
            error = _outside(p, root)
            if error:
                raise error
        if p.is_file() and is_image_file(p):
            found.append(p)
    return found


@dataclass(frozen=True)
class FileImport:
    """An import of image files, planned but not read: the files (found and checked), their
    labels and class names. :meth:`dataset` reads them into memory; :meth:`write` streams them
    into a dataset file (or shards) chunk by chunk, in memory that does not grow with the dataset."""

    name: str
    files: list[Path]
    labels: np.ndarray
    class_names: list[str]
    domain: str
    provenance: dict[str, Any]

    def dataset(self, image_size: int | None = None, channels: int | None = None, seed: int = 0,
                fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
        images = images_from_files(self.files, image_size, channels)
        return make_dataset(self.name, images, self.labels, self.class_names, domain=self.domain,
                            provenance=self.provenance, seed=seed, fractions=fractions)

    def write(self, path: Path, image_size: int | None = None, channels: int | None = None, seed: int = 0,
              fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> DatasetInfo:
        """Write the dataset to ``path`` (a temporary name the store moves into place; a file, or a
        folder of shards when large), streamed: the same data and content hash as :meth:`dataset`
        then saving it. Without ``channels``, images are kept in RGB while read and, when all turn
        out gray, converted to one channel in a second pass over what was written."""
        from raynas.data.format import row_group_rows
        from raynas.data.writer import write_images

        validate.check_channels(channels)
        validate.check_image_size(image_size)
        validate.check_name(self.name)
        validate.check_seed(seed)
        class_names = validate.check_class_names(self.class_names)
        labels = validate.check_labels(self.labels, len(self.files), class_names,
                                       splits.min_images_per_class(fractions))
        split = splits.stratified_split(labels, fractions, seed)
        first = _decoded(self.files[0], image_size, None)
        side = first.size[0]
        validate.check_max_side(side, side, str(self.files[0]))
        rows = row_group_rows(3 * side * side)

        def chunks():
            batch = []
            for i, path in enumerate(progress(self.files, "reading images")):
                batch.append(rgb_to_chw(_decoded(path, image_size, (self.files[0], first.size))))
                if len(batch) == rows or i == len(self.files) - 1:
                    chunk = np.stack(batch)
                    batch = []
                    yield chunk if channels is None else to_channels(chunk, channels)

        return write_images(path, chunks(), shape=(channels or 3, side, side), find_gray=channels is None, rows=rows,
                            name=self.name, class_names=class_names, labels=labels, splits=split, domain=self.domain,
                            provenance=dict(self.provenance, split_seed=seed, split_fractions=list(fractions)))


def _decoded(path: Path, image_size: int | None, first: tuple[Path, tuple[int, int]] | None):
    """One image, decoded and fitted to ``image_size``; without it the image must be square and,
    when ``first`` is given, the size of the first."""
    img = read_rgb(path)
    if image_size is not None:
        return fit_square(img, image_size)
    expected = first[1] if first else img.size
    if img.size != expected or img.size[0] != img.size[1]:
        where = first[0] if first else path
        raise RaynasError(
            f"images differ in size or are not square ({expected[0]}x{expected[1]} in {where}, "
            f"{img.size[0]}x{img.size[1]} in {path})",
            "pass --image-size N to centre-crop and resize every image to NxN",
        )
    return img


# Imports that stream into the store: each plans one (a FileImport, NpzImport) or returns None
# when the input must be read whole (then its IMPORTERS entry does that).
FILE_IMPORTS: Registry[Callable[..., Any]] = Registry("streamed import format")


ROW_ORDER_SEED = 0


def row_order(count: int) -> np.ndarray:
    """The order in which an import of ``count`` image files stores them (a seeded permutation of
    the order they are listed in: classes in name order, files in name order, or labels.csv's)."""
    return np.random.default_rng(ROW_ORDER_SEED).permutation(count)


def _in_random_order(files: list[Path], labels: np.ndarray) -> tuple[list[Path], np.ndarray]:
    """Files in a seeded random order instead of class by class: every row group of the stored
    dataset then holds images of every class, and so does the shuffle window of a loader that
    streams row groups (a folder read class by class gave row groups of one class each)."""
    order = row_order(len(files))
    return [files[i] for i in order], labels[order]


@FILE_IMPORTS.register("imagefolder")
def plan_imagefolder(path: str | Path, *, name: str, domain: str = "custom") -> FileImport:
    """A class-per-folder tree: ``PATH/<class>/<image>``; files with other extensions are skipped."""
    validate.check_name(name)
    root = Path(path)
    if not root.is_dir():
        raise RaynasError(f"{root} is not a directory", "give the folder that holds one sub-folder per class")
    real_root = root.resolve()
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise RaynasError(f"{root} has no class folders", "put the images of each class in their own sub-folder")
    files, labels = [], []
    for label, cdir in enumerate(class_dirs):
        error = _outside(cdir, real_root)
        if error:
            raise error
        found = _image_files(cdir, real_root)
        if not found:
            raise RaynasError(
                f"class folder '{cdir.name}' has no image files ({', '.join(IMAGE_EXTENSIONS)})",
                f"add images to {cdir} or remove the folder",
            )
        files += found
        labels += [label] * len(found)
    files, labels = _in_random_order(files, np.array(labels))
    return FileImport(name, files, labels, [d.name for d in class_dirs], domain, _provenance(root, "imagefolder"))


@IMPORTERS.register("imagefolder")
def import_imagefolder(path: str | Path, *, name: str, image_size: int | None = None,
                       channels: int | None = None, domain: str = "custom", seed: int = 0,
                       fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A class-per-folder tree: ``PATH/<class>/<image>``; files with other extensions are skipped."""
    check_options(name, image_size, channels, seed, fractions)
    return plan_imagefolder(path, name=name, domain=domain).dataset(image_size, channels, seed, fractions)


def _read_labels_csv(csv_path: Path) -> list[tuple[int, str, str]]:
    """(line, FILE_NAME, CATEGORY) of every row; short rows and bad encodings are named."""
    data = csv_path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RaynasError(f"{csv_path} is not UTF-8 text (line {line}: {exc.reason})",
                          "save labels.csv as UTF-8, e.g. `iconv -f latin1 -t utf-8 labels.csv > fixed.csv`") from None
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = {"FILE_NAME", "CATEGORY"} - set(reader.fieldnames or [])
        if missing:
            raise RaynasError(f"{csv_path} lacks the column(s) {sorted(missing)}",
                              "Meta-Album labels.csv files have FILE_NAME and CATEGORY columns")
        for row in reader:
            empty = [k for k in ("FILE_NAME", "CATEGORY") if not (row.get(k) or "").strip()]
            if empty:
                raise RaynasError(f"{csv_path} line {reader.line_num} has no {' and no '.join(empty)} value",
                                  "give every row a file name and a category, or delete the row")
            rows.append((reader.line_num, row["FILE_NAME"], row["CATEGORY"]))
    except csv.Error as exc:
        raise RaynasError(f"cannot parse {csv_path}: {exc}",
                          "fix or re-export labels.csv as plain CSV") from None
    return rows


def _listed_file(image_dir: Path, root: Path, file_name: str, where: str) -> Path:
    """The image a labels.csv row names: a relative path that stays inside the dataset folder."""
    if "\0" in file_name:
        problem = "contains a NUL character"
    elif PurePosixPath(file_name).is_absolute() or PureWindowsPath(file_name).is_absolute():
        problem = "is an absolute path"
    elif ".." in PurePosixPath(file_name.replace("\\", "/")).parts:
        problem = "climbs out with '..'"
    else:
        path = image_dir / file_name
        error = _outside(path, root)
        if error:
            raise RaynasError(f"{where}: {error.problem}", error.fix)
        return path
    raise RaynasError(f"{where}: FILE_NAME {file_name!r} {problem}",
                      f"list each image by its path inside {image_dir}, such as 'img001.jpg': "
                      "raynas never imports images from outside the dataset folder")


@FILE_IMPORTS.register("meta-album")
def plan_meta_album(path: str | Path, *, name: str, domain: str | None = None) -> FileImport:
    """A Meta-Album dataset folder: ``labels.csv`` (FILE_NAME, CATEGORY) and ``images/``."""
    validate.check_name(name)
    root = Path(path)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise RaynasError(f"{csv_path} not found",
                          "give a Meta-Album dataset folder holding labels.csv and an images/ folder")
    image_dir = root / "images" if (root / "images").is_dir() else root
    rows = _read_labels_csv(csv_path)
    if not rows:
        raise RaynasError(f"{csv_path} lists no images", "add one row per image")
    real_root = root.resolve()
    files = [_listed_file(image_dir, real_root, f, f"{csv_path} line {line}") for line, f, _ in rows]
    for f in files:
        if not f.is_file():
            raise RaynasError(f"{f} is listed in {csv_path} but {'is not a file' if f.exists() else 'does not exist'}",
                              "restore the file or remove its row from labels.csv")
    class_names = sorted({c for _, _, c in rows})
    index = {c: i for i, c in enumerate(class_names)}
    files, labels = _in_random_order(files, np.array([index[c] for _, _, c in rows]))
    return FileImport(name, files, labels, class_names, domain or "meta-album", _provenance(root, "meta-album"))


@IMPORTERS.register("meta-album")
def import_meta_album(path: str | Path, *, name: str, image_size: int | None = None,
                      channels: int | None = None, domain: str | None = None, seed: int = 0,
                      fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A Meta-Album dataset folder: ``labels.csv`` (FILE_NAME, CATEGORY) and ``images/``."""
    check_options(name, image_size, channels, seed, fractions)
    return plan_meta_album(path, name=name, domain=domain).dataset(image_size, channels, seed, fractions)


NPZ_FIX = "save the arrays with numpy.savez(path, x=images, y=labels)"
# what a damaged, truncated, encrypted or oddly compressed archive member raises
_NPZ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def _open_npz(src: Path) -> zipfile.ZipFile:
    """The archive, after telling apart the usual wrong files (missing, empty, a lone .npy)."""
    if not src.exists():
        raise RaynasError(f"{src} not found", "check the path")
    if not src.is_file():
        raise RaynasError(f"cannot read {src} as .npz: it is not a file", NPZ_FIX)
    with open(src, "rb") as fh:
        magic = fh.read(6)
    if not magic:
        raise RaynasError(f"cannot read {src} as .npz: the file is empty (0 bytes)", NPZ_FIX)
    if magic == b"\x93NUMPY":
        raise RaynasError(f"cannot read {src} as .npz: it holds one .npy array (numpy.save), not named arrays",
                          NPZ_FIX)
    try:
        return zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RaynasError(f"cannot read {src} as .npz: {exc}", NPZ_FIX) from None


def _read_npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an .npy stream, which is left at the first data byte."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(fh)


def _npz_layout(archive: zipfile.ZipFile, member: str, src: Path) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Shape, dtype and Fortran order of one array, from its header alone."""
    try:
        with archive.open(member) as fh:
            shape, fortran, dtype = _read_npy_header(fh)
    except _NPZ_ERRORS as exc:
        raise RaynasError(f"cannot read {src} as .npz: array {member!r}: {exc}", NPZ_FIX) from None
    if dtype.hasobject:
        raise RaynasError(f"cannot read {src} as .npz: array {member!r} holds Python objects, which are never "
                          "unpickled", "store numbers (images, labels) and strings (class names) only")
    return tuple(int(s) for s in shape), dtype, bool(fortran)


def _npz_array(archive: zipfile.ZipFile, member: str, src: Path) -> np.ndarray:
    try:
        with archive.open(member) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise RaynasError(f"cannot read {src} as .npz: array {member!r}: {exc}", NPZ_FIX) from None


def number_labels(y: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    """Integer labels without class names: each distinct value is one class.

    The values are numbered 0..K-1 in ascending order and keep their value as the class
    name, so labels 0..K-1 stay as they are, and labels {0, 10**9} make two classes named
    "0" and "1000000000" (not a billion classes). Negative labels are refused.
    """
    y = validate.integer_labels(np.asarray(y))
    values = np.unique(y)
    if values.size and values[0] < 0:
        raise RaynasError(f"{source}: label {values[0]} is out of range: labels are class numbers 0 or more",
                          "store class indices 0..K-1, or save string labels (class names) as y")
    if len(values) > validate.MAX_CLASSES:
        raise RaynasError(f"{source}: the labels hold {len(values):,} distinct values, more than the "
                          f"{validate.MAX_CLASSES:,} classes a dataset may have",
                          "check the labels: each distinct label value is one class")
    return np.searchsorted(values, y).astype(np.int64), [str(v) for v in values.tolist()]


@dataclass(frozen=True)
class _NpzContents:
    """What an .npz holds, checked from its headers, with its labels read (not its images)."""

    member: str  # the images' archive member
    x_shape: tuple[int, ...]
    x_dtype: np.dtype
    fortran: bool
    nchw: tuple[int, int, int, int]
    labels: np.ndarray
    class_names: list[str]
    sizes: dict[str, int]  # bytes of each array


def _npz_contents(archive: zipfile.ZipFile, src: Path, image_size: int | None,
                  before_reading: Callable[[tuple[int, int, int, int], np.dtype, dict[str, int]], None] | None = None
                  ) -> _NpzContents:
    """The headers checked, then ``before_reading(nchw, x dtype, bytes per array)`` (a memory
    check), then the labels read."""
    members = {m[:-4]: m for m in archive.namelist() if m.endswith(".npy")}
    missing = [k for k in ("x", "y") if k not in members]
    if missing:
        raise RaynasError(f"{src} lacks the array(s) {missing} (has {sorted(members)})", NPZ_FIX)
    layouts = {k: _npz_layout(archive, members[k], src) for k in ("x", "y", "class_names") if k in members}
    (x_shape, x_dtype, fortran), (y_shape, _, _) = layouts["x"], layouts["y"]
    n, c, h, w = nchw_shape(x_shape, str(src))
    if len(y_shape) != 1:
        raise RaynasError(f"{src}: labels have shape {y_shape}, expected a flat array of one label per image",
                          "store y as a 1-d array, e.g. y.reshape(-1)")
    if n != y_shape[0]:
        raise RaynasError(f"{src}: mismatched lengths: {n} images but {y_shape[0]} labels",
                          "give exactly one label per image")
    if n == 0 or min(h, w) == 0:
        raise RaynasError(f"{src}: the images array {x_shape} holds no pixels", "add images before importing")
    if image_size is None:
        validate.check_max_side(h, w, str(src))
    if "class_names" in layouts and math.prod(layouts["class_names"][0]) > validate.MAX_CLASSES:
        raise RaynasError(f"{src}: class_names holds more than {validate.MAX_CLASSES:,} names",
                          "give one name per class")
    sizes = {k: math.prod(shape) * dtype.itemsize for k, (shape, dtype, _) in layouts.items()}
    if before_reading is not None:
        before_reading((n, c, h, w), x_dtype, sizes)
    y = _npz_array(archive, members["y"], src)
    if y.dtype.kind in "US":  # string labels name their classes
        class_names, y = np.unique(y, return_inverse=True)
        class_names = [str(c) for c in class_names]
    elif "class_names" in members:
        class_names = [str(c) for c in np.ravel(_npz_array(archive, members["class_names"], src))]
    else:
        y, class_names = number_labels(y, str(src))
    return _NpzContents(members["x"], x_shape, x_dtype, fortran, (n, c, h, w), y, class_names, sizes)


def _fit_images(images: np.ndarray, image_size: int | None) -> np.ndarray:
    """Centre-crop to a square and resize, when ``image_size`` asks for it."""
    if image_size is None:
        return images
    if images.shape[2] != images.shape[3]:
        short = min(images.shape[2:])
        top, left = (images.shape[2] - short) // 2, (images.shape[3] - short) // 2
        images = images[:, :, top:top + short, left:left + short]
    return resize_nchw(np.ascontiguousarray(images), image_size)


@dataclass(frozen=True)
class NpzImport:
    """An import of a .npz, planned: headers checked and labels read; :meth:`write` streams the
    images from the archive a row group at a time. Floats and other non-uint8 numbers take a first
    pass for their value range (0..1 or 0..255 decides the scale of every chunk). A
    Fortran-ordered ``x`` cannot be read by rows: :func:`import_npz` reads it whole."""

    name: str
    src: Path
    domain: str

    def write(self, path: Path, image_size: int | None = None, channels: int | None = None, seed: int = 0,
              fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> DatasetInfo:
        from raynas.data.format import row_group_rows
        from raynas.data.writer import write_images

        check_options(self.name, image_size, channels, seed, fractions)
        with _open_npz(self.src) as archive:
            found = _npz_contents(archive, self.src, image_size)
        class_names = validate.check_class_names(found.class_names)
        labels = validate.check_labels(found.labels, found.nchw[0], class_names, splits.min_images_per_class(fractions))
        split = splits.stratified_split(labels, fractions, seed)
        n, c, h, w = found.nchw
        out_h, out_w = (image_size, image_size) if image_size is not None else (h, w)
        rows = row_group_rows(c * max(h * w, out_h * out_w))

        value_range = None
        if found.x_dtype != np.uint8:
            if found.x_dtype.kind not in "fiub":
                raise RaynasError(f"{self.src}: images have dtype {found.x_dtype}, expected numbers")
            value_range = self._value_range(found, rows)

        def chunks():  # a row group of uint8 images at a time, read in parts as small as its bytes
            pieces, held = [], 0
            step = max(1, rows // found.x_dtype.itemsize)
            for x in self._arrays(found, step, "reading images"):
                pieces.append(_fit_images(array_to_nchw(x, str(self.src), value_range), image_size))
                held += len(x)
                if held >= rows:
                    images, pieces, held = np.concatenate(pieces), [], 0
                    yield images if channels is None else to_channels(images, channels)
            if pieces:
                images = np.concatenate(pieces)
                yield images if channels is None else to_channels(images, channels)

        return write_images(path, chunks(), shape=(channels or c, out_h, out_w), find_gray=channels is None and c == 3,
                            rows=rows, name=self.name, class_names=class_names, labels=labels, splits=split,
                            domain=self.domain, provenance=dict(_provenance(self.src, "npz"), split_seed=seed,
                                                                split_fractions=list(fractions)))


    def _arrays(self, found: _NpzContents, rows: int, what: str) -> Iterator[np.ndarray]:
        """``x`` read from the archive ``rows`` images at a time, as stored (dtype and layout)."""
        item = found.x_dtype.itemsize * math.prod(found.x_shape[1:])
        n = found.nchw[0]
        with _open_npz(self.src) as archive, archive.open(found.member) as fh:
            try:
                _read_npy_header(fh)
                for start in progress(range(0, n, rows), what):
                    k = min(rows, n - start)
                    data = fh.read(k * item)
                    if len(data) != k * item:
                        raise ValueError(f"the array ends after {start + len(data) // item} of {n} images")
                    yield np.frombuffer(data, found.x_dtype).reshape(k, *found.x_shape[1:])
            except _NPZ_ERRORS as exc:
                raise RaynasError(f"cannot read {self.src} as .npz: array {found.member!r}: {exc}", NPZ_FIX) from None

    def _value_range(self, found: _NpzContents, rows: int) -> tuple[float, float]:
        """The smallest and largest pixel value, NaN and infinities refused, in a first pass over ``x``."""
        lo, hi = math.inf, -math.inf
        step = max(1, rows // max(1, found.x_dtype.itemsize))  # the pass holds about a row group
        for x in self._arrays(found, step, "checking pixel values"):
            if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise RaynasError(f"{self.src}: images contain NaN or infinite values", "clean the array first")
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        return lo, hi


@FILE_IMPORTS.register("npz")
def plan_npz(path: str | Path, *, name: str, domain: str = "custom") -> NpzImport | None:
    """A streamed import of ``path`` unless its images are Fortran-ordered (then None: import it
    whole with :func:`import_npz`)."""
    validate.check_name(name)
    src = Path(path)
    with _open_npz(src) as archive:
        members = {m[:-4]: m for m in archive.namelist() if m.endswith(".npy")}
        if "x" not in members:
            return None  # import_npz names what is missing
        _, dtype, fortran = _npz_layout(archive, members["x"], src)
    return None if fortran else NpzImport(name, src, domain)


@IMPORTERS.register("npz")
def import_npz(path: str | Path, *, name: str, image_size: int | None = None, channels: int | None = None,
               domain: str = "custom", seed: int = 0,
               fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A ``.npz`` with ``x`` (images) and ``y`` (integer or string labels), optionally ``class_names``.

    Integer labels without ``class_names`` are numbered by :func:`number_labels`. Every
    array's header is checked (shape, dtype, size) before its data is read.
    """
    check_options(name, image_size, channels, seed, fractions)
    src = Path(path)

    def check_memory(nchw: tuple[int, int, int, int], x_dtype: np.dtype, sizes: dict[str, int]) -> None:
        n, c, h, w = nchw
        peak = npz_peak_bytes(nchw, x_bytes=sizes["x"], other_bytes=sum(sizes.values()) - sizes["x"],
                              float_input=x_dtype != np.uint8, image_size=image_size, channels=channels)
        resized = f" resized to {image_size}x{image_size}" if image_size is not None else ""
        validate.check_memory(peak, f"{src}: importing {n} images of {h}x{w}{resized}")

    with _open_npz(src) as archive:
        found = _npz_contents(archive, src, image_size, check_memory)
        x = _npz_array(archive, found.member, src)
    images = _fit_images(array_to_nchw(x, str(src)), image_size)
    del x
    images = _finish(images, channels)
    return make_dataset(name, images, found.labels, found.class_names, domain=domain,
                        provenance=_provenance(src, "npz"), seed=seed, fractions=fractions)


PARQUET_FIX = ("give a Parquet (or Arrow IPC) file with an 'image' column (encoded PNG/JPEG bytes, a struct with "
               "'bytes', or uint8 tensors) and a 'label' column (integers or class names)")


@dataclass(frozen=True)
class ParquetImport:
    """An import of a Parquet file of images, planned: its labels read; the images are read a
    row group's worth at a time, as encoded bytes (also a ``{bytes, path}`` struct, as Hugging
    Face datasets write them) or uint8 tensors."""

    name: str
    src: Path
    labels: np.ndarray
    class_names: list[str]
    domain: str

    def _chunks(self, image_size: int | None, rows: int):
        """uint8 NCHW images (1 or 3 channels, as stored) of ``rows`` rows at a time, in row order."""
        parquet = _read_input_parquet(self.src)
        tensors = isinstance(parquet.schema_arrow.field("image").type, pa.FixedShapeTensorType)
        row, size = 0, None
        batches = parquet.iter_batches(batch_size=rows, columns=["image"])
        for batch in progress(batches, "reading images", total=-(-parquet.num_rows // rows)):
            cells = batch.column(0)
            if tensors:
                x = tensor_column_to_numpy(cells, tuple(cells.type.shape))
                images = array_to_nchw(x, str(self.src))
                if image_size is None:
                    validate.check_max_side(*images.shape[2:], str(self.src))
                row += len(cells)
                yield _fit_images(images, image_size)
                continue
            if pa.types.is_struct(cells.type):
                cells = cells.field("bytes")
            out = []
            for data in cells.to_pylist():
                where, row = f"{self.src} row {row}", row + 1
                if data is None:
                    raise RaynasError(f"{where} has no image", "fill or drop rows without an image")
                img = decode_rgb(io.BytesIO(data), where)
                if image_size is not None:
                    img = fit_square(img, image_size)
                else:
                    if size is None:
                        size = img.size
                        validate.check_max_side(size[1], size[0], where)
                    if img.size != size or img.size[0] != img.size[1]:
                        raise RaynasError(f"images differ in size or are not square ({size[0]}x{size[1]} in the "
                                          f"first row, {img.size[0]}x{img.size[1]} in {where})",
                                          "pass --image-size N to centre-crop and resize every image to NxN")
                out.append(rgb_to_chw(img))
            yield np.stack(out)

    def dataset(self, image_size: int | None = None, channels: int | None = None, seed: int = 0,
                fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
        images = np.concatenate(list(self._chunks(image_size, 1 << 30)))
        return make_dataset(self.name, _finish(images, channels), self.labels, self.class_names, domain=self.domain,
                            provenance=_provenance(self.src, input_format(self.src)), seed=seed, fractions=fractions)

    def write(self, path: Path, image_size: int | None = None, channels: int | None = None, seed: int = 0,
              fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> DatasetInfo:
        from raynas.data.format import row_group_rows
        from raynas.data.writer import write_images

        check_options(self.name, image_size, channels, seed, fractions)
        class_names = validate.check_class_names(self.class_names)
        labels = validate.check_labels(self.labels, len(self.labels), class_names,
                                       splits.min_images_per_class(fractions))
        split = splits.stratified_split(labels, fractions, seed)
        c, h, w = next(iter(self._chunks(image_size, 1))).shape[1:]  # the first image fixes the size
        rows = row_group_rows(3 * h * w)
        converted = (chunk if channels is None else to_channels(chunk, channels)
                     for chunk in self._chunks(image_size, rows))
        return write_images(path, converted, shape=(channels or c, h, w), find_gray=channels is None and c == 3,
                            rows=rows, name=self.name, class_names=class_names, labels=labels, splits=split,
                            domain=self.domain, provenance=dict(_provenance(self.src, input_format(self.src)),
                                                                split_seed=seed, split_fractions=list(fractions)))


ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")


def input_format(src: Path) -> str:
    """``arrow`` for an Arrow IPC (Feather 2) file, by its suffix, else ``parquet``."""
    return "arrow" if src.suffix.lower() in ARROW_SUFFIXES else "parquet"


class _ParquetInput:
    """A Parquet input file, read a batch at a time."""

    def __init__(self, src: Path):
        import pyarrow.parquet as pq

        # pre_buffer would keep every row group's compressed bytes until the file is closed: the
        # import's memory then grew with the input (+2.6 GB for 1M 32x32 images)
        self.file = pq.ParquetFile(str(src), pre_buffer=False)
        self.schema_arrow, self.num_rows = self.file.schema_arrow, self.file.metadata.num_rows

    def read(self, columns: list[str]) -> pa.Table:
        return self.file.read(columns=columns)

    def iter_batches(self, batch_size: int, columns: list[str]):
        return self.file.iter_batches(batch_size=batch_size, columns=columns)


class _ArrowInput:
    """An Arrow IPC file (Feather 2), read a record batch at a time from the file (not memory-mapped:
    mapped pages would count in the import's memory as they are touched)."""

    def __init__(self, src: Path):
        self.reader = pa.ipc.open_file(pa.OSFile(str(src)))
        self.schema_arrow = self.reader.schema
        self.num_rows = sum(self.reader.get_batch(i).num_rows for i in range(self.reader.num_record_batches))

    def read(self, columns: list[str]) -> pa.Table:
        return pa.Table.from_batches([b.select(columns) for b in self.iter_batches(1 << 30, columns)],
                                     schema=pa.schema([self.schema_arrow.field(c) for c in columns]))

    def iter_batches(self, batch_size: int, columns: list[str]):
        for i in range(self.reader.num_record_batches):
            batch = self.reader.get_batch(i).select(columns)
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size)


def _read_input_parquet(src: Path):
    kind = input_format(src)
    try:
        parquet = _ArrowInput(src) if kind == "arrow" else _ParquetInput(src)
    except (OSError, pa.ArrowException) as exc:
        raise RaynasError(f"cannot read {src} as {'an Arrow IPC file' if kind == 'arrow' else 'Parquet'}: {exc}",
                          PARQUET_FIX) from None
    missing = [c for c in ("image", "label") if c not in parquet.schema_arrow.names]
    if missing:
        raise RaynasError(f"{src} has no {' and no '.join(repr(c) for c in missing)} column "
                          f"(has {', '.join(parquet.schema_arrow.names)})", PARQUET_FIX)
    kind = parquet.schema_arrow.field("image").type
    if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            or (pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0)
            or (isinstance(kind, pa.FixedShapeTensorType) and kind.value_type == pa.uint8())):
        raise RaynasError(f"{src}: its image column is {kind}", PARQUET_FIX)
    return parquet


@FILE_IMPORTS.register("arrow")
@FILE_IMPORTS.register("parquet")
def plan_parquet(path: str | Path, *, name: str, domain: str = "custom") -> ParquetImport:
    """A Parquet or Arrow IPC file (``.arrow``, ``.feather``, ``.ipc``) with ``image`` and ``label``
    columns; the labels are read here."""
    validate.check_name(name)
    src = Path(path)
    parquet = _read_input_parquet(src)
    try:
        y = parquet.read(columns=["label"]).column("label")
    except (OSError, pa.ArrowException) as exc:
        raise RaynasError(f"cannot read the labels of {src}: {exc}", PARQUET_FIX) from None
    if y.null_count:
        raise RaynasError(f"{src}: {y.null_count} row(s) have no label", "fill or drop rows without a label")
    values = np.asarray(y.to_pylist())
    if values.dtype.kind in "US":
        class_names, labels = np.unique(values, return_inverse=True)
        class_names = [str(c) for c in class_names]
    else:
        labels, class_names = number_labels(values, str(src))
    return ParquetImport(name, src, labels, class_names, domain)


@IMPORTERS.register("arrow")
@IMPORTERS.register("parquet")
def import_parquet(path: str | Path, *, name: str, image_size: int | None = None, channels: int | None = None,
                   domain: str = "custom", seed: int = 0,
                   fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """A Parquet file with ``image`` (encoded bytes or uint8 tensors) and ``label`` columns."""
    check_options(name, image_size, channels, seed, fractions)
    return plan_parquet(path, name=name, domain=domain).dataset(image_size, channels, seed, fractions)


def from_torchvision(dataset: Any, *, name: str, class_names: Sequence[str] | None = None,
                     image_size: int | None = None, channels: int | None = None,
                     domain: str = "torchvision", seed: int = 0,
                     fractions: Sequence[float] = (0.5, 0.25, 0.25)) -> ImageDataset:
    """Wrap any map-style torchvision dataset yielding (PIL image or tensor, int label).

    Without ``class_names`` or a ``classes`` attribute, labels are numbered as
    :func:`number_labels` describes.
    """
    from torchvision.transforms.functional import to_pil_image

    check_options(name, image_size, channels, seed, fractions)
    images, labels = None, []
    for i in progress(range(len(dataset)), f"reading {type(dataset).__name__}"):
        img, target = dataset[i]
        if not hasattr(img, "convert"):
            img = to_pil_image(img)
        img = img.convert("RGB")
        if image_size is not None:
            img = fit_square(img, image_size)
        elif images is not None and img.size[::-1] != images.shape[2:]:
            raise RaynasError(f"item {i} is {img.size[0]}x{img.size[1]}, unlike the first item",
                              "pass image_size=N to resize every image to NxN")
        if images is None:
            w, h = img.size
            validate.check_max_side(h, w, f"item {i}")
            validate.check_memory(len(dataset) * 3 * h * w, f"{len(dataset)} images of {w}x{h}")
            images = np.empty((len(dataset), 3, h, w), np.uint8)
        images[i] = rgb_to_chw(img)
        labels.append(int(target))
    if images is None:
        raise RaynasError(f"{type(dataset).__name__} is empty")
    labels = np.array(labels)
    names = class_names or getattr(dataset, "classes", None)
    if not names:
        labels, names = number_labels(labels, type(dataset).__name__)
    return make_dataset(name, _finish(images, channels), labels, names, domain=domain,
                        provenance={"source": type(dataset).__name__, "format": "torchvision"},
                        seed=seed, fractions=fractions)
