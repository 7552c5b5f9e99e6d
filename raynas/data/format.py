"""The on-disk dataset format: one Parquet file per dataset.

Columns: ``image`` (pyarrow fixed-shape uint8 tensor, C x H x W), ``label`` (int32) and
``split`` (train/val/test). Schema metadata carries the name, class names, domain,
provenance, version and a content hash, so any pyarrow or Ray Data reader can use the
file without raynas.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data import splits as splits_mod
from raynas.data import validate
from raynas.data.builtin import BUILTINS
from raynas.errors import RaynasError
from raynas.storage import exclusive_path

FORMAT = "raynas-dataset/1"
_META_KEYS = ("format", "name", "domain", "class_names", "provenance", "version",
              "content_hash", "allow_flip", "split_counts", "shape")


@dataclass(frozen=True)
class DatasetInfo:
    """Everything about a dataset except its pixels; read from the Parquet footer alone."""

    name: str
    domain: str
    class_names: tuple[str, ...]
    shape: tuple[int, int, int]
    split_counts: dict[str, int]
    allow_flip: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    version: str = "1"
    content_hash: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return sum(self.split_counts.values())

    def to_json(self) -> dict[str, Any]:
        head = {"name": self.name, "domain": self.domain, "classes": self.num_classes,
                "images": self.num_images, "shape": list(self.shape)}
        return {**head, **asdict(self), "shape": list(self.shape), "class_names": list(self.class_names)}


@dataclass(frozen=True)
class ImageDataset:
    """A dataset in memory: uint8 images (N, C, H, W), int32 labels and split names."""

    info: DatasetInfo
    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray

    def split(self, *names: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split, or of the union of several (in file order)."""
        for name in names:
            if name not in splits_mod.SPLITS:
                raise RaynasError(f"unknown split '{name}'", f"choose one of: {', '.join(splits_mod.SPLITS)}")
        mask = np.isin(self.splits, names)
        return self.images[mask], self.labels[mask]

    def images_at(self, rows: np.ndarray) -> np.ndarray:
        """Images of ``rows`` (positions in the dataset), in that order."""
        return self.images[np.asarray(rows, dtype=np.int64)]

    def split_labels(self, split: str) -> np.ndarray:
        """The labels of one split (what :class:`raynas.data.stored.StoredDataset` reads from a file)."""
        return self.split(split)[1]

    def split_images(self, split: str, index: np.ndarray) -> np.ndarray:
        """Images ``index`` (positions within the split) of one split, in that order."""
        return self.split(split)[0][np.asarray(index, dtype=np.int64)]


def content_hash(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, class_names: Sequence[str]) -> str:
    """sha256 over pixels, shape, labels, splits and class names: equal hash, equal data."""
    h = hashlib.sha256()
    h.update(json.dumps([list(images.shape), list(class_names)]).encode())
    h.update(memoryview(np.ascontiguousarray(images)).cast("B"))  # no copy of the pixels
    h.update(np.ascontiguousarray(labels, dtype="<i4").tobytes())
    codes = {name: i for i, name in enumerate(splits_mod.SPLITS)}
    h.update(bytes(codes[s] for s in np.asarray(splits).tolist()))
    return h.hexdigest()


def make_dataset(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    domain: str,
    provenance: dict[str, Any] | None = None,
    allow_flip: bool = False,
    version: str = "1",
    fractions: Sequence[float] = splits_mod.DEFAULT_FRACTIONS,
    seed: int = 0,
) -> ImageDataset:
    """Validate arrays, draw the stratified split and compute the content hash."""
    validate.check_name(name)
    validate.check_seed(seed)
    images = validate.check_images(images)
    class_names = validate.check_class_names(class_names)
    labels = validate.check_labels(labels, len(images), class_names,
                                   splits_mod.min_images_per_class(fractions))
    split = splits_mod.stratified_split(labels, fractions, seed)
    info = DatasetInfo(
        name=name,
        domain=domain,
        class_names=class_names,
        shape=tuple(int(s) for s in images.shape[1:]),  # type: ignore[arg-type]
        split_counts={s: int(np.sum(split == s)) for s in splits_mod.SPLITS},
        allow_flip=bool(allow_flip),
        provenance=dict(provenance or {}, split_seed=seed, split_fractions=list(fractions)),
        version=str(version),
        content_hash=content_hash(images, labels, split, class_names),
    )
    return ImageDataset(info, np.ascontiguousarray(images), labels, split)


def _metadata(info: DatasetInfo) -> dict[str, str]:
    return {
        "format": FORMAT,
        "name": info.name,
        "domain": info.domain,
        "class_names": json.dumps(list(info.class_names)),
        "provenance": json.dumps(info.provenance, sort_keys=True),
        "version": info.version,
        "content_hash": info.content_hash,
        "allow_flip": json.dumps(info.allow_flip),
        "split_counts": json.dumps(info.split_counts),
        "shape": json.dumps(list(info.shape)),
    }


