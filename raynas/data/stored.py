"""A stored dataset read in parts: its labels whole, its images only where asked.

:class:`StoredDataset` answers what :class:`raynas.data.format.ImageDataset` answers about one
split (:meth:`split_labels`, :meth:`split_images`) from the file, reading the label and split
columns (a few bytes per image) and then only the row groups that hold the images asked for.
Readers that need a sample (the OT embedding takes at most 2,000 images a dataset) so hold the
sample and one row group, not the dataset; and a reader that only checks a cache (an embedding
stored for this content hash) reads nothing but the footer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data.format import DatasetInfo, _labels_and_splits, _read_parquet, damaged, tensor_column_to_numpy
from raynas.data.splits import SPLITS
from raynas.errors import RaynasError


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group of a stored dataset: the unit streaming readers read at a time."""

    path: Path  # the Parquet file that holds it
    index: int  # its position among that file's row groups
    start: int  # its first row's position in the dataset
    rows: int


class StoredDataset:
    """A dataset file, opened by its footer; columns are read on first use."""

    def __init__(self, path: str | Path, info: DatasetInfo):
        self.path, self.info = Path(path), info

    @cached_property
    def _labels_and_splits(self) -> tuple[np.ndarray, np.ndarray]:
        table = _read_parquet(self.path, lambda p: pq.read_table(p, columns=["label", "split"]))
        return _labels_and_splits(table, self.info, self.path)

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
        """The dataset's row groups in row order, from the footer alone."""
        meta = _read_parquet(self.path, pq.read_metadata)
        groups, start = [], 0
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            groups.append(RowGroup(self.path, g, start, rows))
            start += rows
        return groups

    def read_group(self, group: RowGroup, columns: tuple[str, ...] = ("image",)) -> pa.Table:
        """``columns`` of one row group; unreadable files are clear errors."""
        return _read_parquet(group.path, lambda p: pq.ParquetFile(p).read_row_group(group.index, columns=list(columns)))

    def group_images(self, group: RowGroup) -> np.ndarray:
        """The uint8 images of one row group, (rows, C, H, W)."""
        column = self.read_group(group).column("image")
        try:
            return tensor_column_to_numpy(column, self.info.shape)
        except ValueError as exc:
            raise damaged(group.path, f"its image column cannot be read as {list(self.info.shape)} tensors "
                                      f"({exc})") from None

    def images_at(self, rows: np.ndarray) -> np.ndarray:
        """Images of ``rows`` (positions in the file), in that order."""
        return read_rows(self.path, np.asarray(rows, dtype=np.int64), self.info.shape)

    def _rows(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise RaynasError(f"unknown split '{split}'", f"choose one of: {', '.join(SPLITS)}")
        return np.flatnonzero(self._labels_and_splits[1] == split)

    def split_labels(self, split: str) -> np.ndarray:
        """The labels of one split, in file order (as ``ImageDataset.split(split)[1]``)."""
        return self._labels_and_splits[0][self._rows(split)]

    def split_images(self, split: str, index: np.ndarray) -> np.ndarray:
        """Images ``index`` (positions within the split) of one split, in that order."""
        return read_rows(self.path, self._rows(split)[np.asarray(index, dtype=np.int64)], self.info.shape)


def read_rows(path: Path, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images of file ``rows`` (any order), reading only the row groups that hold them."""
    parquet = _read_parquet(path, pq.ParquetFile)
    starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    out = np.empty((len(rows), *shape), np.uint8)
    groups = np.searchsorted(starts, rows, side="right") - 1
    for g in np.unique(groups):
        where = np.flatnonzero(groups == g)
        column = _read_parquet(path, lambda _: parquet.read_row_group(int(g), columns=["image"])).column("image")
        try:
            images = tensor_column_to_numpy(column, shape)
        except ValueError as exc:
            raise damaged(path, f"its image column cannot be read as {list(shape)} tensors ({exc})") from None
        out[where] = images[rows[where] - starts[g]]
    return out
