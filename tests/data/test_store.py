"""The dataset store and the built-in offline suite."""

import dataclasses
import errno
import os
import threading

import numpy as np
import pytest

from raynas.data import DatasetStore, make_dataset
from raynas.data.builtin import BUILTINS
from raynas.data.splits import SPLITS
from raynas.errors import RaynasError

SUITE = ["digits", "mnist5k", "mnist5k-rot", "mnist5k-inv", "glyph-digits", "glyph-upper", "glyph-lower",
         "glyph-greek", "textures", "photo-patches", "lfw-faces"]


@pytest.fixture(scope="module")
def suite(suite_home):
    return {i.name: i for i in DatasetStore(suite_home).infos()}


def _small(name="mine", n=6, seed=0):
    images = np.random.default_rng(seed).integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    return make_dataset(name, images, np.arange(n) % 2, ["a", "b"], domain="t")


def test_the_builtin_suite_is_complete(suite):
    assert list(suite) == SUITE == list(BUILTINS)
    assert 8 <= len(suite) <= 12
    assert {"handwriting", "printed glyphs", "natural textures", "faces"} <= {i.domain for i in suite.values()}


def test_builtin_shapes_and_sizes(suite):
    for info in suite.values():
        assert info.num_images >= 200, info.name
        assert info.num_classes >= 2 and len(info.shape) == 3 and info.shape[0] in (1, 3), info.name
        assert all(info.split_counts[s] >= info.num_classes for s in SPLITS), info.name  # every class in every split
        assert info.version == BUILTINS.get(info.name).version and len(info.content_hash) == 64
        assert "builder" in info.provenance and "source" in info.provenance
    assert suite["digits"].shape == (1, 8, 8) and suite["digits"].num_images == 1797
    assert suite["mnist5k"].shape == (1, 28, 28) and suite["mnist5k"].num_images == 5000
    assert suite["mnist5k-rot"].shape == suite["mnist5k-inv"].shape == (1, 28, 28)
    assert suite["photo-patches"].shape == (3, 32, 32) and suite["textures"].shape == (1, 32, 32)
    assert suite["glyph-greek"].num_classes == 24 and suite["glyph-upper"].num_classes == 26
    assert suite["lfw-faces"].class_names == ("face", "non-face")
    assert not suite["glyph-upper"].allow_flip and not suite["digits"].allow_flip
    assert suite["textures"].allow_flip and suite["lfw-faces"].allow_flip


def test_builtin_files_match_their_hashes(suite_home):
    store = DatasetStore(suite_home)
    for name in ("digits", "glyph-greek", "lfw-faces", "photo-patches"):
        ds = store.load(name, verify=True)
        assert ds.images.shape == (ds.info.num_images, *ds.info.shape)
        for cls in range(ds.info.num_classes):
            assert set(ds.splits[ds.labels == cls]) == set(SPLITS), (name, cls)


def test_the_shifted_mnist_variants_differ_from_mnist(suite_home, suite):
    store = DatasetStore(suite_home)
    base = store.load("mnist5k")
    for name in ("mnist5k-rot", "mnist5k-inv"):
        shifted = store.load(name)
        np.testing.assert_array_equal(shifted.labels, base.labels)
        assert not np.array_equal(shifted.images, base.images)
        assert suite[name].content_hash != suite["mnist5k"].content_hash
    assert store.load("mnist5k-inv").images.mean() > 2 * base.images.mean()  # dark on light


def test_builds_are_deterministic(tmp_path, suite):
    a, b = DatasetStore(tmp_path / "a"), DatasetStore(tmp_path / "b")
    assert a.info("lfw-faces").content_hash == b.info("lfw-faces").content_hash == suite["lfw-faces"].content_hash


def test_a_built_builtin_is_not_rebuilt(tmp_path, monkeypatch):
    store = DatasetStore(tmp_path)
    path = store.ensure_builtin("lfw-faces")
    stamp = path.stat().st_mtime_ns

    def no_build():
        raise AssertionError("a current built-in was built again")

    monkeypatch.setitem(BUILTINS._items, "lfw-faces", dataclasses.replace(BUILTINS.get("lfw-faces"), build=no_build))
    assert store.ensure_builtin("lfw-faces") == path and path.stat().st_mtime_ns == stamp
    store.ensure_builtins(["lfw-faces"])


