"""The on-disk dataset format: one Parquet file per dataset, or a folder of Parquet shards.

Columns: ``image`` (pyarrow fixed-shape uint8 tensor, C x H x W), ``label`` (int32) and
``split`` (train/val/test). Schema metadata carries the name, class names, domain,
provenance, version and a content hash, so any pyarrow or Ray Data reader can use the
file without raynas.

A dataset of more than :data:`SHARD_BYTES` of pixels is a folder ``<name>/`` instead: shards
``part-00000.parquet``, ``part-00001.parquet``, ... of at most that many pixels each (in row
order, row groups bounded as in a single file), and ``_dataset.json`` with what a single file's
metadata holds (the same keys, the content hash over all rows) and the shards' names and row
counts. Bounded files copy, upload and read in parallel where one file of hundreds of GB would
not; the info comes from the small JSON file without opening a shard, and its leading
underscore makes ``pyarrow.dataset`` and ``ray.data.read_parquet`` skip it and read the folder
as one dataset. Every reader here takes either layout: a path names a file or a folder.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from raynas.storage import exclusive_entry

FORMAT = "raynas-dataset/1"
_META_KEYS = ("format", "name", "domain", "class_names", "provenance", "version",
              "content_hash", "allow_flip", "split_counts", "shape")
_JSON_FIELDS = {"class_names": list, "shape": list, "split_counts": dict, "allow_flip": bool, "provenance": dict}
_TEXT_FIELDS = {"name": str, "domain": str, "version": str, "content_hash": str}

# A dataset with more pixels than this is stored as a folder of shards of at most this many:
# files that copy and upload in pieces and that several readers can share out.
SHARD_BYTES = 256 << 20
INDEX_FILE = "_dataset.json"  # a sharded dataset's info and shard list ('_': Parquet readers skip it)
SHARD_FORMAT = "raynas-dataset-shard/1"  # in a shard's own metadata: its info is in INDEX_FILE
_SHARD_NAME = re.compile(r"part-[0-9]{5,}\.parquet")


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
    """Write atomically: a crash mid-write leaves any previous dataset intact. More than
    :data:`SHARD_BYTES` of pixels become a folder of shards at ``path``, else one file.

    Without ``overwrite`` an existing dataset is never replaced, not even by a writer racing
    this one: the loser gets ``FileExistsError``.
    """
    path = Path(path)
    with exclusive_entry(path, overwrite=overwrite) as tmp:
        write_entry(ds, tmp)
    return path


def write_entry(ds: ImageDataset, path: Path) -> None:
    """Write ``ds`` at ``path`` (a new name the caller moves into place): one Parquet file, or,
    with more than :data:`SHARD_BYTES` of pixels, a folder of shards written as streamed."""
    image_bytes = int(np.prod(ds.images.shape[1:])) * ds.images.itemsize
    if len(ds.images) <= shard_rows(image_bytes):
        pq.write_table(to_table(ds), path, compression="zstd", row_group_size=row_group_rows(image_bytes))
        return
    from raynas.data.writer import write_streamed

    i, rows = ds.info, row_group_rows(image_bytes)
    write_streamed(path, (ds.images[s:s + rows] for s in range(0, len(ds.images), rows)), name=i.name,
                   class_names=i.class_names, labels=ds.labels, splits=ds.splits, shape=i.shape, domain=i.domain,
                   provenance=i.provenance, allow_flip=i.allow_flip, version=i.version)


# Pixels per row group: writers and readers hold one group at a time, at about 20x its pixels while
# Parquet encodes or decodes it (a fixed-size-list column has levels for every value): 16 MB groups
# keep a streamed import at +0.34 GB and an embedding's reads at +0.31 GB (64 MB groups: +1.0 GB).
ROW_GROUP_BYTES = 16 << 20


def row_group_rows(image_bytes: int) -> int:
    """Rows per Parquet row group, so a group holds about :data:`ROW_GROUP_BYTES` of pixels (one
    group for all images made the writer hold 11-13 times the images' size)."""
    return max(1, ROW_GROUP_BYTES // max(1, image_bytes))


def split_row_groups(info: DatasetInfo, splits: np.ndarray, split: str) -> np.ndarray:
    """The row group (of the size a writer makes) of each row of ``split``: samplers that draw
    from a few of them make their readers read a few (:mod:`raynas.ot.sampling`)."""
    return np.flatnonzero(np.asarray(splits) == split) // row_group_rows(int(np.prod(info.shape)))


def shard_rows(image_bytes: int) -> int:
    """Rows per shard, so a shard holds at most :data:`SHARD_BYTES` of pixels; a dataset of no
    more rows is one file."""
    return max(1, SHARD_BYTES // max(1, image_bytes))


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shard_metadata(name: str) -> dict[str, str]:
    """The schema metadata of every shard of dataset ``name`` (the same in all, so readers of the
    folder see one schema); the dataset's info is in :data:`INDEX_FILE`."""
    return {"format": SHARD_FORMAT, "name": name}


def index_json(info: DatasetInfo, shards: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """What :data:`INDEX_FILE` holds: the keys of a single file's metadata, as JSON values, and the
    shards (file name and rows) in row order."""
    fields = asdict(info)
    return {"format": FORMAT, **{k: fields[k] for k in _META_KEYS if k != "format"},
            "class_names": list(info.class_names), "shape": list(info.shape),
            "shards": [{"file": f, "rows": int(r)} for f, r in shards]}


def damaged(path: Path, reason: str) -> RaynasError:
    """The error for a dataset (file or folder) that reads but does not hold a valid dataset."""
    name = path.name if path.is_dir() and path.suffix != ".parquet" else path.stem
    if name in BUILTINS:
        fix = f"delete it with `raynas data remove {name}`; the built-in is rebuilt on next use"
    else:
        fix = (f"import it again with `raynas data import SOURCE --name {name} --overwrite`, "
               f"or delete it with `raynas data remove {name}`")
    return RaynasError(f"dataset '{name}' ({path}) is damaged: {reason}", fix)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _info_from_metadata(raw: dict[bytes, bytes] | None, path: Path) -> DatasetInfo:
    """The info in a file's schema metadata, every field checked for type and sense."""
    try:
        meta = {k.decode(): v.decode() for k, v in (raw or {}).items()}
    except UnicodeDecodeError:
        raise damaged(path, "its metadata is not UTF-8 text") from None
    if meta.get("format") == SHARD_FORMAT:
        raise RaynasError(f"{path} is one shard of dataset '{meta.get('name')}', not a whole dataset",
                          f"open the folder that holds it ({path.parent}), whose {INDEX_FILE} lists all its shards")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing or meta.get("format") != FORMAT:
        raise RaynasError(
            f"{path} is not a raynas dataset (missing metadata: {', '.join(missing) or 'format'})",
            "import the data with `raynas data import`, or delete the file",
        )
    fields: dict[str, Any] = dict(meta)
    for key in _JSON_FIELDS:
        try:
            fields[key] = json.loads(meta[key])
        except ValueError:
            raise damaged(path, f"its metadata field '{key}' is not valid JSON") from None
    return _info_from_fields(fields, path, "metadata")


def _info_from_fields(fields: dict[str, Any], path: Path, where: str) -> DatasetInfo:
    """The info in parsed metadata (of a file's footer or a folder's index), every field checked
    for type and sense."""
    for key, kind in {**_JSON_FIELDS, **_TEXT_FIELDS}.items():
        if not isinstance(fields[key], kind):
            raise damaged(path, f"its {where} field '{key}' is a {type(fields[key]).__name__}, not a {kind.__name__}")
    class_names, shape, counts = fields["class_names"], fields["shape"], fields["split_counts"]
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
        name=fields["name"],
        domain=fields["domain"],
        class_names=tuple(class_names),
        shape=tuple(shape),  # type: ignore[arg-type]
        split_counts={s: counts[s] for s in splits_mod.SPLITS},
        allow_flip=fields["allow_flip"],
        provenance=fields["provenance"],
        version=fields["version"],
        content_hash=fields["content_hash"],
    )


def _check_columns(schema: pa.Schema, info: DatasetInfo, path: Path, shard: str = "") -> None:
    """Refuse columns that are not what ``info`` describes (those of ``shard`` of a folder)."""
    def fail(reason: str) -> RaynasError:
        return damaged(path, reason + (f" (in its shard {shard})" if shard else ""))

    for column in ("image", "label", "split"):
        if column not in schema.names:
            raise fail(f"it has no '{column}' column")
    image = schema.field("image").type
    if not isinstance(image, pa.FixedShapeTensorType) or image.value_type != pa.uint8():
        raise fail(f"its image column is {image}, not a fixed-shape uint8 tensor column")
    if tuple(image.shape) != info.shape or (image.permutation and list(image.permutation) != [0, 1, 2]):
        raise fail(f"its metadata says images are {list(info.shape)} but the image column holds "
                   f"{list(image.shape)} tensors")
    if not pa.types.is_integer(schema.field("label").type):
        raise fail(f"its label column is {schema.field('label').type}, not integers")
    if not pa.types.is_string(schema.field("split").type) and not pa.types.is_large_string(schema.field("split").type):
        raise fail(f"its split column is {schema.field('split').type}, not strings")


def _checked_info(schema: pa.Schema, num_rows: int, path: Path) -> DatasetInfo:
    """The info, after checking that the columns are what it describes (from the footer alone)."""
    info = _info_from_metadata(schema.metadata, path)
    _check_columns(schema, info, path)
    if num_rows != info.num_images:
        raise damaged(path, f"its metadata counts {info.num_images} images but the file holds {num_rows} rows")
    return info


def read_index(folder: Path) -> tuple[DatasetInfo, list[tuple[Path, int]]]:
    """The info and the shards (path, rows; in row order) of a dataset folder, from its
    :data:`INDEX_FILE` alone (no shard is opened: only that each is there is checked)."""
    try:
        text = (folder / INDEX_FILE).read_bytes()
    except FileNotFoundError:
        raise damaged(folder, f"it has no {INDEX_FILE}, which lists a dataset folder's info and shards") from None
    except OSError as exc:
        raise damaged(folder, f"its {INDEX_FILE} cannot be read ({exc})") from None
    info, shards = parse_index(text, folder)
    absent = [name for name, _ in shards if not (folder / name).is_file()]
    if absent:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise damaged(folder, f"its shard {absent[0]}{more} is missing")
    listed = {name for name, _ in shards}
    try:
        extra = sorted(p.name for p in folder.iterdir()
                       if p.suffix == ".parquet" and not p.name.startswith((".", "_")) and p.name not in listed)
    except OSError as exc:
        raise damaged(folder, f"its files cannot be listed ({exc})") from None
    if extra:
        raise damaged(folder, f"it holds {extra[0]}, which its {INDEX_FILE} does not list (readers of the "
                              "folder would take its rows for the dataset's)")
    return info, [(folder / name, rows) for name, rows in shards]


def parse_index(text: bytes, folder: Path) -> tuple[DatasetInfo, list[tuple[str, int]]]:
    """The info and the shards (file name, rows; in row order) in the bytes of the
    :data:`INDEX_FILE` of dataset ``folder`` (a local folder or one on shared storage)."""
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise damaged(folder, f"its {INDEX_FILE} is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise damaged(folder, f"its {INDEX_FILE} holds a {type(fields).__name__}, not a JSON object")
    missing = [k for k in (*_META_KEYS, "shards") if k not in fields]
    if missing:
        raise damaged(folder, f"its {INDEX_FILE} lacks {', '.join(missing)}")
    if fields["format"] != FORMAT:
        raise damaged(folder, f"its {INDEX_FILE} says format {fields['format']!r}, not {FORMAT!r}")
    info = _info_from_fields(fields, folder, INDEX_FILE)
    shards = _shard_list(fields["shards"], folder)
    total = sum(rows for _, rows in shards)
    if total != info.num_images:
        raise damaged(folder, f"its {INDEX_FILE} counts {info.num_images} images but lists {total} rows in shards")
    return info, shards


def _shard_list(value: Any, folder: Path) -> list[tuple[str, int]]:
    """The index's shards, each a ``part-NNNNN.parquet`` name and a row count, named in row order
    (the order in which Parquet readers of the folder take them)."""
    if not isinstance(value, list) or not value:
        raise damaged(folder, f"its {INDEX_FILE} lists no shards")
    shards = []
    for entry in value:
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                and _SHARD_NAME.fullmatch(entry["file"]) and _is_count(entry.get("rows")) and entry["rows"] > 0):
            raise damaged(folder, f"its {INDEX_FILE} lists the shard {json.dumps(entry)[:80]}, not a "
                                  "part-NNNNN.parquet file with a number of rows")
        shards.append((entry["file"], entry["rows"]))
    names = [name for name, _ in shards]
    if names != sorted(set(names)):
        raise damaged(folder, f"its {INDEX_FILE} does not list its shards once each, in name order")
    return shards


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
    """Read only the footer (of a folder: its index): fast enough to list hundreds of datasets."""
    path = Path(path)
    if path.is_dir():
        return read_index(path)[0]
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


def dataset_files(path: str | Path) -> list[Path]:
    """The Parquet files of a dataset in row order: its shards (as its index lists them) or itself."""
    path = Path(path)
    return [shard for shard, _ in read_index(path)[1]] if path.is_dir() else [path]


def _read_shard(folder: Path, shard: Path, reader):
    try:
        return reader(shard)
    except (OSError, pa.ArrowException) as exc:
        raise damaged(folder, f"its shard {shard.name} cannot be read ({exc})") from None


def dataset_footers(path: str | Path, info: DatasetInfo | None = None) -> list[tuple[Path, pq.FileMetaData]]:
    """The Parquet footer of each file of a dataset, in row order; a folder's shards are checked
    against its index (rows) and ``info`` (columns) on the way."""
    path = Path(path)
    if not path.is_dir():
        return [(path, _read_parquet(path, pq.read_metadata))]
    index_info, shards = read_index(path)
    info = info or index_info
    footers = []
    for shard, rows in shards:
        meta = _read_shard(path, shard, pq.read_metadata)
        _check_columns(_read_shard(path, shard, lambda _: meta.schema.to_arrow_schema()), info, path, shard.name)
        if meta.num_rows != rows:
            raise damaged(path, f"its shard {shard.name} holds {meta.num_rows} rows, its {INDEX_FILE} lists {rows}")
        footers.append((shard, meta))
    return footers


def read_columns(path: str | Path, columns: Sequence[str] | None = None,
                 info: DatasetInfo | None = None) -> pa.Table:
    """``columns`` (default: all) of every row of a dataset file or folder, in row order."""
    path = Path(path)
    if not path.is_dir():
        return _read_parquet(path, lambda p: pq.read_table(p, columns=columns))
    tables = [_read_shard(path, shard, lambda p: pq.read_table(p, columns=columns))
              for shard, _ in dataset_footers(path, info)]
    return pa.concat_tables(tables)


def check_labels_and_splits(path: str | Path, info: DatasetInfo) -> None:
    """Read only the label and split columns and check them, for loaders that stream the images."""
    path = Path(path)
    _labels_and_splits(read_columns(path, ["label", "split"], info), info, path)


def read_dataset(path: str | Path, verify: bool = False) -> ImageDataset:
    """Load and check a whole dataset (file or folder); with ``verify`` also recompute the content
    hash, over all shards of a folder."""
    path = Path(path)
    if path.is_dir():
        info = read_index(path)[0]
        table = read_columns(path, info=info)
    else:
        table = _read_parquet(path, pq.read_table)
        info = _checked_info(table.schema, table.num_rows, path)
    labels, split = _labels_and_splits(table, info, path)
    try:
        images = tensor_column_to_numpy(table.column("image"), info.shape)
    except (ValueError, pa.ArrowException) as exc:
        raise damaged(path, f"its image column cannot be read as {list(info.shape)} tensors ({exc})") from None
    if verify and content_hash(images, labels, split, info.class_names) != info.content_hash:
        kind = "folder" if path.is_dir() else "file"
        raise RaynasError(f"dataset {kind} {path} does not match its content hash",
                          f"the {kind} was changed or damaged; delete it and import or build it again")
    return ImageDataset(info, images, labels, split)
