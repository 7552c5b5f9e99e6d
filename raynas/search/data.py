"""What a search trains on: one dataset, or several interleaved for multi-dataset pretraining.

The bilevel loop asks its data for an epoch of ``(head, train batch, val batch)`` steps and
for validation scores; ``head`` is None for one dataset and the index of the dataset's
classifier head when several share one supernet. Both kinds are seeded by epoch, so a
resumed search sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from raynas.data.loader import Loader, LoaderConfig, create_loaders
from raynas.data.store import DatasetStore

Batch = tuple[torch.Tensor, torch.Tensor]
Step = tuple[int | None, Batch, Batch]


def _cycle(loader: Loader, epoch: int) -> Iterator[Batch]:
    """Endless batches; pass c of epoch e uses its own seed, so resumed runs see the same data."""
    for c in itertools.count():
        loader.set_epoch(epoch * 1000 + c)
        yield from loader


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Loader) -> tuple[float, float]:
    """Mean loss and accuracy; works for the supernet and the discrete network."""
    model.eval()
    loss_sum = correct = seen = 0
    for x, y in loader:
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@dataclass
class DatasetLoaders:
    """One dataset's loaders: weights train on ``train``; alphas on ``arch`` (val, shuffled and
    augmented); scores come from ``val`` in one fixed shuffled order without augmentation.

    The supernet's BatchNorm always uses batch statistics, so its val batches must mix
    classes: in file order a class-sorted dataset gives one class per batch, and accuracy
    collapses to near chance although the network has learnt.
    """

    name: str
    train: Loader
    val: Loader
    arch: Loader

    @classmethod
    def create(cls, name: str, config: LoaderConfig, store: DatasetStore) -> "DatasetLoaders":
        loaders = create_loaders(name, config, ("train", "val"), store)
        val = loaders["val"]
        return cls(name, loaders["train"], val.view(train=False, shuffle=True), val.view(train=True))

    def evaluate(self, model: torch.nn.Module) -> tuple[float, float]:
        self.val.set_epoch(0)  # the same order every time
        return evaluate(model, self.val)

    @property
    def content_hash(self) -> str:
        return self.train.info.content_hash


class SingleDataset:
    """The usual search: every weight step is paired with the next architecture batch."""

    def __init__(self, loaders: DatasetLoaders):
        self.loaders = loaders
        self.datasets = [loaders]

    def epoch(self, epoch: int) -> Iterator[Step]:
        self.loaders.train.set_epoch(epoch)
        arch = _cycle(self.loaders.arch, epoch)
        for batch in self.loaders.train:
            yield None, batch, next(arch)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        loss, acc = self.loaders.evaluate(model)
        return {"val_loss": loss, "val_acc": acc}


class MultiDataset:
    """Several datasets, one head each; batches interleaved so each is seen in proportion.

    An epoch takes every train batch of every dataset once, in a seeded random order of
    datasets (a dataset with twice the batches appears twice as often), each paired with an
    architecture batch of the same dataset.
    """

    def __init__(self, datasets: Sequence[DatasetLoaders], seed: int = 0):
        self.datasets, self.seed = list(datasets), seed

    def schedule(self, epoch: int) -> list[int]:
        slots = torch.cat([torch.full((len(d.train),), i) for i, d in enumerate(self.datasets)])
        order = torch.randperm(len(slots), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        return slots[order].tolist()

    def epoch(self, epoch: int) -> Iterator[Step]:
        train, arch = [], []
        for d in self.datasets:
            d.train.set_epoch(epoch)
            train.append(iter(d.train))
            arch.append(_cycle(d.arch, epoch))
        for i in self.schedule(epoch):
            yield i, next(train[i]), next(arch[i])

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Per-dataset val scores, and their image-weighted means as ``val_loss``/``val_acc``."""
        out: dict[str, float] = {}
        loss_sum = acc_sum = seen = 0.0
        for i, d in enumerate(self.datasets):
            model.select(i)
            loss, acc = d.evaluate(model)
            n = d.val.num_images
            out[f"val_acc/{d.name}"] = acc
            loss_sum, acc_sum, seen = loss_sum + loss * n, acc_sum + acc * n, seen + n
        return {"val_loss": loss_sum / seen, "val_acc": acc_sum / seen, **out}
