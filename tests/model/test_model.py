"""The trained model as an artifact: written by retrain, loaded with its checks, preprocessed
like the training data, resumable, and loadable from the zoo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import raynas
from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.model.artifact import CARD_FILE, WEIGHTS_FILE, model_dir, read_card
from raynas.model.preprocess import Preprocess
from raynas.space.config import SpaceConfig
from raynas.space.supernet import create_supernet
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import Zoo, state_to_numpy

from tests.model.conftest import GENOTYPE


def _test_split(home, name="glyph-digits"):
    return DatasetStore(home).load(name).split("test")


def test_retrain_writes_a_model_that_scores_what_retrain_reported(trained_run, suite_home):
    result = json.loads((trained_run / "retrain.json").read_text())
    card = read_card(trained_run / "model")
    assert card.architecture == "discrete" and card.network["genotype"] == GENOTYPE
    assert card.class_names == tuple(DatasetStore(suite_home).info("glyph-digits").class_names)
    assert card.dataset == {"name": "glyph-digits",
                            "content_hash": DatasetStore(suite_home).info("glyph-digits").content_hash}
    assert len(card.weights_sha256) == 64 and result["model"]["weights_sha256"] == card.weights_sha256
    assert not (trained_run / "retrain-checkpoint").exists()  # the model replaces it

    model, preprocess = raynas.load_model(trained_run)
    assert not model.training and model.class_names == card.class_names
    x, y = _test_split(suite_home)
    with torch.no_grad():
        acc = float((model(preprocess.batch(x)).argmax(1).numpy() == y).mean())
    assert acc == pytest.approx(result["test_acc"], abs=1e-9)


def test_preprocess_gives_the_stored_images_tensor_for_every_kind_of_input(trained_run, suite_home, tmp_path):
    _, preprocess = raynas.load_model(trained_run / "model")
    x, _ = _test_split(suite_home)
    want = preprocess.batch(x[:1])[0]
    gray = x[0, 0]
    path = tmp_path / "img.png"
    Image.fromarray(gray).save(path)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for image in (Image.fromarray(gray), gray, rgb, rgb.transpose(2, 0, 1), path, str(path), path.read_bytes()):
        got = preprocess(image)
        assert got.shape == (1, 16, 16) and torch.equal(got, want)
    # a larger, non-square photo is centre-cropped and resized like the import does
    big = Image.fromarray(np.kron(gray, np.ones((3, 3), np.uint8))).crop((-6, 0, 96, 96))
    assert preprocess(big).shape == (1, 16, 16)


@pytest.mark.parametrize("image, message", [
    (np.zeros((4, 4), np.float32), "must be uint8"),
    (np.zeros((2, 3, 4, 4), np.uint8), "must be H x W"),
    (b"not an image", "cannot read image"),
    ("missing.png", "cannot read image"),
    (3.5, "cannot preprocess a float"),
])
def test_preprocess_refuses_what_is_not_an_image(trained_run, image, message):
    _, preprocess = raynas.load_model(trained_run)
    with pytest.raises(RaynasError, match=message):
        preprocess(image)


def test_a_changed_weights_file_or_card_is_refused(model_copy):
    weights = model_copy / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(RaynasError, match="does not match the sha256"):
        raynas.load_model(model_copy)
    card = model_copy / "model" / CARD_FILE
    card.write_text("{not json")
    with pytest.raises(RaynasError, match="cannot read"):
        raynas.load_model(model_copy)
    card.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(RaynasError, match="not a raynas model card"):
        raynas.load_model(model_copy)


def test_a_card_that_does_not_fit_its_weights_is_refused(model_copy):
    card_path = model_copy / "model" / CARD_FILE
    card = json.loads(card_path.read_text())
    card["network"]["channels"] = 8
    card_path.write_text(json.dumps(card))
    with pytest.raises(RaynasError, match="does not fit the network"):
        raynas.load_model(model_copy)


def test_a_run_without_a_model_says_to_retrain(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "genotype.json").write_text(json.dumps(GENOTYPE))
    with pytest.raises(RaynasError, match="no trained model") as info:
        model_dir(tmp_path / "run")
    assert "raynas retrain" in info.value.fix
    with pytest.raises(RaynasError, match="not found"):
        raynas.load_model(tmp_path / "nowhere")


def test_a_killed_retrain_continues_from_its_last_epoch_and_ends_where_an_unbroken_one_does(suite_home, tmp_path,
                                                                                          monkeypatch):
    from raynas.search import retrain as retrain_module
    from raynas.search.retrain import RETRAIN_CHECKPOINT, RetrainConfig, retrain
    from raynas.space.genotype import Genotype

    genotype, store = Genotype.from_json(GENOTYPE), DatasetStore(suite_home)
    config = RetrainConfig(dataset="glyph-digits", epochs=3, channels=4, cells=3, image_size=16, threads=1,
                           max_steps_per_epoch=4)
    whole = retrain(genotype, config, store, tmp_path / "whole", verbose=False)

    evaluate, calls = retrain_module.evaluate, []

    def killed_in_epoch_two(model, loader):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(model, loader)

    monkeypatch.setattr(retrain_module, "evaluate", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        retrain(genotype, config, store, tmp_path / "broken", verbose=False)
    assert (tmp_path / "broken" / RETRAIN_CHECKPOINT).is_dir() and not (tmp_path / "broken" / "model").exists()
    monkeypatch.setattr(retrain_module, "evaluate", evaluate)
    resumed = retrain(genotype, config, store, tmp_path / "broken", verbose=False)
    assert [h["test_acc"] for h in resumed["history"]] == [h["test_acc"] for h in whole["history"]]
    assert resumed["model"]["weights_sha256"] == whole["model"]["weights_sha256"]

    # another config does not continue a foreign checkpoint: it starts over
    monkeypatch.setattr(retrain_module, "evaluate", killed_in_epoch_two)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        retrain(genotype, config, store, tmp_path / "other", verbose=False)
    monkeypatch.setattr(retrain_module, "evaluate", evaluate)
    other = retrain(genotype, RetrainConfig(**{**config.to_json(), "seed": 1}), store, tmp_path / "other",
                    verbose=False)
    assert len(other["history"]) == 3 and other["config"]["seed"] == 1


def test_the_retrain_command_trains_a_bare_genotype_into_a_new_run_folder(suite_home, tmp_path, capsys):
    from raynas.cli import main

    genotype = tmp_path / "g.json"
    genotype.write_text(json.dumps(GENOTYPE))
    out = tmp_path / "out"
    assert main(["retrain", str(genotype), "--dataset", "digits", "--epochs", "1", "--channels", "4", "--cells", "3",
                 "--image-size", "8", "--max-steps", "2", "--home", str(suite_home), "--out", str(out),
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"]["path"] == str(out / "model") and (out / "genotype.json").is_file()
    model, preprocess = raynas.load_model(out)
    assert model.card.dataset["name"] == "digits" and preprocess.input_shape == (1, 8, 8)
    assert main(["retrain", str(genotype), "--dataset", "nope", "--home", str(suite_home)]) == 1
    assert "nope" in capsys.readouterr().err and not list((suite_home / "runs").glob("*retrain-nope*"))


def _publish_supernet(storage, store, name="glyph-digits", kind="single", sources=("glyph-digits",)):
    space = SpaceConfig(in_channels=1, num_classes=10, image_size=16, channels=4, cells=3)
    if kind == "single":
        network = create_supernet(space, seed=0)
    else:
        from raynas.space.multihead import create_multihead_supernet

        network = create_multihead_supernet(space, [store.info(s).num_classes for s in sources], seed=0)
    manifest = ZooManifest(name=name, kind=kind, sources=[
        {"name": s, "content_hash": store.info(s).content_hash, "classes": store.info(s).num_classes}
        for s in sources], space=space.to_json(), algo="darts", epochs=1, val_acc=0.5)
    Zoo(Storage(storage).child("zoo")).publish(manifest, state_to_numpy(network.state_dict()))
    return network


def _calibrated(network, suite_home, dataset, preprocess):
    """The network calibrated independently, as load_model should have: first 1,024 train images."""
    from raynas.data.loader import first_images
    from raynas.space.calibration import calibrate

    store = DatasetStore(suite_home)
    images = first_images(store.path(dataset), store.info(dataset), "train", 1024)
    return calibrate(network, [preprocess.batch(images[i:i + 256]) for i in range(0, len(images), 256)])


def test_a_zoo_supernet_loads_as_a_model_with_its_datasets_head(suite_home, tmp_path):
    store = DatasetStore(suite_home)
    storage = str(tmp_path / "shared")
    network = _publish_supernet(storage, store)
    model, preprocess = raynas.load_model("zoo:glyph-digits", home=suite_home, storage=storage)
    assert model.card.architecture == "supernet" and model.card.source["zoo"] == "glyph-digits"
    assert model.card.network["calibration"]["images"] == 620  # every train image of glyph-digits
    x, _ = _test_split(suite_home)
    inputs = preprocess.batch(x[:8])
    with torch.no_grad():
        out = model(inputs)
        # fixed statistics: an image's logits do not depend on the rest of its batch
        assert torch.allclose(model(inputs[:1]), out[:1], atol=1e-5)
        assert torch.allclose(out, _calibrated(network, suite_home, "glyph-digits", preprocess)(inputs), atol=1e-6)

    multi = _publish_supernet(storage, store, "mix", "multi", ("glyph-digits", "glyph-upper"))
    model, preprocess = raynas.load_model("zoo:mix", dataset="glyph-upper", home=suite_home, storage=storage)
    multi.select(1)
    with torch.no_grad():
        out = model(inputs)
        assert out.shape == (8, 26)
        assert torch.allclose(out, _calibrated(multi, suite_home, "glyph-upper", preprocess)(inputs), atol=1e-6)
    with pytest.raises(RaynasError, match="one head per dataset"):
        raynas.load_model("zoo:mix", home=suite_home, storage=storage)
    with pytest.raises(RaynasError, match="no head for 'digits'"):
        raynas.load_model("zoo:mix", dataset="digits", home=suite_home, storage=storage)
    with pytest.raises(RaynasError, match="classifies 10 classes"):
        raynas.load_model("zoo:glyph-digits", dataset="glyph-upper", home=suite_home, storage=storage)
    with pytest.raises(RaynasError, match="glyph-nope"):
        raynas.load_model("zoo:glyph-nope", home=suite_home, storage=storage)


def test_preprocess_round_trips_through_json():
    p = Preprocess(32, 1, 16, 3, (0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    assert Preprocess.from_json(json.loads(json.dumps(p.to_json()))) == p
    with pytest.raises(RaynasError, match="do not fit 3 channels"):
        Preprocess(32, 1, 16, 3, (0.1,), (1.0,))
