"""Search data: val batches mix classes in one fixed order (the supernet's BatchNorm uses batch statistics)."""

import torch

from raynas.data import DatasetStore
from raynas.data.loader import LoaderConfig
from raynas.search.data import DatasetLoaders


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_val_batches_of_a_class_sorted_dataset_mix_classes_in_a_fixed_order(suite_home):
    store = DatasetStore(suite_home)
    _, labels = store.load("glyph-digits").split("val")
    assert (labels[:32] == labels[0]).all()  # in file order the first batch holds a single class
    loaders = DatasetLoaders.create("glyph-digits", LoaderConfig(image_size=16, batch_size=32, augment=True), store)
    loaders.val.set_epoch(0)
    first = _batches(loaders.val)
    assert len(torch.unique(first[0][1])) >= 5
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(labels.tolist())  # every image once
    loaders.val.set_epoch(0)
    again = _batches(loaders.val)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))  # fixed order
    assert loaders.val.augment is None and loaders.arch.augment is not None  # scores never see augmentation
    plain = DatasetLoaders.create("glyph-digits", LoaderConfig(image_size=16, batch_size=32, augment=False), store)
    plain.val.set_epoch(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, _batches(plain.val)))


def test_evaluate_does_not_depend_on_earlier_evaluations(suite_home):
    from raynas.space.config import PRESETS
    from raynas.space.supernet import create_supernet

    store = DatasetStore(suite_home)
    loaders = DatasetLoaders.create("textures", LoaderConfig(image_size=8, batch_size=32), store)
    model = create_supernet(PRESETS.get("tiny").space(in_channels=1, num_classes=6), seed=0)
    assert loaders.evaluate(model) == loaders.evaluate(model)
