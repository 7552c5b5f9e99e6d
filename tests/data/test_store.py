import numpy as np
import pytest

from raynas.data import DatasetStore, make_dataset
from raynas.data.builtin import BUILTINS
from raynas.errors import RaynasError

SUITE = ["digits", "mnist5k", "mnist5k-rot", "mnist5k-inv", "glyph-digits", "glyph-upper", "glyph-lower",
         "glyph-greek", "textures", "photo-patches", "lfw-faces"]


def test_the_builtin_suite(suite_home):
    infos = {i.name: i for i in DatasetStore(suite_home).infos()}
    assert list(infos) == SUITE
    assert {i.domain for i in infos.values()} == {"handwriting", "printed glyphs", "natural textures", "faces"}
    assert all(i.num_images >= 200 for i in infos.values())
    assert infos["digits"].shape == (1, 8, 8) and infos["digits"].num_images == 1797
    assert infos["mnist5k"].shape == (1, 28, 28) and infos["mnist5k"].num_images == 5000
    assert infos["photo-patches"].shape[0] == 3
    assert infos["glyph-greek"].num_classes == 24
    assert not infos["glyph-upper"].allow_flip and infos["textures"].allow_flip


def test_builds_are_deterministic(tmp_path):
    a, b = DatasetStore(tmp_path / "a"), DatasetStore(tmp_path / "b")
    for name in ("lfw-faces", "glyph-digits"):
        assert a.info(name).content_hash == b.info(name).content_hash


def test_stale_or_damaged_builtin_is_rebuilt(tmp_path):
    store = DatasetStore(tmp_path)
    good = store.info("lfw-faces").content_hash
    store.path("lfw-faces").write_bytes(b"damaged")
    assert store.info("lfw-faces").content_hash == good


def test_save_refuses_existing_and_builtin_names(tmp_path):
    store = DatasetStore(tmp_path)
    ds = make_dataset("mine", np.zeros((6, 1, 4, 4), np.uint8), np.arange(6) % 2, ["a", "b"], domain="t")
    store.save(ds)
    with pytest.raises(RaynasError, match="--overwrite"):
        store.save(ds)
    store.save(ds, overwrite=True)
    assert "mine" in store.names()
    builtin = make_dataset("digits", np.zeros((6, 1, 4, 4), np.uint8), np.arange(6) % 2, ["a", "b"], domain="t")
    with pytest.raises(RaynasError, match="built-in"):
        store.save(builtin)


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(RaynasError, match="not found") as err:
        DatasetStore(tmp_path).info("nope")
    assert "digits" in str(err.value) and "raynas data import" in str(err.value)


def test_builtin_registry_specs():
    assert 8 <= len(BUILTINS) <= 12
