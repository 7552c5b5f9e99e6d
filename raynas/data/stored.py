"""A stored dataset read in parts: its labels whole, its images only where asked.

:class:`StoredDataset` answers what :class:`raynas.data.format.ImageDataset` answers about one
split (:meth:`split_labels`, :meth:`split_images`) from the file, reading the label and split
columns (a few bytes per image) and then only the row groups that hold the images asked for.
Readers that need a sample (the OT embedding takes at most 2,000 images a dataset) so hold the
sample and one row group, not the dataset; and a reader that only checks a cache (an embedding
stored for this content hash) reads nothing but the footer.

A dataset stored as a folder of shards (see :mod:`raynas.data.format`) is read the same way: its
row groups are those of all shards in row order, each naming the shard that holds it, so
streaming readers never need to know the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data.format import (DatasetInfo, _labels_and_splits, _read_parquet, damaged, dataset_footers, read_columns,
                                tensor_column_to_numpy)
from raynas.data.splits import SPLITS
from raynas.errors import RaynasError


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group of a stored dataset: the unit streaming readers read at a time."""

    path: Path  # the Parquet file that holds it (the dataset's file, or one of its shards)
    index: int  # its position among that file's row groups
    start: int  # its first row's position in the dataset
    rows: int


def row_groups(path: str | Path, info: DatasetInfo | None = None) -> list[RowGroup]:
    """The row groups of a dataset file or folder in row order, from the footers alone."""
    groups, start = [], 0
    for part, meta in dataset_footers(path, info):
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            groups.append(RowGroup(part, g, start, rows))
            start += rows
    return groups


class StoredDataset:
    """A dataset file or folder, opened by its footer (or index); columns are read on first use."""

    def __init__(self, path: str | Path, info: DatasetInfo):
        self.path, self.info = Path(path), info

    @cached_property
    def _labels_and_splits(self) -> tuple[np.ndarray, np.ndarray]:
        return _labels_and_splits(read_columns(self.path, ["label", "split"], self.info), self.info, self.path)

    @property
    def labels(self) -> np.ndarray:
        """Every row's label, in file order (as ``ImageDataset.labels``)."""
        return self._labels_and_splits[0]

    @property
    def splits(self) -> np.ndarray:
        """Every row's split name, in file order."""
        return self._labels_and_splits[1]

    @cached_property
    def row_groups(self) -> list[RowGroup]:
        """The dataset's row groups in row order (across its shards), from the footers alone."""
        return row_groups(self.path, self.info)

    def group_images(self, group: RowGroup) -> np.ndarray:
        """The uint8 images of one row group, (rows, C, H, W)."""
        return group_images(open_parquet(group.path), group, self.info.shape, self.path)

    def images_at(self, rows: np.ndarray) -> np.ndarray:
        """Images of ``rows`` (positions in the dataset), in that order."""
        return read_rows(self.path, np.asarray(rows, dtype=np.int64), self.info.shape, self.row_groups)

    def _rows(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise RaynasError(f"unknown split '{split}'", f"choose one of: {', '.join(SPLITS)}")
        return np.flatnonzero(self._labels_and_splits[1] == split)

    def split_labels(self, split: str) -> np.ndarray:
        """The labels of one split, in file order (as ``ImageDataset.split(split)[1]``)."""
        return self._labels_and_splits[0][self._rows(split)]

    def split_images(self, split: str, index: np.ndarray) -> np.ndarray:
        """Images ``index`` (positions within the split) of one split, in that order."""
        rows = self._rows(split)[np.asarray(index, dtype=np.int64)]
        return read_rows(self.path, rows, self.info.shape, self.row_groups)


def read_rows(path: Path, rows: np.ndarray, shape: tuple[int, ...],
              groups: list[RowGroup] | None = None) -> np.ndarray:
    """uint8 images of dataset ``rows`` (any order), reading only the row groups that hold them
    (``groups``: the dataset's, when already known)."""
    groups = row_groups(path) if groups is None else groups
    rows = np.asarray(rows, dtype=np.int64)
    starts = np.array([g.start for g in groups] + [groups[-1].start + groups[-1].rows if groups else 0])
    if rows.size and (rows.min() < 0 or rows.max() >= starts[-1]):
        raise RaynasError(f"rows {rows.min()}..{rows.max()} are not all in the dataset's {starts[-1]} rows")
    out = np.empty((len(rows), *shape), np.uint8)
    which = np.searchsorted(starts, rows, side="right") - 1
    parquet, parquet_path = None, None  # one file open at a time: groups come in row order, shard by shard
    for g in np.unique(which):
        group, where = groups[g], np.flatnonzero(which == g)
        if parquet is None or parquet_path != group.path:
            parquet, parquet_path = open_parquet(group.path), group.path
        out[where] = group_images(parquet, group, shape, path)[rows[where] - group.start]
    return out


# Rows read at a time within a row group: Parquet decodes a fixed-size-list column with levels for
# every value, so reading a 16 MB group at once held about 300 MB; 1 MB pieces hold about 120 MB.
READ_PIECE_BYTES = 1 << 20


def open_parquet(path: Path) -> pq.ParquetFile:
    """A dataset file or shard, opened by its footer; ``pre_buffer`` off, since it keeps the
    compressed bytes of every row group read until the file is closed, and column chunks read
    through a buffer (unbuffered, a whole chunk is read at once: all of a one-group old file)."""
    return _read_parquet(path, lambda p: pq.ParquetFile(p, pre_buffer=False, buffer_size=READ_PIECE_BYTES))


def group_images(parquet: pq.ParquetFile, group: RowGroup, shape: tuple[int, ...], dataset: Path) -> np.ndarray:
    """The uint8 images of one row group of an open file (of ``dataset``, as errors name it),
    decoded a piece at a time."""
    out = np.empty((group.rows, *shape), np.uint8)
    piece = max(1, READ_PIECE_BYTES // max(1, int(np.prod(shape))))
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=piece, row_groups=[group.index], columns=["image"]):
            images = tensor_column_to_numpy(batch.column(0), shape)
            out[row:row + len(images)] = images
            row += len(images)
    except (OSError, pa.ArrowException) as exc:
        raise RaynasError(f"cannot read dataset file {group.path}: {exc}",
                          "delete the file and build or import the dataset again") from exc
    except ValueError as exc:
        raise damaged(dataset, f"its image column cannot be read as {list(shape)} tensors ({exc})") from None
    if row != group.rows:
        raise damaged(dataset, f"row group {group.index} of {group.path.name} holds {row} rows, its footer says "
                               f"{group.rows}")
    return out
