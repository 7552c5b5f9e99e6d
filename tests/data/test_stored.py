"""A stored dataset read in parts: the same labels, images and embeddings as the whole dataset, from
only the row groups that hold them."""

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

import raynas.data.format as format_mod
from raynas.data import DatasetStore
from raynas.data.format import make_dataset, write_dataset
from raynas.data.stored import StoredDataset
from raynas.errors import RaynasError


@pytest.fixture
def many_groups(tmp_path, monkeypatch):
    """A dataset of 60 images in row groups of 8, and its in-memory twin."""
    rng = np.random.default_rng(0)
    ds = make_dataset("parts", rng.integers(0, 256, (60, 3, 6, 6), dtype=np.uint8), np.arange(60) % 4,
                      ["a", "b", "c", "d"], domain="test")
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 8 * 3 * 36)
    path = write_dataset(ds, tmp_path / "parts.parquet")
    assert pq.ParquetFile(path).num_row_groups == 8
    return StoredDataset(path, ds.info), ds


@pytest.fixture
def groups_read(monkeypatch):
    """The row groups read from dataset files, in order."""
    read = []
    original = pq.ParquetFile.iter_batches

    def counted(self, *args, row_groups=None, **kwargs):
        read.extend(row_groups if row_groups is not None else range(self.num_row_groups))
        return original(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    return read


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_labels_and_images_of_a_split_are_those_of_the_dataset(many_groups, split):
    stored, ds = many_groups
    images, labels = ds.split(split)
    assert np.array_equal(stored.split_labels(split), labels)
    index = np.random.default_rng(1).permutation(len(labels))[: len(labels) // 2 + 1]  # any order
    assert np.array_equal(stored.split_images(split, index), images[index])
    assert np.array_equal(ds.split_images(split, index), images[index])


def test_only_the_row_groups_holding_the_rows_are_read(many_groups, groups_read):
    stored, ds = many_groups
    rows = np.flatnonzero(ds.splits == "train")
    first_group = np.flatnonzero(rows < 8)  # the train images among the file's first 8 rows
    stored.split_images("train", first_group)
    assert groups_read == [0]


def test_an_unknown_split_is_named(many_groups):
    with pytest.raises(RaynasError, match="unknown split 'dev'"):
        many_groups[0].split_labels("dev")


def test_the_embedding_of_the_stored_dataset_is_that_of_the_loaded_one(suite_home, pixel_encoder_local):
    from raynas.ot import EmbeddingConfig, embed_dataset

    store = DatasetStore(suite_home)
    config = EmbeddingConfig(max_images=300)
    a = embed_dataset(store.open("digits"), pixel_encoder_local, config)
    b = embed_dataset(store.load("digits"), pixel_encoder_local, config)
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, field.name


def test_a_cached_embedding_reads_no_image(suite_home, pixel_encoder_local, tmp_path, monkeypatch):
    from raynas.ot import EmbeddingStore
    from raynas.storage import Storage

    store, embeddings = DatasetStore(suite_home), EmbeddingStore(Storage(tmp_path / "embeddings"))
    first = embeddings.ensure(store.open("textures"), pixel_encoder_local)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda *a, **k: pytest.fail("an image was read"))
    assert embeddings.ensure(store.open("textures"), pixel_encoder_local).content_hash == first.content_hash


@pytest.fixture
def pixel_encoder_local(tmp_path, suite_home):
    from raynas.ot import create_encoder
    from raynas.storage import Storage

    return create_encoder("pixels", storage=Storage(tmp_path / "encoders"), home=suite_home)


def test_the_first_images_of_a_split_come_from_the_first_row_groups(many_groups, groups_read):
    from raynas.data.loader import first_images

    stored, ds = many_groups
    images = first_images(stored.path, stored.info, "train", 3)
    assert np.array_equal(images, ds.split("train")[0][:3]) and max(groups_read) < 2  # not the other 6 groups
    assert len(first_images(stored.path, stored.info, "val", 1000)) == ds.info.split_counts["val"]


def test_the_embedding_of_a_long_split_reads_a_few_row_groups(tmp_path, monkeypatch, groups_read,
                                                               pixel_encoder_local):
    """110,000 images in row groups of 1,000: the 300-image sample comes from a few of them, and the
    stored and in-memory datasets still give one embedding."""
    from raynas.ot import EmbeddingConfig, embed_dataset

    rng = np.random.default_rng(0)
    n = 110_000
    ds = make_dataset("long", rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8), np.arange(n) % 5,
                      list("abcde"), domain="test")
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 1000 * 16)
    path = write_dataset(ds, tmp_path / "long.parquet")
    config = EmbeddingConfig(max_images=300)
    stored = embed_dataset(StoredDataset(path, ds.info), pixel_encoder_local, config)
    assert 8 <= len(set(groups_read)) <= 12 and pq.ParquetFile(path).num_row_groups == 110
    loaded = embed_dataset(ds, pixel_encoder_local, config)
    assert np.array_equal(stored.sample, loaded.sample) and np.array_equal(stored.means, loaded.means)


def test_data_show_reads_only_the_row_groups_of_its_grid(tmp_path, monkeypatch, groups_read, capsys):
    from raynas.cli import main

    rng = np.random.default_rng(0)
    ds = make_dataset("parts", rng.integers(0, 256, (60, 3, 6, 6), dtype=np.uint8), np.arange(60) % 4,
                      ["a", "b", "c", "d"], domain="test")
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 8 * 3 * 36)
    store = DatasetStore(tmp_path / "home")
    store.save(ds)
    assert pq.ParquetFile(store.path("parts")).num_row_groups == 8
    out = tmp_path / "grid.png"
    assert main(["data", "show", "parts", "--per-class", "1", "--max-classes", "2", "--out", str(out),
                 "--home", str(tmp_path / "home")]) == 0
    assert out.is_file() and 1 <= len(set(groups_read)) <= 2  # two images drawn: not the other groups