def tensor_column(images: np.ndarray) -> pa.ExtensionArray:
    """A fixed-shape tensor column in plain C order (no permutation), so every reader agrees.

    (``FixedShapeTensorArray.from_numpy_ndarray`` infers a permutation from the strides, and
    size-1 axes such as one channel make those ambiguous.)
    """
    n, *shape = images.shape
    flat = pa.array(np.ascontiguousarray(images).reshape(-1))
    storage = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shape)))
    return pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.from_numpy_dtype(images.dtype), shape), storage)


def to_table(ds: ImageDataset) -> pa.Table:
    table = pa.table({
        "image": tensor_column(ds.images),
        "label": pa.array(ds.labels, type=pa.int32()),
        "split": pa.array(ds.splits.tolist(), type=pa.string()),
    })
    return table.replace_schema_metadata(_metadata(ds.info))


def write_dataset(ds: ImageDataset, path: str | Path, overwrite: bool = True) -> Path:
    """Write atomically: a crash mid-write leaves any previous file intact.

    Without ``overwrite`` an existing file is never replaced, not even by a writer racing
    this one: the loser gets ``FileExistsError``.
    """
    path = Path(path)
    with exclusive_path(path, overwrite=overwrite) as tmp:
        pq.write_table(to_table(ds), tmp, compression="zstd", row_group_size=row_group_rows(
            int(np.prod(ds.images.shape[1:])) * ds.images.itemsize))
    return path


# Pixels per row group: writers and readers hold one group at a time, at about 20x its pixels while
# Parquet encodes or decodes it (a fixed-size-list column has levels for every value): 16 MB groups
# keep a streamed import at +0.34 GB and an embedding's reads at +0.31 GB (64 MB groups: +1.0 GB).
ROW_GROUP_BYTES = 16 << 20


