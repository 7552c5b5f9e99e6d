"""Encoders: the pixel and edge PCAs (fitted once, stored, versioned) and ResNet-18 (never downloaded here)."""

import hashlib
import json
import re

import numpy as np
import pytest
import torch

from raynas.data.builtin import BUILTINS
from raynas.errors import RaynasError
from raynas.ot import ENCODERS, Encoder, create_encoder
from raynas.ot import encoders as encoders_mod
from raynas.ot.encoders import ENCODER_DIR, PCA_POOL, edge_features, fit_pca
from raynas.storage import Storage


def _images(n, c, h, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, h), dtype=np.uint8)


def test_registry_lists_the_builtin_encoders():
    assert {"pixels", "edges", "resnet18", "supernet"} <= set(ENCODERS.names())
    with pytest.raises(RaynasError, match="unknown encoder 'pixel'") as err:
        create_encoder("pixel", storage=Storage("unused"))
    assert "did you mean 'pixels'" in err.value.fix


def test_the_help_strings_name_every_registered_encoder():
    """The command line lists the encoders by hand (it does not import the registry, to start fast)."""
    import dataclasses

    from raynas.cli import build_parser
    from raynas.search.config import SearchConfig

    distance = build_parser()._subparsers._group_actions[0].choices["distance"]
    helps = {"raynas distance --encoder": next(a.help for a in distance._actions if "--encoder" in a.option_strings),
             "SearchConfig.encoder": next(f.metadata["help"] for f in dataclasses.fields(SearchConfig)
                                          if f.name == "encoder")}
    for where, text in helps.items():
        missing = [name for name in ENCODERS.names() if not re.search(rf"\b{re.escape(name)}\b", text)]
        assert not missing, f"{where} does not name {missing}"


def test_the_pixel_pca_is_stored_and_versioned_by_its_bytes(pixel_encoder, ot_storage):
    assert isinstance(pixel_encoder, Encoder) and pixel_encoder.dim == 64
    stored = ot_storage.listdir(ENCODER_DIR, dirs=False)
    assert stored == ["pixels-16px-pca64.safetensors"]
    data = ot_storage.read_bytes(ENCODER_DIR, stored[0])
    assert re.fullmatch(r"pixels-16px-pca64-[0-9a-f]{8}", pixel_encoder.version)
    assert pixel_encoder.version.endswith(hashlib.sha256(data).hexdigest()[:8])

    size = int.from_bytes(data[:8], "little")  # safetensors: 8-byte header length, JSON header, tensors
    meta = json.loads(json.loads(data[8:8 + size])["__metadata__"]["raynas"])
    assert meta["format"] == "raynas-pca/1" and (meta["image_size"], meta["dim"]) == ("16", "64")
    assert sorted(json.loads(meta["datasets"])) == sorted(PCA_POOL)  # the pool's datasets and their hashes
    assert set(PCA_POOL) < set(BUILTINS) and len(PCA_POOL) == 11  # the original suite, not every built-in

    from safetensors.numpy import load
    arrays = load(data)
    assert arrays["mean"].shape == (768,) and arrays["components"].shape == (64, 768)
    comps = arrays["components"].astype(np.float64)
    assert np.allclose(comps @ comps.T, np.eye(64), atol=1e-5)  # orthonormal axes
    peaks = comps[np.arange(64), np.abs(comps).argmax(axis=1)]
    assert np.all(peaks > 0)  # sign rule: the largest-|entry| of each axis is positive


