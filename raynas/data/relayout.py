"""Bringing a stored dataset to the current layout: bounded row groups, shards above 256 MB.

Datasets written by older raynas versions are one Parquet file with one row group (or groups of
64 MB): they still open, but a streaming reader holds a whole row group at a time, so such a
file is as heavy as loading the dataset. ``raynas data migrate`` rewrites them, a piece at a
time, into what an import writes today; the content hash covers pixels, labels, splits and class
names, not the layout, so it must come out equal, and embeddings, zoo entries and run records
that name it stay valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from raynas.data.format import DatasetInfo, row_group_rows, shard_rows, tensor_column_to_numpy
from raynas.data.stored import READ_PIECE_BYTES, StoredDataset, open_parquet
from raynas.errors import RaynasError

OVERSIZE = 2  # a row group of more than this many times the current rows is rewritten


def layout_problem(stored: StoredDataset) -> str | None:
    """Why ``stored`` is not in the current layout (None when it is)."""
    info = stored.info
    image_bytes = math.prod(info.shape)
    limit = row_group_rows(image_bytes)
    biggest = max((g.rows for g in stored.row_groups), default=0)
    if biggest > OVERSIZE * limit:
        return (f"row groups of up to {biggest:,} images ({biggest * image_bytes / 2 ** 20:,.0f} MB of pixels; "
                f"now {limit:,})")
    if stored.path.is_file() and info.num_images > shard_rows(image_bytes):
        return (f"one file of {info.num_images * image_bytes / 2 ** 20:,.0f} MB of pixels (now shards of "
                f"{shard_rows(image_bytes) * image_bytes / 2 ** 20:,.0f} MB)")
    return None


@dataclass(frozen=True)
class Relayout:
    """A stored dataset rewritten in the current layout; the store moves it into place (a write
    plan like an import's: ``name`` and ``write(path)``)."""

    name: str
    stored: StoredDataset

    def _chunks(self) -> Iterator[np.ndarray]:
        """The images in row order, a new row group at a time, read in 1 MB pieces."""
        shape = self.stored.info.shape
        rows = row_group_rows(math.prod(shape))
        piece = max(1, READ_PIECE_BYTES // math.prod(shape))
        pending, held = [], 0
        for group in self.stored.row_groups:
            parquet = open_parquet(group.path)
            for batch in parquet.iter_batches(batch_size=piece, row_groups=[group.index], columns=["image"]):
                pending.append(tensor_column_to_numpy(batch.column(0), shape))
                held += len(pending[-1])
                if held >= rows:
                    images = np.concatenate(pending)
                    cut = held - held % rows
                    yield from (images[i:i + rows] for i in range(0, cut, rows))
                    pending, held = [images[cut:]], held - cut
        if held:
            yield np.concatenate(pending)

    def write(self, path: Path) -> DatasetInfo:
        from raynas.data.writer import write_streamed

        old = self.stored.info
        new = write_streamed(path, self._chunks(), name=old.name, class_names=old.class_names,
                             labels=self.stored.labels, splits=self.stored.splits, shape=old.shape, domain=old.domain,
                             provenance=old.provenance, allow_flip=old.allow_flip, version=old.version)
        if new.content_hash != old.content_hash:  # the old one stays in place: the caller discards ``path``
            raise RaynasError(f"dataset '{old.name}' read back with content hash {new.content_hash[:12]}, not its "
                              f"stored {old.content_hash[:12]}: left as it was",
                              f"check it with `raynas data show {old.name}`; import it again from its source")
        return new
