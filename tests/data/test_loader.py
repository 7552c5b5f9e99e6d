"""Loaders: normalised batches, seeded epochs, augmentation policy, memory and Ray Data backends."""

import pytest
import torch

from raynas.data import DatasetStore
from raynas.data.loader import LoaderConfig, choose_backend, create_loader, create_loaders
from raynas.data.transforms import RandomCropFlip, to_float
from raynas.errors import RaynasError


@pytest.fixture(scope="module")
def store(suite_home):
    return DatasetStore(suite_home)


def test_batches_are_normalised_and_resized(store):
    loader = create_loader("digits", "train", LoaderConfig(image_size=16, channels=3, batch_size=50), store)
    x, y = next(iter(loader))
    assert x.shape == (50, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(loader) == -(-897 // 50)
    everything = torch.cat([b for b, _ in loader])
    assert everything.mean().abs() < 0.05 and (everything.std() - 1).abs() < 0.1


def test_rgb_to_gray_and_drop_last(store):
    loader = create_loader("photo-patches", "train",
                           LoaderConfig(image_size=8, channels=1, batch_size=64, drop_last=True), store)
    assert len(loader) == 480 // 64
    assert all(x.shape == (64, 1, 8, 8) for x, _ in loader)


def test_epochs_are_seeded(store):
    cfg = LoaderConfig(image_size=8, batch_size=32, augment=True)
    a, b = create_loader("digits", "train", cfg, store), create_loader("digits", "train", cfg, store)
    a.set_epoch(3)
    b.set_epoch(3)
    xa, ya = next(iter(a))
    xb, yb = next(iter(b))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.set_epoch(4)
    assert not torch.equal(ya, next(iter(b))[1])


def test_val_and_test_keep_file_order_and_are_not_augmented(store):
    loaders = create_loaders("digits", LoaderConfig(image_size=8, batch_size=1000, augment=True), store=store)
    first = next(iter(loaders["val"]))[0]
    assert torch.equal(first, next(iter(loaders["val"]))[0])
    shuffled = loaders["val"].view(train=True)
    assert shuffled.shuffle and shuffled.augment is not None and shuffled.images is loaders["val"].images


def test_flips_only_where_the_dataset_allows(store):
    glyphs = create_loader("glyph-digits", "train", LoaderConfig(augment=True), store)
    textures = create_loader("textures", "train", LoaderConfig(augment=True), store)
    assert glyphs.augment.flip is False and textures.augment.flip is True
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert torch.equal(RandomCropFlip(0, flip=False)(x, g), x)
    flipped = [torch.equal(RandomCropFlip(0, flip=True)(x, g)[0], x[0].flip(-1)) for _ in range(20)]
    assert any(flipped) and not all(flipped)


def test_random_crop_shifts_with_zero_padding():
    x = torch.ones(64, 1, 6, 6)
    out = RandomCropFlip(2, flip=False)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and (out == 0).any() and set(out.unique().tolist()) == {0.0, 1.0}


def test_train_plus_val_split(store):
    loader = create_loader("digits", "train+val", LoaderConfig(image_size=8), store)
    assert loader.num_images == 897 + 450


def test_to_float_conversions():
    rgb = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.allclose(to_float(rgb, 4, 1), torch.ones(2, 1, 4, 4))
    assert to_float(rgb[:, :1], 8, 3).shape == (2, 3, 8, 8)


def test_auto_backend_and_bad_configs(store):
    info = store.info("mnist5k")
    assert choose_backend(info, LoaderConfig()) == "memory"
    assert choose_backend(info, LoaderConfig(memory_limit_mb=1)) == "ray"
    for bad in (dict(channels=2), dict(image_size=2), dict(batch_size=0), dict(backend="disk")):
        with pytest.raises(RaynasError):
            LoaderConfig(**bad)
    with pytest.raises(RaynasError, match="unknown split"):
        create_loader("digits", "holdout", LoaderConfig(), store)


def test_ray_backend_yields_the_same_batches_as_memory(store, ray_session):
    cfg = dict(image_size=16, channels=1, batch_size=100, augment=False)
    mem = create_loader("digits", "val", LoaderConfig(backend="memory", **cfg), store)
    ray_loader = create_loader("digits", "val", LoaderConfig(backend="ray", **cfg), store)
    pairs = list(zip(mem, ray_loader))
    assert len(pairs) == len(mem) == len(ray_loader)
    for (xm, ym), (xr, yr) in pairs:
        torch.testing.assert_close(xr, xm)
        assert torch.equal(yr, ym)
    train = create_loader("digits", "train", LoaderConfig(backend="ray", **{**cfg, "augment": True}), store)
    assert sum(len(y) for _, y in train) == 897
