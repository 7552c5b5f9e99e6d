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
from raynas.errors import RaynasError
from raynas.storage import atomic_path

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


def content_hash(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, class_names: Sequence[str]) -> str:
    """sha256 over pixels, shape, labels, splits and class names: equal hash, equal data."""
    h = hashlib.sha256()
    h.update(json.dumps([list(images.shape), list(class_names)]).encode())
    h.update(np.ascontiguousarray(images).tobytes())
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


def write_dataset(ds: ImageDataset, path: str | Path) -> Path:
    """Write atomically: a crash mid-write leaves any previous file intact."""
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(to_table(ds), tmp, compression="zstd")
    return path


def _info_from_metadata(meta: dict[bytes, bytes] | None, path: Path) -> DatasetInfo:
    meta = {k.decode(): v.decode() for k, v in (meta or {}).items()}
    missing = [k for k in _META_KEYS if k not in meta]
    if missing or meta.get("format") != FORMAT:
        raise RaynasError(
            f"{path} is not a raynas dataset (missing metadata: {', '.join(missing) or 'format'})",
            "import the data with `raynas data import`, or delete the file",
        )
    return DatasetInfo(
        name=meta["name"],
        domain=meta["domain"],
        class_names=tuple(json.loads(meta["class_names"])),
        shape=tuple(json.loads(meta["shape"])),  # type: ignore[arg-type]
        split_counts=json.loads(meta["split_counts"]),
        allow_flip=json.loads(meta["allow_flip"]),
        provenance=json.loads(meta["provenance"]),
        version=meta["version"],
        content_hash=meta["content_hash"],
    )


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
    return _info_from_metadata(_read_parquet(path, pq.read_schema).metadata, path)


def read_dataset(path: str | Path, verify: bool = False) -> ImageDataset:
    """Load a whole dataset; with ``verify`` recompute the content hash and refuse a mismatch."""
    path = Path(path)
    table = _read_parquet(path, pq.read_table)
    info = _info_from_metadata(table.schema.metadata, path)
    images = tensor_column_to_numpy(table.column("image"), info.shape)
    labels = table.column("label").to_numpy().astype(np.int32)
    split = np.asarray(table.column("split").to_pylist(), dtype="<U5")
    if verify and content_hash(images, labels, split, info.class_names) != info.content_hash:
        raise RaynasError(f"dataset file {path} does not match its content hash",
                          "the file was changed or damaged; delete it and import or build it again")
    return ImageDataset(info, images, labels, split)
