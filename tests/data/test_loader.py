"""Loaders: normalised batches, seeded epochs, augmentation policy, memory, stream and Ray Data backends."""

import math

import numpy as np
import pytest
import torch

from raynas.data import DatasetStore, make_dataset
from raynas.data.loader import (LoaderConfig, MemoryLoader, RayDataLoader, StreamLoader, choose_backend,
                                create_loader, create_loaders, parse_split)
from raynas.data.transforms import Normalize, RandomCropFlip, to_float
from raynas.errors import RaynasError

DIGITS = {"train": 897, "val": 450, "test": 450}


@pytest.fixture(scope="module")
def store(suite_home):
    return DatasetStore(suite_home)


def _epoch(loader, epoch=0):
    loader.set_epoch(epoch)
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _unnormalise(x, loader):
    mean = torch.tensor(loader.normalize.mean).view(1, -1, 1, 1)
    std = torch.tensor(loader.normalize.std).view(1, -1, 1, 1)
    return x * std + mean


def test_digits_splits_have_the_expected_sizes(store):
    assert store.info("digits").split_counts == DIGITS


def test_gray_to_rgb_resized_normalised_batches(store):
    loader = create_loader("digits", "train", LoaderConfig(image_size=16, channels=3, batch_size=50), store)
    assert isinstance(loader, MemoryLoader)
    batches = list(loader)
    assert len(loader) == len(batches) == math.ceil(897 / 50)
    assert [len(y) for _, y in batches] == [50] * 17 + [897 - 17 * 50]
    for x, y in batches:
        assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 10
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # gray copied to RGB
    x = torch.cat([b for b, _ in batches])
    # standardised with the train split's own statistics, per channel
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_resizing_8_to_16_keeps_the_pictures(store):
    loader = create_loader("digits", "val", LoaderConfig(image_size=16, channels=1, batch_size=500), store)
    x, y = next(iter(loader))
    images, labels = store.load("digits").split("val")
    assert x.shape == (450, 1, 16, 16)
    assert torch.equal(y, torch.from_numpy(labels).long())
    pixels = _unnormalise(x, loader)
    assert pixels.min() > -1e-4 and pixels.max() < 1 + 1e-4
    source = torch.from_numpy(images).float().flatten(1) / 255
    # each 16x16 image, pooled back to 8x8, has its original's brightness and pattern
    pooled = torch.nn.functional.avg_pool2d(pixels, 2).flatten(1)
    torch.testing.assert_close(pooled.mean(1), source.mean(1), atol=1e-3, rtol=0)
    assert torch.nn.functional.cosine_similarity(pooled - pooled.mean(1, keepdim=True),
                                                 source - source.mean(1, keepdim=True)).min() > 0.9


def test_rgb_to_gray_uses_luma_and_drop_last(store):
    val = create_loader("photo-patches", "val", LoaderConfig(image_size=32, channels=1, batch_size=1000), store)
    x, _ = next(iter(val))
    rgb, _ = store.load("photo-patches").split("val")
    luma = np.tensordot(rgb.astype(np.float64) / 255, [0.299, 0.587, 0.114], axes=([1], [0]))
    np.testing.assert_allclose(_unnormalise(x, val)[:, 0].numpy(), luma, atol=1e-5)

    n = store.info("photo-patches").split_counts["train"]
    cfg = dict(image_size=8, channels=1, batch_size=64)
    dropping = create_loader("photo-patches", "train", LoaderConfig(drop_last=True, **cfg), store)
    batches = list(dropping)
    assert len(dropping) == len(batches) == n // 64
    assert all(x.shape == (64, 1, 8, 8) for x, _ in batches)
    keeping = create_loader("photo-patches", "train", LoaderConfig(drop_last=False, **cfg), store)
    sizes = [len(y) for _, y in keeping]
    assert len(keeping) == len(sizes) == math.ceil(n / 64) and sum(sizes) == n


def test_same_seed_and_epoch_give_identical_batches(store):
    cfg = LoaderConfig(image_size=8, batch_size=32, augment=True)
    a, b = create_loader("digits", "train", cfg, store), create_loader("digits", "train", cfg, store)
    xa, ya = _epoch(a, 3)
    xb, yb = _epoch(b, 3)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # iterating moves on to the next epoch
    assert torch.equal(torch.cat([y for _, y in a]), _epoch(b, 4)[1])


