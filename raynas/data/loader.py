"""Loaders: Arrow datasets -> normalised float batches, seeded and resumable by epoch.

Three backends behind one interface:

* ``memory``: the whole split is decoded once into one tensor (on the target device);
  a batch is an index into it. Used for everything that fits, i.e. the built-in suite.
* ``stream``: worker threads read and decode the next Parquet row groups while the model
  trains on the current ones; batches are shuffled within a window of row groups taken in a
  random order. Memory holds the window, not the split: for data that does not fit.
* ``ray``: ``ray.data.read_parquet`` -> ``iter_torch_batches``; a new Ray Data plan every
  epoch makes it slower than ``stream`` on one node (docs/benchmarks.md).

``auto`` picks ``memory`` when the decoded split fits ``memory_limit_mb``, else ``stream``.
Every backend applies the same normalisation (statistics of the first 4,096 train images in
file order), so they yield identical batches when shuffling and augmentation are off.
"""

from __future__ import annotations

import collections
import copy
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from raynas.data.format import DatasetInfo
from raynas.data.relayout import layout_problem
from raynas.data.splits import SPLITS
from raynas.data.store import DatasetStore
from raynas.data.transforms import Normalize, RandomCropFlip, to_float
from raynas.data.validate import MAX_SIDE
from raynas.errors import RaynasError
from raynas.registry import Registry

STATS_SAMPLE = 4096


@dataclass(frozen=True)
class LoaderConfig:
    image_size: int = 32
    channels: int = 1
    batch_size: int = 64
    augment: bool = False  # random crop (+ flip where the dataset allows it), train split only
    crop_padding: int | None = None  # default: image_size // 8
    shuffle: bool = True  # train split only; val/test keep file order
    drop_last: bool = False
    seed: int = 0
    backend: str = "auto"  # auto | memory | stream | ray
    memory_limit_mb: float = 2048.0
    device: str = "cpu"
    workers: int = 2  # stream: threads that read and decode row groups ahead of training
    shuffle_window: int = 16_384  # stream: images shuffled together (whole row groups, taken in a random order)

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise RaynasError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size < 4 or self.image_size > MAX_SIDE:
            raise RaynasError(f"image_size must be at least 4 and at most {MAX_SIDE}, got {self.image_size}")
        if self.batch_size < 1:
            raise RaynasError(f"batch_size must be positive, got {self.batch_size}")
        if self.workers < 1 or self.shuffle_window < 1:
            raise RaynasError(f"loader workers and shuffle window must be positive, got {self.workers} and "
                              f"{self.shuffle_window}")
        if self.backend not in BACKENDS and self.backend != "auto":
            raise RaynasError(f"unknown loader backend '{self.backend}'",
                              f"choose one of: auto, {', '.join(BACKENDS.names())}")

    def to_json(self) -> dict:
        return asdict(self)


class Loader(Protocol):
    info: DatasetInfo
    split: str

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def view(self, train: bool, shuffle: bool | None = None) -> "Loader": ...


def parse_split(spec: str) -> tuple[str, ...]:
    """A split or a '+'-joined union of splits, e.g. 'train+val' for retraining."""
    parts = tuple(spec.split("+"))
    for s in parts:
        if s not in SPLITS:
            raise RaynasError(f"unknown split '{s}'", f"choose from: {', '.join(SPLITS)}, or join them with '+'")
    return parts