def row_group_rows(image_bytes: int) -> int:
    """Rows per Parquet row group, so a group holds about :data:`ROW_GROUP_BYTES` of pixels (one
    group for all images made the writer hold 11-13 times the images' size)."""
    return max(1, ROW_GROUP_BYTES // max(1, image_bytes))


def damaged(path: Path, reason: str) -> RaynasError:
    """The error for a dataset file that reads but does not hold a valid dataset."""
    name = path.stem
    if name in BUILTINS:
        fix = f"delete it with `raynas data remove {name}`; the built-in is rebuilt on next use"
    else:
        fix = (f"import it again with `raynas data import SOURCE --name {name} --overwrite`, "
               f"or delete it with `raynas data remove {name}`")
    return RaynasError(f"dataset '{name}' ({path}) is damaged: {reason}", fix)


def _json_field(meta: dict[str, str], key: str, kind: type, path: Path) -> Any:
    try:
        value = json.loads(meta[key])
    except ValueError:
        raise damaged(path, f"its metadata field '{key}' is not valid JSON") from None
    if not isinstance(value, kind):
        raise damaged(path, f"its metadata field '{key}' is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _info_from_metadata(raw: dict[bytes, bytes] | None, path: Path) -> DatasetInfo:
    """The info in a file's schema metadata, every field checked for type and sense."""
    try:
        meta = {k.decode(): v.decode() for k, v in (raw or {}).items()}
    except UnicodeDecodeError:
        raise damaged(path, "its metadata is not UTF-8 text") from None
    missing = [k for k in _META_KEYS if k not in meta]
    if missing or meta.get("format") != FORMAT:
        raise RaynasError(
            f"{path} is not a raynas dataset (missing metadata: {', '.join(missing) or 'format'})",
            "import the data with `raynas data import`, or delete the file",
        )
    class_names = _json_field(meta, "class_names", list, path)
    shape = _json_field(meta, "shape", list, path)
    counts = _json_field(meta, "split_counts", dict, path)
    allow_flip = _json_field(meta, "allow_flip", bool, path)
    provenance = _json_field(meta, "provenance", dict, path)
    if not all(isinstance(c, str) for c in class_names):
        raise damaged(path, "its class names are not all strings")
    try:
        validate.check_class_names(class_names)
    except RaynasError as exc:
        raise damaged(path, exc.problem) from None
    if (len(shape) != 3 or not all(_is_count(v) for v in shape) or shape[0] not in (1, 3)
            or not validate.MIN_SIDE <= min(shape[1:]) <= max(shape[1:]) <= validate.MAX_SIDE):
        raise damaged(path, f"its image shape {shape} is not [C, H, W] with C = 1 or 3 and "
                            f"{validate.MIN_SIDE} <= H, W <= {validate.MAX_SIDE}")
    if sorted(counts) != sorted(splits_mod.SPLITS) or not all(_is_count(v) for v in counts.values()):
        raise damaged(path, f"its split counts {counts} do not give a number for each of train, val and test")
    empty = [s for s in splits_mod.SPLITS if counts[s] == 0]
    if empty:
        raise damaged(path, f"it has no {' and no '.join(empty)} images")
    return DatasetInfo(
        name=meta["name"],
        domain=meta["domain"],
        class_names=tuple(class_names),
        shape=tuple(shape),  # type: ignore[arg-type]
        split_counts={s: counts[s] for s in splits_mod.SPLITS},
        allow_flip=allow_flip,
        provenance=provenance,
        version=meta["version"],
        content_hash=meta["content_hash"],
    )


def _checked_info(schema: pa.Schema, num_rows: int, path: Path) -> DatasetInfo:
    """The info, after checking that the columns are what it describes (from the footer alone)."""
    info = _info_from_metadata(schema.metadata, path)
    for column in ("image", "label", "split"):
        if column not in schema.names:
            raise damaged(path, f"it has no '{column}' column")
    image = schema.field("image").type
    if not isinstance(image, pa.FixedShapeTensorType) or image.value_type != pa.uint8():
        raise damaged(path, f"its image column is {image}, not a fixed-shape uint8 tensor column")
    if tuple(image.shape) != info.shape or (image.permutation and list(image.permutation) != [0, 1, 2]):
        raise damaged(path, f"its metadata says images are {list(info.shape)} but the image column holds "
                            f"{list(image.shape)} tensors")
    if not pa.types.is_integer(schema.field("label").type):
        raise damaged(path, f"its label column is {schema.field('label').type}, not integers")
    if not pa.types.is_string(schema.field("split").type) and not pa.types.is_large_string(schema.field("split").type):
        raise damaged(path, f"its split column is {schema.field('split').type}, not strings")
    if num_rows != info.num_images:
        raise damaged(path, f"its metadata counts {info.num_images} images but the file holds {num_rows} rows")
    return info


def tensor_column_to_numpy(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...]) -> np.ndarray:
    """(N, *shape) uint8 from a fixed-shape tensor column, chunked or not, sliced or not."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    return storage.flatten().to_numpy(zero_copy_only=False).reshape(len(column), *shape).copy()


def _read_parquet(path: Path, reader):
    """Run a pyarrow reader, turning unreadable files into an error that says what to do."""
    try:
        return reader(path)
    except (OSError, pa.ArrowException) as exc:
        raise RaynasError(f"cannot read dataset file {path}: {exc}",
                          "delete the file and build or import the dataset again") from exc


def read_info(path: str | Path) -> DatasetInfo:
    """Read only the footer: fast enough to list hundreds of datasets."""
    path = Path(path)
    meta = _read_parquet(path, pq.read_metadata)
    schema = _read_parquet(path, lambda _: meta.schema.to_arrow_schema())
    return _checked_info(schema, meta.num_rows, path)


def _labels_and_splits(table: pa.Table, info: DatasetInfo, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and split names, refused unless they match the info: labels within the classes,
    every class present, train/val/test as counted (a search would otherwise crash mid-run)."""
    for column in table.column_names:
        if table.column(column).null_count:
            raise damaged(path, f"its {column} column has {table.column(column).null_count} empty values")
    labels = table.column("label").to_numpy().astype(np.int64)
    bad = labels[(labels < 0) | (labels >= info.num_classes)]
    if bad.size:
        raise damaged(path, f"label {int(bad[0])} is out of range for its {info.num_classes} classes")
    absent = np.flatnonzero(np.bincount(labels, minlength=info.num_classes) == 0)
    if absent.size:
        raise damaged(path, f"class '{info.class_names[absent[0]]}' has no images")
    counts = {c["values"]: c["counts"] for c in table.column("split").value_counts().to_pylist()}
    unknown = sorted(set(counts) - set(splits_mod.SPLITS))
    if unknown:
        raise damaged(path, f"its split column holds {unknown[0]!r}, not train, val or test")
    found = {s: counts.get(s, 0) for s in splits_mod.SPLITS}
    empty = [s for s in splits_mod.SPLITS if found[s] == 0]
    if empty:
        raise damaged(path, f"it has no {' and no '.join(empty)} rows")
    if found != info.split_counts:
        raise damaged(path, f"its rows per split {found} differ from its metadata {info.split_counts}")
    return labels.astype(np.int32), np.asarray(table.column("split").to_pylist(), dtype="<U5")


def check_labels_and_splits(path: str | Path, info: DatasetInfo) -> None:
    """Read only the label and split columns and check them, for loaders that stream the images."""
    path = Path(path)
    table = _read_parquet(path, lambda p: pq.read_table(p, columns=["label", "split"]))
    _labels_and_splits(table, info, path)


def read_dataset(path: str | Path, verify: bool = False) -> ImageDataset:
    """Load and check a whole dataset; with ``verify`` also recompute the content hash."""
    path = Path(path)
    table = _read_parquet(path, pq.read_table)
    info = _checked_info(table.schema, table.num_rows, path)
    labels, split = _labels_and_splits(table, info, path)
    try:
        images = tensor_column_to_numpy(table.column("image"), info.shape)
    except (ValueError, pa.ArrowException) as exc:
        raise damaged(path, f"its image column cannot be read as {list(info.shape)} tensors ({exc})") from None
    if verify and content_hash(images, labels, split, info.class_names) != info.content_hash:
        raise RaynasError(f"dataset file {path} does not match its content hash",
                          "the file was changed or damaged; delete it and import or build it again")
    return ImageDataset(info, images, labels, split)