def test_epochs_and_seeds_change_the_order(store):
    loader = create_loader("digits", "train", LoaderConfig(image_size=8, batch_size=100), store)
    _, y0 = _epoch(loader, 0)
    _, y1 = _epoch(loader, 1)
    assert not torch.equal(y0, y1)
    assert torch.equal(y0.sort().values, y1.sort().values)  # the same images, in another order
    other = create_loader("digits", "train", LoaderConfig(image_size=8, batch_size=100, seed=1), store)
    assert not torch.equal(y0, _epoch(other, 0)[1])
    still = create_loader("digits", "train", LoaderConfig(image_size=8, batch_size=100, shuffle=False), store)
    assert torch.equal(_epoch(still, 0)[1], _epoch(still, 1)[1])


def test_val_and_test_keep_file_order_and_are_never_augmented(store):
    ds = store.load("digits")
    aug = create_loaders("digits", LoaderConfig(image_size=8, batch_size=100, augment=True), store=store)
    plain = create_loaders("digits", LoaderConfig(image_size=8, batch_size=100, augment=False), store=store)
    assert aug["train"].augment is not None and aug["train"].shuffle
    for split in ("val", "test"):
        loader = aug[split]
        assert loader.augment is None and not loader.shuffle
        x0, y0 = _epoch(loader, 0)
        x1, y1 = _epoch(loader, 5)
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
        assert torch.equal(y0, torch.from_numpy(ds.split(split)[1]).long())
        assert torch.equal(x0, _epoch(plain[split], 0)[0])
    # the train split is augmented: same order as without augmentation, other pixels
    xa, ya = _epoch(aug["train"], 2)
    xp, yp = _epoch(plain["train"], 2)
    assert torch.equal(ya, yp) and not torch.equal(xa, xp)


def test_view_switches_between_train_and_eval_mode(store):
    loaders = create_loaders("digits", LoaderConfig(image_size=8, batch_size=1000, augment=True), store=store)
    shuffled = loaders["val"].view(train=True)
    assert shuffled.shuffle and shuffled.augment is not None and shuffled.images is loaders["val"].images
    assert not loaders["val"].shuffle  # the original is unchanged
    assert not torch.equal(_epoch(shuffled, 0)[1], _epoch(loaders["val"], 0)[1])
    fixed = loaders["train"].view(train=False)
    assert not fixed.shuffle and fixed.augment is None


def test_flips_only_where_the_dataset_allows(store):
    cfg = dict(image_size=32, channels=1, batch_size=256)
    glyphs = create_loader("glyph-digits", "train", LoaderConfig(augment=True, crop_padding=0, **cfg), store)
    assert glyphs.augment.flip is False
    plain = create_loader("glyph-digits", "train", LoaderConfig(augment=False, **cfg), store)
    x_aug, _ = _epoch(glyphs, 1)
    assert torch.equal(x_aug, _epoch(plain, 1)[0])  # no crop, no flip: nothing changes

    textures = create_loader("textures", "train", LoaderConfig(augment=True, crop_padding=0, **cfg), store)
    assert textures.augment.flip is True
    x_aug, _ = _epoch(textures, 1)
    x, _ = _epoch(create_loader("textures", "train", LoaderConfig(augment=False, **cfg), store), 1)
    same = (x_aug == x).flatten(1).all(1)
    mirrored = (x_aug == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0.3 < mirrored.float().mean() < 0.7


def test_random_crop_flip_never_mirrors_without_flip():
    x = torch.arange(4 * 5 * 5, dtype=torch.float32).view(4, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert torch.equal(RandomCropFlip(0, flip=False)(x, g), x)
    flipped = [torch.equal(RandomCropFlip(0, flip=True)(x, g)[0], x[0].flip(-1)) for _ in range(40)]
    assert any(flipped) and not all(flipped)


def test_random_crop_is_a_zero_padded_shift():
    x = torch.arange(1, 1 + 16 * 3 * 6 * 6, dtype=torch.float32).view(16, 3, 6, 6)
    p = 2
    out = RandomCropFlip(p, flip=False)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    shifts = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6])]
        assert len(found) == 1, i  # exactly one offset explains the crop, and it is never mirrored
        shifts.add(found[0])
    assert len(shifts) > 1


