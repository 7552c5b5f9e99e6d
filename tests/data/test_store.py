"""The dataset store and the built-in offline suite."""

import dataclasses
import errno
import itertools
import os
import threading
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from raynas.data import DatasetStore, make_dataset
from raynas.data.builtin import BUILTINS
from raynas.data.builtin.glyphs import GREEK, font_dir
from raynas.data.splits import SPLITS
from raynas.errors import RaynasError

ORIGINAL = ["digits", "mnist5k", "mnist5k-rot", "mnist5k-inv", "glyph-digits", "glyph-upper", "glyph-lower",
            "glyph-greek", "textures", "photo-patches", "lfw-faces"]
# name -> (domain, classes, images, channels, allow_flip) of the sets that grew the suite (all 32x32)
ADDED = {
    "scene-regions": ("natural textures", 5, 800, 3, True),
    "chess-pieces": ("pictograms", 12, 720, 1, False),
    "card-suits": ("pictograms", 8, 624, 1, False),
    "dice-faces": ("pictograms", 6, 630, 1, False),
    "zodiac-signs": ("pictograms", 12, 720, 1, False),
    "weather-symbols": ("pictograms", 10, 600, 1, False),
    "math-operators": ("math symbols", 16, 1120, 1, False),
    "math-relations": ("math symbols", 23, 1288, 1, False),
    "math-arrows": ("math symbols", 19, 1064, 1, False),
    "shape-types": ("shapes", 8, 1200, 1, True),
    "shape-counts": ("shapes", 6, 1200, 3, True),
    "shape-relations": ("shapes", 4, 1000, 3, False),
    "gratings": ("procedural textures", 8, 1200, 1, False),
    "noise-spectra": ("procedural textures", 6, 1200, 1, True),
    "texture-types": ("procedural textures", 8, 1200, 3, True),
    "plot-markers": ("plot marks", 17, 1190, 3, False),
    "plot-hatches": ("plot marks", 10, 1200, 3, False),
    "plot-linestyles": ("plot marks", 6, 1020, 3, True),
    "pen-digits": ("handwriting", 10, 1500, 1, False),
    "pen-letters": ("handwriting", 10, 1500, 1, False),
}
BUILT = ORIGINAL + list(ADDED)
SHIFTED = {"mnist5k-rot", "mnist5k-inv"}  # transforms of mnist5k's images: built, but not in the suite


@pytest.fixture(scope="module")
def suite(suite_home):
    return {i.name: i for i in DatasetStore(suite_home).infos()}


def _small(name="mine", n=6, seed=0):
    images = np.random.default_rng(seed).integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    return make_dataset(name, images, np.arange(n) % 2, ["a", "b"], domain="t")


def test_the_builtin_suite_is_complete(suite):
    assert list(suite) == BUILT == list(BUILTINS)
    members = [n for n in BUILTINS if BUILTINS.get(n).suite]
    assert len(members) == 29 and set(BUILT) - set(members) == SHIFTED
    domains = Counter(suite[n].domain for n in members)
    assert sum(count >= 3 for count in domains.values()) >= 8, domains  # Meta-Album-shaped: 8+ domains of 3+ sets
    assert {"handwriting", "printed glyphs", "natural textures", "faces", "pictograms", "math symbols", "shapes",
            "procedural textures", "plot marks"} == set(domains)


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


def test_the_original_sets_keep_their_seeds_and_versions():
    assert [BUILTINS.get(n).seed for n in ORIGINAL] == [0, 0, 11, 12, 21, 22, 23, 24, 31, 32, 0]
    assert {BUILTINS.get(n).version for n in ORIGINAL} == {"2"}


def test_the_added_sets_have_their_shapes_and_class_counts(suite_home, suite):
    store = DatasetStore(suite_home)
    for name, (domain, classes, images, channels, flip) in ADDED.items():
        info = suite[name]
        assert (info.domain, info.num_classes, info.num_images, info.shape, info.allow_flip) == (
            domain, classes, images, (channels, 32, 32), flip), name
        assert 600 <= info.num_images <= 2000 and 2 <= info.num_classes <= 30, name
        assert np.bincount(store.load(name).labels, minlength=classes).min() >= 30, name
        assert info.provenance["seed"] == BUILTINS.get(name).seed, name
    seeds = [BUILTINS.get(n).seed for n in BUILT if BUILTINS.get(n).seed]
    assert len(seeds) == len(set(seeds))  # no two sets share a random stream


def test_sets_of_one_domain_differ_in_classes_or_source(suite):
    """Sets of a domain may not be one set under two names: each has its own classes or its own source.
    The two shifted MNIST variants (same images, transformed) are therefore kept out of the suite."""
    shifted = {name for name, info in suite.items() if "shift" in info.provenance}
    assert shifted == SHIFTED and not any(BUILTINS.get(n).suite for n in shifted)
    for a, b in itertools.combinations([i for i in suite.values() if BUILTINS.get(i.name).suite], 2):
        if a.domain == b.domain:
            assert (a.class_names, a.provenance["source"]) != (b.class_names, b.provenance["source"]), (a.name, b.name)
    for name in ADDED:
        differs = suite[name].provenance["differs"]
        siblings = [i for i in suite.values() if i.domain == suite[name].domain and i.name != name]
        assert len(differs) > 40 and all(differs != i.provenance.get("differs") for i in siblings), name
        assert suite[name].provenance["description"] == BUILTINS.get(name).description