def test_a_stored_pca_is_reused_without_refitting(pixel_encoder, ot_storage, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("refitted although a PCA is stored")

    monkeypatch.setattr(encoders_mod, "reference_pool", no_fit)
    again = create_encoder("pixels", storage=ot_storage, home=None)
    assert again.version == pixel_encoder.version
    x = _images(5, 3, 20)
    assert np.array_equal(again.encode(x), pixel_encoder.encode(x))


def test_fitting_is_deterministic_and_options_reach_the_factory(suite_home, tmp_path):
    a = create_encoder("pixels", storage=Storage(tmp_path / "a"), home=suite_home, image_size=8, dim=16)
    b = create_encoder("pixels", storage=Storage(tmp_path / "b"), home=suite_home, image_size=8, dim=16)
    assert re.fullmatch(r"pixels-8px-pca16-[0-9a-f]{8}", a.version)
    assert a.version == b.version and a.dim == 16  # same bytes, although fitted twice
    assert (tmp_path / "a" / ENCODER_DIR / "pixels-8px-pca16.safetensors").is_file()


def test_the_pca_pool_is_fixed_when_the_suite_grows(suite_home, monkeypatch):
    """The pool is the original eleven sets: a built-in added later neither enters the fit (which
    would change every embedding version) nor is built by it."""
    from raynas.data import DatasetStore
    from raynas.data.builtin import BuiltinSpec

    def never():
        raise AssertionError("the PCA pool built a set outside PCA_POOL")

    monkeypatch.setitem(BUILTINS._items, "zz-added", BuiltinSpec("zz-added", "new", "a set added later", never))
    loaded, real_load = [], DatasetStore.load
    monkeypatch.setattr(DatasetStore, "load", lambda self, name, verify=False: loaded.append(name)
                        or real_load(self, name, verify))
    pool, hashes = encoders_mod.reference_pool(suite_home, 8, 5)
    assert loaded == list(hashes) == list(PCA_POOL) and len(pool) > 0
    assert all(hashes[n] == DatasetStore(suite_home).info(n).content_hash for n in PCA_POOL)


@pytest.mark.parametrize("shape", [(7, 1, 8, 8), (3, 3, 32, 32), (4, 1, 28, 28), (1, 3, 5, 5)])
def test_pixels_accept_any_channels_and_size(pixel_encoder, shape):
    n, c, h, _ = shape
    feats = pixel_encoder.encode(_images(n, c, h))
    assert feats.shape == (n, 64) and feats.dtype == np.float32 and np.isfinite(feats).all()


def test_gray_equals_the_same_image_in_three_equal_channels(pixel_encoder):
    gray = _images(6, 1, 16)
    rgb = np.repeat(gray, 3, axis=1)
    assert np.allclose(pixel_encoder.encode(gray), pixel_encoder.encode(rgb), atol=1e-5)


def test_pixel_features_are_the_pca_projection(pixel_encoder):
    x = _images(10, 3, 16)
    flat = x.reshape(10, -1).astype(np.float64) / 255.0
    expected = (flat - pixel_encoder.mean) @ pixel_encoder.components.T.astype(np.float64)
    assert np.allclose(pixel_encoder.encode(x), expected, atol=1e-4)


def test_bad_images_are_refused(pixel_encoder):
    with pytest.raises(RaynasError, match="uint8 images"):
        pixel_encoder.encode(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(RaynasError, match="uint8 images"):
        pixel_encoder.encode(np.zeros((8, 8), np.uint8))


def test_fit_pca_orders_axes_by_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 5)) * np.array([5.0, 1.0, 3.0, 0.1, 0.5])
    mean, comps = fit_pca(x, 3)
    assert np.allclose(mean, x.mean(0))
    assert np.argmax(np.abs(comps), axis=1).tolist() == [0, 2, 1]
    variances = ((x - mean) @ comps.T).var(axis=0)
    assert np.all(np.diff(variances) < 0)


def test_a_damaged_stored_pca_is_reported(tmp_path):
    storage = Storage(tmp_path)
    storage.write_bytes(b"not safetensors", ENCODER_DIR, "pixels-16px-pca64.safetensors")
    with pytest.raises(RaynasError, match="cannot read the fitted PCA .*pixels-16px-pca64.safetensors") as err:
        create_encoder("pixels", storage=storage)
    assert "delete the file" in err.value.fix


def test_an_impossible_pca_size_is_refused(tmp_path):
    with pytest.raises(RaynasError, match="impossible"):
        create_encoder("pixels", storage=Storage(tmp_path), image_size=4, dim=100)


# -- edges ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edge_encoder(ot_storage, suite_home):
    return create_encoder("edges", storage=ot_storage, home=suite_home)


def test_the_edge_pca_is_stored_beside_the_pixel_one(edge_encoder, ot_storage):
    assert re.fullmatch(r"edges-16px-pca64-[0-9a-f]{8}", edge_encoder.version) and edge_encoder.dim == 64
    data = ot_storage.read_bytes(ENCODER_DIR, "edges-16px-pca64.safetensors")
    assert edge_encoder.version.endswith(hashlib.sha256(data).hexdigest()[:8])
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8:8 + size])["__metadata__"]["raynas"])
    assert (meta["channels"], meta["image_size"]) == ("1", "16")  # one grey gradient map of 16x16
    assert edge_encoder.components.shape == (64, 256)


def test_edges_are_blind_to_polarity_and_see_only_where_intensity_changes(edge_encoder):
    x = _images(6, 1, 28)
    assert np.allclose(edge_encoder.encode(x), edge_encoder.encode(255 - x), atol=1e-5)
    flat = np.full((2, 3, 16, 16), 90, np.uint8)
    assert np.allclose(edge_features(torch.from_numpy(flat), 16), 0)  # no edge anywhere in a flat image
    step = np.zeros((1, 1, 16, 16), np.uint8)
    step[..., 8:] = 255  # a vertical edge between columns 7 and 8
    columns = edge_features(torch.from_numpy(step), 16).reshape(16, 16)[0]
    assert columns[7] > 0.4 and columns[8] > 0.4 and columns[:6].abs().max() == 0 and columns[10:].abs().max() == 0