def test_default_crop_padding_is_an_eighth_of_the_size(store):
    loader = create_loader("glyph-digits", "train", LoaderConfig(image_size=16, augment=True), store)
    assert loader.augment == RandomCropFlip(2, flip=False)


def test_train_plus_val_split(store):
    loader = create_loader("digits", "train+val", LoaderConfig(image_size=8, batch_size=500), store)
    assert loader.num_images == 897 + 450 and not loader.shuffle  # only 'train' itself shuffles by default
    assert sum(len(y) for _, y in loader) == 897 + 450
    assert parse_split("train+val+test") == ("train", "val", "test")


def test_to_float_conversions():
    rgb = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.allclose(to_float(rgb, 4, 1), torch.ones(2, 1, 4, 4))
    gray = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    out = to_float(gray, 8, 3)
    assert out.shape == (2, 3, 8, 8) and out.is_contiguous()
    assert torch.equal(to_float(gray, 4, 1), gray.float() / 255)


def test_normalize_fits_mean_and_std():
    x = torch.randn(64, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 4
    norm = Normalize.fit(x)
    y = norm(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    assert Normalize.fit(torch.zeros(4, 1, 4, 4)).std == pytest.approx((1e-3,))  # constant images do not divide by zero


def test_auto_backend(store):
    info = store.info("mnist5k")
    assert choose_backend(info, LoaderConfig()) == "memory"
    assert choose_backend(info, LoaderConfig(memory_limit_mb=1)) == "stream"
    assert choose_backend(info, LoaderConfig(backend="memory", memory_limit_mb=1)) == "memory"
    loader = create_loader("digits", "val", LoaderConfig(memory_limit_mb=0.001), store)
    assert isinstance(loader, StreamLoader) and len(loader) == math.ceil(450 / 64)
    # building a Ray Data loader does not start Ray; only iterating does
    loader = create_loader("digits", "val", LoaderConfig(backend="ray"), store)
    assert isinstance(loader, RayDataLoader) and len(loader) == math.ceil(450 / 64)


def test_auto_backend_counts_every_stored_pixel():
    ds = make_dataset("big", np.zeros((30, 3, 64, 64), np.uint8), np.arange(30) % 2, ["a", "b"], domain="t")
    cfg = LoaderConfig(image_size=4, channels=1, memory_limit_mb=0.1)
    assert ds.images.nbytes > cfg.memory_limit_mb * 2 ** 20  # the stored images alone exceed the limit
    assert choose_backend(ds.info, cfg) == "stream"


@pytest.mark.parametrize("bad, message", [
    (dict(channels=2), "channels must be 1 or 3"), (dict(image_size=2), "image_size must be at least 4"),
    (dict(batch_size=0), "batch_size must be positive"), (dict(backend="disk"), "unknown loader backend 'disk'"),
    (dict(workers=0), "loader workers and shuffle window must be positive"),
])
def test_bad_configs(bad, message):
    with pytest.raises(RaynasError, match=message):
        LoaderConfig(**bad)


def test_bad_split_or_dataset(store):
    with pytest.raises(RaynasError, match="unknown split 'holdout'"):
        create_loader("digits", "holdout", LoaderConfig(), store)
    with pytest.raises(RaynasError, match="unknown split 'tset'"):
        create_loader("digits", "train+tset", LoaderConfig(), store)
    with pytest.raises(RaynasError, match="dataset 'nope' not found"):
        create_loader("nope", "train", LoaderConfig(), store)


def test_ray_backend_yields_the_same_batches_as_memory(store, ray_session):
    cfg = dict(image_size=16, channels=3, batch_size=100, augment=False, shuffle=False)
    mem = create_loader("digits", "val", LoaderConfig(backend="memory", **cfg), store)
    ray_loader = create_loader("digits", "val", LoaderConfig(backend="ray", **cfg), store)
    assert isinstance(ray_loader, RayDataLoader) and ray_loader.normalize == mem.normalize
    pairs = list(zip(mem, ray_loader, strict=True))
    assert len(pairs) == len(mem) == len(ray_loader) == 5
    for (xm, ym), (xr, yr) in pairs:
        assert xr.shape == xm.shape and xr.dtype == torch.float32 and yr.dtype == torch.int64
        torch.testing.assert_close(xr, xm)
        assert torch.equal(yr, ym)
    # shuffled and augmented, the train split still yields every image once
    train = create_loader("digits", "train", LoaderConfig(backend="ray", **{**cfg, "augment": True,
                                                                            "shuffle": True}), store)
    labels = torch.cat([y for _, y in train])
    assert len(labels) == 897
    assert torch.equal(labels.sort().values, torch.from_numpy(store.load("digits").split("train")[1]).long().sort()
                       .values)


@pytest.fixture(scope="module")
def sorted_store(tmp_path_factory):
    """A dataset stored class by class (as an image-folder import writes it) in row groups of 50."""
    from raynas.data.writer import write_streamed

    store = DatasetStore(tmp_path_factory.mktemp("sorted-home"))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 100)
    images = rng.integers(0, 256, (600, 1, 8, 8), dtype=np.uint8)
    splits = np.array(["val" if i % 5 == 1 else "test" if i % 5 == 3 else "train" for i in range(600)])
    write_streamed(store.path("sorted"), (images[i:i + 50] for i in range(0, 600, 50)), name="sorted",
                   class_names=[f"c{k}" for k in range(6)], labels=labels, splits=splits, shape=(1, 8, 8),
                   domain="test", provenance={})
    return store


@pytest.mark.parametrize("dataset, split, batch_size", [("digits", "val", 100), ("digits", "train+val", 64),
                                                        ("sorted", "train", 32), ("sorted", "test", 7)])
def test_stream_backend_yields_the_same_batches_as_memory(store, sorted_store, dataset, split, batch_size):
    where = sorted_store if dataset == "sorted" else store
    cfg = dict(image_size=16, channels=3, batch_size=batch_size, augment=False, shuffle=False, shuffle_window=100)
    mem = create_loader(dataset, split, LoaderConfig(backend="memory", **cfg), where)
    stream = create_loader(dataset, split, LoaderConfig(backend="stream", **cfg), where)
    assert isinstance(stream, StreamLoader) and stream.normalize == mem.normalize
    pairs = list(zip(mem, stream, strict=True))
    assert len(pairs) == len(mem) == len(stream)
    for (xm, ym), (xs, ys) in pairs:
        assert xs.dtype == torch.float32 and ys.dtype == torch.int64
        torch.testing.assert_close(xs, xm)
        assert torch.equal(ys, ym)


@pytest.mark.parametrize("drop_last", [False, True])
def test_stream_shuffles_across_row_groups_every_image_once_per_epoch(sorted_store, drop_last):
    cfg = LoaderConfig(backend="stream", image_size=8, batch_size=32, augment=True, shuffle_window=150,
                       drop_last=drop_last, seed=3)
    loader = create_loader("sorted", "train", cfg, sorted_store)
    assert len(loader.groups) == 12 and loader.num_images == 360
    batches = list(loader)
    assert len(batches) == len(loader) == (360 // 32 if drop_last else math.ceil(360 / 32))
    assert all(len(y) == 32 for _, y in batches[:360 // 32])
    labels = torch.cat([y for _, y in batches])
    if not drop_last:  # every train image once
        assert torch.equal(labels.sort().values, torch.from_numpy(np.repeat(np.arange(6), 60)).long())
    # a window of 150 images is at least three row groups in a random order: batches mix classes,
    # where file order would give one class per batch
    assert np.mean([len(torch.unique(y)) for _, y in batches]) >= 2
    loader.set_epoch(0)
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), torch.cat([y for _, y in again]))


def test_stream_reads_ahead_only_a_few_row_groups(sorted_store, monkeypatch):
    """Memory holds the window and the groups being prefetched, never the split."""
    loader = create_loader("sorted", "train", LoaderConfig(backend="stream", image_size=8, batch_size=10,
                                                           workers=2, shuffle_window=30), sorted_store)
    decoded = []
    read = loader.stored.group_images
    monkeypatch.setattr(loader.stored, "group_images", lambda g: decoded.append(g.index) or read(g))
    first = iter(loader)
    next(first)
    assert 1 <= len(decoded) <= 1 + 3  # one window (a group of 30 train images) + workers + 1 ahead
    list(first)
    assert sorted(decoded) == list(range(12))