def test_the_classes_of_the_added_sets_differ(suite_home):
    store = DatasetStore(suite_home)
    for name in ADDED:
        ds = store.load(name)
        x = ds.images.reshape(len(ds.images), -1).astype(np.float64)
        means = np.stack([x[ds.labels == c].mean(axis=0) for c in range(ds.info.num_classes)])
        for i, j in itertools.combinations(range(len(means)), 2):
            assert np.sqrt(np.mean((means[i] - means[j]) ** 2)) > 1.0, (name, ds.info.class_names[i],
                                                                       ds.info.class_names[j])
        seen = {}
        for image, label in zip(ds.images, ds.labels):  # no image is drawn for two classes
            assert seen.setdefault(image.tobytes(), label) == label, name


def _orientation_and_slope(images):
    """The dominant orientation (degrees, of the wave vector, y down) and the spectral slope of the
    images' mean power spectrum."""
    x = images[:, 0].astype(np.float64)
    power = (np.abs(np.fft.fft2(x - x.mean(axis=(1, 2), keepdims=True))) ** 2).mean(axis=0)
    fx, fy = np.meshgrid(np.fft.fftfreq(x.shape[2]), np.fft.fftfreq(x.shape[1]))
    theta, radius = np.arctan2(fy, fx), np.hypot(fx, fy)
    angle = np.degrees(np.arctan2((power * np.sin(2 * theta)).sum(), (power * np.cos(2 * theta)).sum())) / 2 % 180
    band = (radius > 0.05) & (radius < 0.4)
    return angle, -np.polyfit(np.log(radius[band]), np.log(power[band]), 1)[0]


def test_procedural_texture_classes_are_what_their_names_say(suite_home):
    store = DatasetStore(suite_home)
    ds = store.load("gratings")
    for c, name in enumerate(ds.info.class_names):
        angle, _ = _orientation_and_slope(ds.images[ds.labels == c])
        assert abs((angle - float(name.split()[0]) + 90) % 180 - 90) < 3, (name, angle)
    ds = store.load("noise-spectra")
    for c, name in enumerate(ds.info.class_names):
        _, slope = _orientation_and_slope(ds.images[ds.labels == c])
        assert abs(slope - float(name.split()[1])) < 0.15, (name, slope)


def test_the_added_builders_are_deterministic(suite_home):
    store = DatasetStore(suite_home)
    for name in ("card-suits", "shape-counts", "texture-types", "plot-linestyles", "scene-regions", "pen-letters"):
        a, b = BUILTINS.get(name).build(), BUILTINS.get(name).build()
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.images, store.load(name).images)  # and the suite's copy is the same
        assert a.class_names == b.class_names and a.provenance == b.provenance


def _rendering(char, font_name):
    """The tight crop of one character as PIL draws it (size, pixels), None if nothing is drawn."""
    font = ImageFont.truetype(str(font_dir() / font_name), size=48)
    img = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(img).text((48, 48), char, fill=255, font=font, anchor="mm")
    box = img.getbbox()
    return None if box is None else (img.crop(box).size, img.crop(box).tobytes())


def test_every_font_rendered_class_is_a_real_glyph(suite):
    """A font without a character draws its .notdef box (DejaVu) or nothing (STIX): the same as for a
    code point that Unicode leaves unassigned."""
    unassigned = "\u0378"
    assert _rendering("\u2654", "DejaVuSerif.ttf") == _rendering(unassigned, "DejaVuSerif.ttf") is not None
    assert _rendering("\u2654", "STIXGeneral.ttf") is None  # the check sees both ways of missing a glyph
    greek = dict(GREEK)
    checked = []
    for info in suite.values():
        if "fonts" not in info.provenance:
            continue
        if "characters" in info.provenance:
            chars = [chr(int(code[2:], 16)) for code in info.provenance["characters"]]
        else:
            chars = [greek.get(name, name) for name in info.class_names]
        assert len(chars) == info.num_classes and all(len(c) == 1 for c in chars), info.name
        for font_name in info.provenance["fonts"]:
            notdef = _rendering(unassigned, font_name)
            for char in chars:
                drawn = _rendering(char, font_name)
                assert drawn is not None and drawn != notdef, (info.name, font_name, f"U+{ord(char):04X}")
        checked.append(info.name)
    assert checked == [n for n in BUILT if n.startswith("glyph-")] + [
        n for n, spec in ADDED.items() if spec[0] in ("pictograms", "math symbols")]


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
    assert store.names() == BUILT + ["alpha", "zeta"]  # built-ins first, then imports by name
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
        assert all(name in message for name in BUILT + ["mine"])


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


@pytest.mark.parametrize("name", ["pen-digits", "pen-letters"])
def test_the_pen_written_sets_are_learnable_at_8x8(suite_home, name):
    """The tiny preset sees 8x8 inputs: a linear model on 8x8 pixels must tell the classes apart
    well above chance (10%), without the set being trivial."""
    from sklearn.linear_model import LogisticRegression

    ds = DatasetStore(suite_home).load(name)
    small = ds.images[:, 0].reshape(len(ds.images), 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(ds.images), -1) / 255
    train, test = ds.splits == "train", ds.splits == "test"
    accuracy = LogisticRegression(max_iter=3000).fit(small[train], ds.labels[train]).score(small[test], ds.labels[test])
    assert 0.6 < accuracy < 0.99, accuracy
