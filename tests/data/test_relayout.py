"""`raynas data migrate`: a dataset written by an older version (one big row group) is rewritten in
the current layout with the same content hash; current ones, failures and bad names leave
everything as it was."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import raynas.data.format as format_module
from raynas.cli import main
from raynas.data import DatasetStore
from raynas.data.writer import write_streamed
from raynas.errors import RaynasError


@pytest.fixture
def legacy(suite_home, tmp_path, monkeypatch):
    """A home holding 'old': digits' images written as one row group (as versions before bounded
    row groups did), with row groups made small enough that 1,797 images are far too many."""
    digits = DatasetStore(suite_home).load("digits")
    home = tmp_path / "home"
    store = DatasetStore(home)
    store.folder.mkdir(parents=True, exist_ok=True)
    info = digits.info
    write_streamed(store.folder / "old.parquet", [digits.images], name="old", class_names=info.class_names,
                   labels=digits.labels, splits=digits.splits, shape=info.shape, domain=info.domain,
                   provenance={"source": "an older raynas"}, version=info.version)
    monkeypatch.setattr(format_module, "ROW_GROUP_BYTES", 64 * int(np.prod(info.shape)))  # 64 images a group
    return home, digits


def _groups(path):
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


def test_an_old_single_group_file_is_rewritten_with_the_same_hash_and_images(legacy, capsys):
    home, digits = legacy
    store = DatasetStore(home)
    before = store.info("old")
    assert _groups(store.path("old")) == [1797]

    assert main(["data", "migrate", "old", "--home", str(home)]) == 0
    assert "old: migrated (was row groups of up to 1,797 images" in capsys.readouterr().out
    after = store.info("old")
    assert after == before  # name, classes, splits, provenance and content hash unchanged
    groups = _groups(store.path("old"))
    assert max(groups) == 64 and sum(groups) == 1797
    again = store.load("old", verify=True)  # verify: the hash recomputed from the new file's rows
    assert np.array_equal(again.images, digits.images) and np.array_equal(again.labels, digits.labels)
    assert list(again.splits) == list(digits.splits)

    assert main(["data", "migrate", "--json", "--home", str(home)]) == 0  # every imported one: now current
    assert json.loads(capsys.readouterr().out) == [{"name": "old", "migrated": False, "was": None}]


def test_a_failed_migration_leaves_the_old_file_and_no_temporary(legacy, monkeypatch):
    home, _ = legacy
    store = DatasetStore(home)
    before = (store.path("old").read_bytes(), sorted(os.listdir(store.folder)))

    from raynas.data.relayout import Relayout

    read = Relayout._chunks

    def torn(self):  # the disk fails after the first new row group was written
        yield next(read(self))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Relayout, "_chunks", torn)
    with pytest.raises(RaynasError, match="cannot write dataset 'old'"):
        store.migrate("old")
    assert (store.path("old").read_bytes(), sorted(os.listdir(store.folder))) == before


@pytest.mark.parametrize("name, problem", [("digits", "is a built-in dataset"), ("nope", "'nope' not found")])
def test_builtins_and_unknown_names_are_refused(legacy, capsys, name, problem):
    home, _ = legacy
    assert main(["data", "migrate", name, "--home", str(home)]) == 1
    assert problem in capsys.readouterr().err
    assert _groups(DatasetStore(home).path("old")) == [1797]  # nothing else was touched


def test_an_old_file_too_big_for_one_file_becomes_a_folder_of_shards(legacy, monkeypatch, capsys):
    home, digits = legacy
    store = DatasetStore(home)
    before = store.info("old")
    monkeypatch.setattr(format_module, "ROW_GROUP_BYTES", 1 << 30)  # its row group is fine: its size is not
    monkeypatch.setattr(format_module, "SHARD_BYTES", 512 * int(np.prod(before.shape)))
    assert main(["data", "migrate", "old", "--home", str(home)]) == 0
    assert "old: migrated (was one file of" in capsys.readouterr().out
    assert not (store.folder / "old.parquet").exists() and store.path("old").is_dir()
    assert len(list(store.path("old").glob("part-*.parquet"))) == 4  # 1,797 rows, 512 a shard
    assert store.info("old") == before
    assert np.array_equal(store.load("old", verify=True).images, digits.images)


def test_the_stream_loader_says_how_to_migrate_an_old_layout(legacy, capsys):
    from raynas.data.loader import LoaderConfig, create_loader

    home, _ = legacy
    store = DatasetStore(home)
    config = LoaderConfig(batch_size=16, backend="stream")
    create_loader("old", "train", config, store)
    assert "`raynas data migrate old` rewrites it" in capsys.readouterr().err
    store.migrate("old")
    create_loader("old", "train", config, store)
    assert "older layout" not in capsys.readouterr().err


def test_a_rewrite_that_would_change_the_content_is_refused_and_leaves_the_old_file(legacy, monkeypatch):
    from raynas.data.relayout import Relayout

    home, _ = legacy
    store = DatasetStore(home)
    before = (store.path("old").read_bytes(), sorted(os.listdir(store.folder)))
    read = Relayout._chunks

    def reordered(self):  # a reader bug that swaps two images
        chunks = list(read(self))
        chunks[0] = chunks[0][::-1].copy()
        yield from chunks

    monkeypatch.setattr(Relayout, "_chunks", reordered)
    with pytest.raises(RaynasError, match="read back with content hash .* not its stored .* left as it was"):
        store.migrate("old")
    assert (store.path("old").read_bytes(), sorted(os.listdir(store.folder))) == before