class _EpochSeeded:
    """Shared bookkeeping: the shuffle/augment seed of an epoch is derived from ``seed`` and ``epoch``.

    A loader in train mode shuffles and augments; in eval mode it keeps file order.
    By default the ``train`` split is in train mode and the others in eval mode.
    """

    def __init__(self, info: DatasetInfo, split: str, config: LoaderConfig, normalize: Normalize,
                 train: bool | None = None, shuffle: bool | None = None):
        self.info, self.split, self.config, self.normalize = info, split, config, normalize
        self.train = split == "train" if train is None else train
        self.shuffle = config.shuffle and self.train if shuffle is None else shuffle
        self.augment = None
        if config.augment and self.train:
            padding = config.image_size // 8 if config.crop_padding is None else config.crop_padding
            self.augment = RandomCropFlip(padding, flip=info.allow_flip)
        self.num_images = sum(info.split_counts[s] for s in parse_split(split))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def view(self, train: bool, shuffle: bool | None = None):
        """The same data in another mode: e.g. the val split shuffled and augmented for architecture
        steps, or shuffled without augmentation for evaluating a network whose BatchNorm uses
        batch statistics (file order can hold one class per batch)."""
        other = copy.copy(self)
        _EpochSeeded.__init__(other, self.info, self.split, self.config, self.normalize, train, shuffle)
        return other

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 100_003 + self.epoch)

    def __len__(self) -> int:
        n, bs = self.num_images, self.config.batch_size
        return n // bs if self.config.drop_last else math.ceil(n / bs)

    def _finish(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.augment(x, gen) if self.augment is not None else x


class MemoryLoader(_EpochSeeded):
    """The whole split as one normalised tensor; batches are index slices of it."""

    def __init__(self, info: DatasetInfo, split: str, config: LoaderConfig, normalize: Normalize,
                 images: torch.Tensor, labels: torch.Tensor):
        super().__init__(info, split, config, normalize)
        self.images = normalize(images).to(config.device)
        self.labels = labels.long().to(config.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = self._generator()
        self.epoch += 1
        n, bs = len(self.labels), self.config.batch_size
        order = torch.randperm(n, generator=gen).to(self.config.device) if self.shuffle else None
        for start in range(0, len(self) * bs, bs):
            idx = slice(start, start + bs) if order is None else order[start:start + bs]
            yield self._finish(self.images[idx], gen), self.labels[idx]


class StreamLoader(_EpochSeeded):
    """Streams a split from the stored row groups, decoded ahead by worker threads.

    Memory holds the shuffle window plus the row groups being prefetched (``workers`` + 1),
    whatever the size of the split. Reading (Parquet decompression) and decoding (resize,
    normalisation) run in the threads, which release the GIL for most of it.
    """

    def __init__(self, info: DatasetInfo, split: str, config: LoaderConfig, normalize: Normalize, stored):
        super().__init__(info, split, config, normalize)
        self.stored = stored
        self.member = np.isin(stored.splits, parse_split(split))
        self.groups = [g for g in stored.row_groups if self.member[g.start:g.start + g.rows].any()]

    def _decode(self, group) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.member[group.start:group.start + group.rows]
        images = torch.from_numpy(self.stored.group_images(group)[rows])
        labels = torch.from_numpy(self.stored.labels[group.start:group.start + group.rows][rows])
        return self.normalize(to_float(images, self.config.image_size, self.config.channels)), labels.long()

    def _decoded_groups(self, order: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The row groups in ``order``, decoded by the worker threads a few groups ahead."""
        ahead = self.config.workers + 1
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="raynas-loader") as pool:
            pending: collections.deque = collections.deque()
            for g in order:
                pending.append(pool.submit(self._decode, self.groups[g]))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _windows(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Images and labels a shuffle window at a time (in file order without shuffling)."""
        order = torch.randperm(len(self.groups), generator=gen).tolist() if self.shuffle else \
            list(range(len(self.groups)))
        xs, ys, held = [], [], 0
        for x, y in self._decoded_groups(order):
            xs.append(x)
            ys.append(y)
            held += len(y)
            if held >= self.config.shuffle_window:
                yield torch.cat(xs), torch.cat(ys)
                xs, ys, held = [], [], 0
        if xs:
            yield torch.cat(xs), torch.cat(ys)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = self._generator()
        self.epoch += 1
        bs, device = self.config.batch_size, self.config.device
        left_x = left_y = None  # the part of a window short of a batch, carried into the next
        for x, y in self._windows(gen):
            if self.shuffle:
                order = torch.randperm(len(y), generator=gen)
                x, y = x[order], y[order]
            if left_x is not None:
                x, y = torch.cat([left_x, x]), torch.cat([left_y, y])
            full = len(y) // bs * bs
            for start in range(0, full, bs):
                yield self._finish(x[start:start + bs].to(device), gen), y[start:start + bs].to(device)
            left_x, left_y = (x[full:], y[full:]) if full < len(y) else (None, None)
        if left_x is not None and not self.config.drop_last:
            yield self._finish(left_x.to(device), gen), left_y.to(device)


class RayDataLoader(_EpochSeeded):
    """Streams a split from Parquet with Ray Data; for datasets larger than memory."""

    def __init__(self, info: DatasetInfo, split: str, config: LoaderConfig, normalize: Normalize, path: Path):
        super().__init__(info, split, config, normalize)
        self.path = path

    def _dataset(self):
        import ray.data
        from ray.data.expressions import col

        from raynas.ray_session import ensure_ray

        ensure_ray()
        ds = ray.data.read_parquet(str(self.path), columns=["image", "label", "split"])
        parts = parse_split(self.split)
        expr = col("split") == parts[0]
        for s in parts[1:]:
            expr = expr | (col("split") == s)
        return ds.filter(expr=expr).select_columns(["image", "label"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = self._generator()
        seed = self.config.seed * 100_003 + self.epoch
        self.epoch += 1
        ds = self._dataset()
        if self.shuffle:
            ds = ds.randomize_block_order(seed=seed)
        bs = self.config.batch_size
        batches = ds.iter_torch_batches(
            batch_size=bs, drop_last=self.config.drop_last,
            local_shuffle_buffer_size=8 * bs if self.shuffle else None,
            local_shuffle_seed=seed if self.shuffle else None)
        for batch in batches:
            x = self.normalize(to_float(batch["image"], self.config.image_size, self.config.channels))
            yield (self._finish(x.to(self.config.device), gen),
                   batch["label"].long().to(self.config.device))


BACKENDS: Registry[type] = Registry("loader backend")
BACKENDS.add("memory", MemoryLoader)
BACKENDS.add("stream", StreamLoader)
BACKENDS.add("ray", RayDataLoader)


def choose_backend(info: DatasetInfo, config: LoaderConfig) -> str:
    if config.backend != "auto":
        return config.backend
    stored = math.prod(info.shape)  # uint8 pixels as read from Parquet
    decoded = info.num_images * (stored + config.channels * config.image_size ** 2 * 4)
    return "memory" if decoded <= config.memory_limit_mb * 2 ** 20 else "stream"


def first_images(path: Path, info: DatasetInfo, split: str, count: int) -> np.ndarray:
    """The first ``count`` uint8 images of ``split`` in file order, from the row groups that hold
    them (the normalisation's sample and calibrations need no more of a large dataset)."""
    from raynas.data.stored import StoredDataset

    return StoredDataset(path, info).split_images(split, np.arange(min(count, info.split_counts[split])))


def _stats_sample(stored, config: LoaderConfig) -> torch.Tensor:
    """The normalisation's sample: the first train images of a :class:`StoredDataset`."""
    count = min(STATS_SAMPLE, stored.info.split_counts["train"])
    images = torch.from_numpy(stored.split_images("train", np.arange(count)))
    return to_float(images, config.image_size, config.channels)


def create_loaders(dataset: str, config: LoaderConfig = LoaderConfig(), splits: tuple[str, ...] = SPLITS,
                   store: DatasetStore | None = None) -> dict[str, Loader]:
    """Loaders for several splits of one dataset, sharing one read and one normalisation."""
    store = store or DatasetStore()
    info = store.info(dataset)
    for s in splits:
        parse_split(s)
    path = store.local_path(dataset)  # fetched into this home first when it lives on shared storage
    backend = choose_backend(info, config)
    if backend == "memory":
        ds = store.load(dataset)
        x_train, _ = ds.split("train")
        sample = to_float(torch.from_numpy(x_train[:STATS_SAMPLE]), config.image_size, config.channels)
        normalize = Normalize.fit(sample)
        loaders = {}
        for s in splits:
            x, y = ds.split(*parse_split(s))
            loaders[s] = MemoryLoader(info, s, config, normalize,
                                      to_float(torch.from_numpy(x), config.image_size, config.channels),
                                      torch.from_numpy(y))
        return loaders
    from raynas.data.stored import StoredDataset

    stored = StoredDataset(path, info)  # reads and checks the labels and splits now, not mid-epoch
    problem = layout_problem(stored)
    if problem:
        print(f"note: dataset '{dataset}' is stored in an older layout ({problem}), and streaming holds a whole "
              f"row group at a time: `raynas data migrate {dataset}` rewrites it (same content hash)",
              file=sys.stderr, flush=True)
    normalize = Normalize.fit(_stats_sample(stored, config))
    if backend == "stream":
        return {s: StreamLoader(info, s, config, normalize, stored) for s in splits}
    return {s: RayDataLoader(info, s, config, normalize, path) for s in splits}


def create_loader(dataset: str, split: str = "train", config: LoaderConfig = LoaderConfig(),
                  store: DatasetStore | None = None) -> Loader:
    return create_loaders(dataset, config, (split,), store)[split]


def fit_normalization(dataset: str, image_size: int, channels: int, store: DatasetStore | None = None) -> Normalize:
    """The normalisation every loader of ``dataset`` applies at this size and channel count, read
    from the first train images alone (what a model trained on the dataset expects)."""
    store = store or DatasetStore()
    config = LoaderConfig(image_size=image_size, channels=channels)
    from raynas.data.stored import StoredDataset

    return Normalize.fit(_stats_sample(StoredDataset(store.local_path(dataset), store.info(dataset)), config))