def test_stale_or_damaged_builtin_is_rebuilt(tmp_path, monkeypatch):
    store = DatasetStore(tmp_path)
    good = store.info("lfw-faces").content_hash
    store.path("lfw-faces").write_bytes(b"damaged")
    assert store.info("lfw-faces").content_hash == good
    bumped = dataclasses.replace(BUILTINS.get("lfw-faces"), version="99")
    monkeypatch.setitem(BUILTINS._items, "lfw-faces", bumped)
    assert store.info("lfw-faces").version == "99"


def test_save_load_and_list_an_imported_dataset(tmp_path):
    store = DatasetStore(tmp_path)
    ds = _small("zeta")
    path = store.save(ds)
    assert path == tmp_path / "datasets" / "zeta.parquet"
    store.save(_small("alpha"))
    assert store.stored_names() == ["alpha", "zeta"]
    assert store.names() == SUITE + ["alpha", "zeta"]  # built-ins first, then imports by name
    assert store.exists("zeta") and store.exists("digits") and not store.exists("nope")
    back = store.load("zeta", verify=True)
    np.testing.assert_array_equal(back.images, ds.images)
    assert store.info("zeta") == ds.info


def test_save_refuses_existing_and_builtin_names(tmp_path):
    store = DatasetStore(tmp_path)
    store.save(_small(seed=1))
    with pytest.raises(RaynasError, match="already exists") as err:
        store.save(_small(seed=2))
    assert "--overwrite" in str(err.value)
    assert store.load("mine").info.content_hash == _small(seed=1).info.content_hash
    store.save(_small(seed=2), overwrite=True)
    assert store.load("mine").info.content_hash == _small(seed=2).info.content_hash
    for name in ("digits", "lfw-faces"):
        with pytest.raises(RaynasError, match="name of a built-in dataset"):
            store.save(_small(name), overwrite=True)
    assert store.stored_names() == ["mine"]


def test_unknown_dataset_lists_the_choices(tmp_path):
    store = DatasetStore(tmp_path)
    store.save(_small("mine"))
    for call in (store.info, store.load):
        with pytest.raises(RaynasError, match="dataset 'nope' not found") as err:
            call("nope")
        message = str(err.value)
        assert "raynas data import" in message
        assert all(name in message for name in SUITE + ["mine"])


def test_invalid_names_are_refused(tmp_path):
    with pytest.raises(RaynasError, match="not valid"):
        DatasetStore(tmp_path).path("../escape")


def test_home_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYNAS_HOME", str(tmp_path / "env_home"))
    assert DatasetStore().home.datasets == tmp_path / "env_home" / "datasets"


def test_racing_saves_of_one_name_store_exactly_one(tmp_path):
    store = DatasetStore(tmp_path)
    candidates = [_small(seed=s) for s in range(6)]
    barrier = threading.Barrier(len(candidates), timeout=60)
    saved, refused = [], []

    def save(ds):
        barrier.wait()
        try:
            store.save(ds)
            saved.append(ds.info.content_hash)
        except RaynasError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=save, args=(ds,)) for ds in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(saved) == 1 and len(refused) == len(candidates) - 1
    assert all("dataset 'mine' already exists" in r for r in refused)
    assert store.load("mine", verify=True).info.content_hash == saved[0]
    assert sorted(os.listdir(tmp_path / "datasets")) == ["mine.parquet"]


def test_save_stays_exclusive_on_file_systems_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = DatasetStore(tmp_path)
    store.save(_small(seed=1))
    with pytest.raises(RaynasError, match="already exists"):
        store.save(_small(seed=2))
    assert store.load("mine", verify=True).info.content_hash == _small(seed=1).info.content_hash
    assert sorted(os.listdir(tmp_path / "datasets")) == ["mine.parquet"]
