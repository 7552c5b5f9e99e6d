"""Writing a dataset as its images arrive, in bounded memory.

:func:`write_streamed` takes the labels and splits of every image up front (a few bytes per
image) and the images themselves in chunks, in row order. Each chunk becomes one Parquet row
group and is hashed on the way, so memory holds one chunk, not the dataset (importing 48,000
64x64 RGB PNGs through memory peaked at 7.1 GB). The file is the same as
:func:`raynas.data.format.write_dataset` writes, with the same content hash: the schema and its
metadata, which hold the hash, are written into the footer once the last chunk is in.

A dataset of more than :data:`raynas.data.format.SHARD_BYTES` of pixels (known up front from the
number of labels and the shape) is written as a folder of shards instead: the writer rolls over
to the next ``part-NNNNN.parquet`` before a chunk would take the current one past the bound, and
writes ``_dataset.json`` (the info, with the one hash over all rows, and the shard list) last.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data import splits as splits_mod
from raynas.data.format import (INDEX_FILE, DatasetInfo, _metadata, dataset_files, index_json, shard_metadata,
                                shard_name, shard_rows, tensor_column, tensor_column_to_numpy)
from raynas.errors import RaynasError


class _Shards:
    """Parquet writers of one dataset folder: tables go to the current shard until the next would
    take it past ``limit`` rows (a table larger than that is split)."""

    def __init__(self, folder: Path, schema: pa.Schema, limit: int):
        self.folder, self.schema, self.limit = folder, schema, limit
        self.done: list[tuple[str, int]] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0
        folder.mkdir()

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self.writer is not None and self.rows + table.num_rows > self.limit:
                self._close()
            if self.writer is None:
                self.writer = pq.ParquetWriter(str(self.folder / shard_name(len(self.done))), self.schema,
                                               compression="zstd")
            part = table.slice(0, self.limit - self.rows)
            self.writer.write_table(part, row_group_size=max(1, part.num_rows))
            self.rows += part.num_rows
            table = table.slice(part.num_rows)

    def _close(self) -> None:
        self.writer.close()
        self.done.append((shard_name(len(self.done)), self.rows))
        self.writer, self.rows = None, 0

    def finish(self, info: DatasetInfo) -> None:
        if self.writer is not None:
            self._close()
        text = json.dumps(index_json(info, self.done), indent=1)
        (self.folder / INDEX_FILE).write_text(text + "\n", encoding="utf-8")

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_streamed(path: str | Path, chunks: Iterable[np.ndarray], *, name: str, class_names: Sequence[str],
                   labels: np.ndarray, splits: np.ndarray, shape: tuple[int, int, int], domain: str,
                   provenance: dict[str, Any], allow_flip: bool = False, version: str = "1") -> DatasetInfo:
    """Write the dataset to ``path`` (a temporary name the caller moves into place) from uint8 image
    chunks (k, C, H, W) in row order; returns its info. ``labels`` and ``splits`` hold every row's.
    More than :data:`~raynas.data.format.SHARD_BYTES` of pixels make ``path`` a folder of shards
    (``path`` must not exist then), else one file."""
    path = Path(path)
    n = len(labels)
    digest = hashlib.sha256(json.dumps([[n, *shape], list(class_names)]).encode())  # as format.content_hash
    image_type = pa.fixed_shape_tensor(pa.uint8(), list(shape))
    schema = pa.schema([("image", image_type), ("label", pa.int32()), ("split", pa.string())])
    labels = np.asarray(labels, dtype=np.int32)
    splits = np.asarray(splits)  # (a list of a million Python strings would cost 60 MB)
    if not np.isin(splits, splits_mod.SPLITS).all():
        raise RaynasError(f"split names must be {', '.join(splits_mod.SPLITS)}, got "
                          f"{sorted(set(np.unique(splits).tolist()) - set(splits_mod.SPLITS))[:3]}")
    limit = shard_rows(int(np.prod(shape)))
    if n > limit:
        sink: Any = _Shards(path, schema.with_metadata(shard_metadata(name)), limit)
    else:
        sink = pq.ParquetWriter(str(path), schema, compression="zstd", store_schema=False)
    row = 0
    try:
        for chunk in chunks:
            if chunk.dtype != np.uint8 or tuple(chunk.shape[1:]) != tuple(shape):
                raise RaynasError(f"images {row}..{row + len(chunk) - 1} are {chunk.dtype} {list(chunk.shape[1:])}, "
                                  f"not uint8 {list(shape)} like the first")
            k = len(chunk)
            if row + k > n:
                raise RaynasError(f"more images than labels ({n})")
            chunk = np.ascontiguousarray(chunk)
            digest.update(memoryview(chunk).cast("B"))
            table = pa.table({"image": tensor_column(chunk), "label": pa.array(labels[row:row + k]),
                              "split": pa.array(splits[row:row + k].tolist(), type=pa.string())}, schema=schema)
            if isinstance(sink, _Shards):
                sink.write(table)
            else:
                sink.write_table(table, row_group_size=max(1, k))
            row += k
        if row != n:
            raise RaynasError(f"{row} images for {n} labels")
        digest.update(np.ascontiguousarray(labels, dtype="<i4").tobytes())
        codes = {s: i for i, s in enumerate(splits_mod.SPLITS)}
        split_codes = np.zeros(len(splits), np.uint8)
        for split, code in codes.items():
            split_codes[splits == split] = code
        digest.update(split_codes.tobytes())
        info = DatasetInfo(name=name, domain=domain, class_names=tuple(class_names), shape=tuple(shape),
                           split_counts={s: int(np.sum(splits == s)) for s in splits_mod.SPLITS},
                           allow_flip=bool(allow_flip), provenance=provenance, version=str(version),
                           content_hash=digest.hexdigest())
    except BaseException:
        if isinstance(sink, _Shards):
            sink.abort()
        else:
            sink.close()
        raise
    if isinstance(sink, _Shards):
        sink.finish(info)
        return info
    metadata = _metadata(info)
    # the schema Arrow readers restore (with the extension type and our metadata), as pyarrow
    # itself stores it when the metadata is known at the start
    stored = base64.b64encode(schema.with_metadata(metadata).serialize().to_pybytes()).decode()
    sink.add_key_value_metadata({"ARROW:schema": stored, **metadata})
    sink.close()
    return info


def write_images(path: str | Path, chunks: Iterable[np.ndarray], *, shape: tuple[int, int, int], find_gray: bool,
                 rows: int, **dataset) -> DatasetInfo:
    """:func:`write_streamed`; with ``find_gray`` (RGB images, no channel count asked for), when every
    image turned out gray, a second pass over what was written (file or shards) makes them one
    channel, as the in-memory import does (which tests all images before it picks the channel count)."""
    from raynas.data.imaging import is_grayscale, to_channels
    from raynas.storage import replace_entry, staging_dir

    gray = [find_gray]

    def watched():
        for chunk in chunks:
            if gray[0]:
                gray[0] = is_grayscale(chunk)
            yield chunk

    info = write_streamed(path, watched(), shape=shape, **dataset)
    if gray[0]:
        path = Path(path)
        with staging_dir(path) as stage:
            info = write_streamed(stage / path.name, (to_channels(c, 1) for c in stored_chunks(path, rows)),
                                  shape=(1, *shape[1:]), **dataset)
            replace_entry(stage / path.name, path)
    return info


def stored_chunks(path: str | Path, rows: int) -> Iterable[np.ndarray]:
    """The images of a dataset file or folder, at most ``rows`` at a time, in row order."""
    for part in dataset_files(path):
        parquet = pq.ParquetFile(str(part), pre_buffer=False)
        shape = tuple(parquet.schema_arrow.field("image").type.shape)
        for batch in parquet.iter_batches(batch_size=rows, columns=["image"]):
            yield tensor_column_to_numpy(batch.column(0), shape)