def test_edges_rank_a_negative_digit_set_next_to_its_positive(edge_encoder, pixel_encoder, suite_home, ot_storage):
    from raynas.data import DatasetStore
    from raynas.ot import EmbeddingStore, rank_sources

    datasets, store = DatasetStore(suite_home), EmbeddingStore(ot_storage)
    sources = ["mnist5k", "textures", "lfw-faces", "glyph-upper"]

    def nearest(encoder):
        target = store.ensure(datasets.load("mnist5k-inv"), encoder)
        ranking = rank_sources(target, [store.ensure(datasets.load(n), encoder) for n in sources])
        return ranking.names()[0]

    assert nearest(pixel_encoder) == "textures"  # dark ground in both: the pixel encoder's known miss
    assert nearest(edge_encoder) == "mnist5k"


# -- ResNet-18 -------------------------------------------------------------------------------------

@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


def test_resnet18_without_weights_says_where_to_put_them(torch_home, tmp_path):
    with pytest.raises(RaynasError) as err:
        create_encoder("resnet18", storage=Storage(tmp_path))
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in err.value.problem and "network is unreachable" in err.value.problem
    assert str(expected.parent) in err.value.fix and "--encoder pixels" in err.value.fix
    assert not expected.exists()


def _save_random_resnet18(path, seed):
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet18(weights=None).state_dict(), path)


def test_resnet18_uses_local_weights(torch_home, tmp_path):
    weights = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    _save_random_resnet18(weights, seed=0)
    enc = create_encoder("resnet18", storage=Storage(tmp_path), image_size=32)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:8]
    assert enc.dim == 512 and enc.version == f"resnet18-imagenet-32px-{digest}"
    gray, rgb = enc.encode(_images(3, 1, 8)), enc.encode(_images(2, 3, 40))
    assert gray.shape == (3, 512) and rgb.shape == (2, 512) and gray.dtype == np.float32
    assert np.isfinite(gray).all() and np.all(gray >= 0)  # pooled ReLU features
    assert np.array_equal(enc.encode(_images(3, 1, 8)), gray)  # eval mode: deterministic

    _save_random_resnet18(weights, seed=1)  # other weights, other feature space
    assert create_encoder("resnet18", storage=Storage(tmp_path), image_size=32).version != enc.version


def test_resnet18_damaged_weights_are_reported(torch_home, tmp_path):
    weights = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"truncated")
    with pytest.raises(RaynasError, match="cannot read the ResNet-18 weights"):
        create_encoder("resnet18", storage=Storage(tmp_path))
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    with pytest.raises(RaynasError, match="do not fit torchvision's ResNet-18"):
        create_encoder("resnet18", storage=Storage(tmp_path))


def test_supernet_encoder_uses_the_newest_multi_dataset_supernet(suite_home, tmp_path):
    from raynas.data import DatasetStore
    from raynas.ot.embedding import EmbeddingConfig, embed_dataset
    from raynas.ot.distances import dataset_distance
    from raynas.space.config import PRESETS
    from raynas.space.multihead import create_multihead_supernet
    from raynas.storage import Storage
    from raynas.zoo.manifest import ZooManifest
    from raynas.zoo.store import Zoo, state_to_numpy

    storage = Storage(tmp_path / "embeddings")
    zoo = Zoo(tmp_path / "zoo")
    with pytest.raises(RaynasError, match="needs a multi-dataset supernet"):
        create_encoder("supernet", storage=storage, zoo=zoo)
    with pytest.raises(RaynasError, match="needs the zoo"):
        create_encoder("supernet", storage=storage)
    space = PRESETS.get("tiny").space(in_channels=3, num_classes=10)
    model = create_multihead_supernet(space, [10, 6], seed=0)
    zoo.publish(ZooManifest(name="mix", kind="multi", sources=[{"name": "digits", "content_hash": "a", "classes": 10},
                                                               {"name": "textures", "content_hash": "b", "classes": 6}],
                            space=space.to_json(), algo="darts", epochs=1, val_acc=0.5),
                state_to_numpy(model.state_dict()))
    encoder = create_encoder("supernet", storage=storage, zoo=zoo)
    assert encoder.version.startswith("supernet-mix-") and encoder.dim == model.feature_dim == 48
    store = DatasetStore(suite_home)
    digits = store.load("digits")
    features = encoder.encode(digits.images[:40])
    assert features.shape == (40, 48) and np.isfinite(features).all()
    np.testing.assert_array_equal(features, encoder.encode(digits.images[:40]))  # deterministic
    config = EmbeddingConfig(max_images=300, sample_size=100)
    a = embed_dataset(digits, encoder, config)
    b = embed_dataset(store.load("glyph-digits"), encoder, config)
    assert dataset_distance(a, a) == 0.0 and dataset_distance(a, b) > 0
    with pytest.raises(RaynasError, match="zoo entry 'nope' not found"):
        create_encoder("supernet", storage=storage, zoo=zoo, source="nope")
    assert create_encoder("pixels", storage=storage, home=suite_home, zoo=zoo).name == "pixels"  # zoo not needed
