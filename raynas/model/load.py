"""``raynas.load_model``: a run, a model folder or a zoo entry -> (network, preprocess)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raynas.errors import RaynasError
from raynas.model.architectures import Logits
from raynas.model.artifact import ModelCard, model_dir, network_from_state, read_model
from raynas.model.preprocess import Preprocess

ZOO_PREFIX = "zoo:"
CALIBRATION_IMAGES = 1024  # train images whose BatchNorm statistics a zoo supernet is fixed to
CALIBRATION_BATCH = 256


def load_model(source: str | Path, *, dataset: str | None = None, home: str | Path | None = None,
               storage: str | None = None, device: str | torch.device = "cpu") -> tuple[Logits, Preprocess]:
    """The trained network (``nn.Module`` in eval mode: images in, logits out) and the callable
    that turns a PIL image, a uint8 array, image bytes or a path into its input (C x H x W).

    ``source``: a run directory after ``raynas retrain``, a model directory, or ``zoo:NAME``
    (``zoo:NAME@VERSION``) for a zoo supernet, used with the head and preprocessing of
    ``dataset`` (default: the entry's own dataset; a multi-dataset entry needs one of its
    datasets). ``home``/``storage`` locate the zoo and datasets as for the command line.
    The network carries ``.card`` (a :class:`ModelCard`) and ``.class_names``.
    """
    network, card = load_card_and_network(source, dataset=dataset, home=home, storage=storage, device=device)
    return network, card.preprocessing()


def load_card_and_network(source: str | Path, *, dataset: str | None = None, home: str | Path | None = None,
                          storage: str | None = None, device: str | torch.device = "cpu") -> tuple[Logits, ModelCard]:
    text = str(source)
    if text.startswith(ZOO_PREFIX):
        network, card = _from_zoo(text[len(ZOO_PREFIX):], dataset, home, storage, device)
    else:
        network, card = read_model(model_dir(source), device)
        if dataset is not None and dataset != card.dataset.get("name"):
            raise RaynasError(f"the model in {source} was trained on '{card.dataset.get('name')}', not '{dataset}'",
                              "leave out the dataset for a trained model (it is only for zoo:NAME)")
    network.card, network.class_names = card, card.class_names
    return network, card


def zoo_card(name: str, dataset: str | None, home: str | Path | None = None, storage: str | None = None
             ) -> tuple[ModelCard, dict[str, Any], Any]:
    """The card of zoo entry ``name[@version]`` used on ``dataset``, its weights, and the dataset store."""
    from raynas.data.loader import fit_normalization
    from raynas.workspace import Workspace

    name, _, version = name.partition("@")
    if not name:
        raise RaynasError("zoo:NAME needs an entry name", "see `raynas zoo list`")
    workspace = Workspace.open(home, storage, use_actors=False)
    weights, manifest = workspace.zoo.load_weights(name, version or None)
    sources = [s.name for s in manifest.sources]
    if dataset is None:
        if manifest.kind != "single":
            raise RaynasError(f"zoo entry '{name}' holds one head per dataset ({', '.join(sources)})",
                              "pass the dataset whose head to use (--dataset NAME)")
        dataset = sources[0]
    info = workspace.store.info(dataset)
    space = manifest.space_config
    if manifest.kind == "single":
        if info.num_classes != manifest.sources[0].classes:
            raise RaynasError(f"zoo entry '{name}' classifies {manifest.sources[0].classes} classes "
                              f"({sources[0]}), dataset '{dataset}' has {info.num_classes}",
                              f"use it with its own dataset ('{sources[0]}') or one with as many classes")
        network = {"space": space.to_json(), "class_counts": None}
    else:
        if dataset not in sources:
            raise RaynasError(f"zoo entry '{name}' has no head for '{dataset}'",
                              f"choose one of its datasets: {', '.join(sources)}")
        network = {"space": space.to_json(), "class_counts": [s.classes for s in manifest.sources],
                   "head": sources.index(dataset)}
    normalize = fit_normalization(dataset, space.image_size, space.in_channels, workspace.store)
    preprocess = Preprocess(info.shape[1], info.shape[0], space.image_size, space.in_channels,
                            normalize.mean, normalize.std)
    card = ModelCard("supernet", network, preprocess.to_json(), info.class_names,
                     {"name": dataset, "content_hash": info.content_hash},
                     {"val_acc": manifest.val_acc} if manifest.kind == "single" else {},
                     {"zoo": name, "version": manifest.version, "kind": manifest.kind},
                     weights_sha256=manifest.weights_sha256)
    return card, weights, workspace.store


def _from_zoo(name: str, dataset: str | None, home: str | Path | None, storage: str | None,
              device: str | torch.device) -> tuple[Logits, ModelCard]:
    """The zoo supernet with its weights, calibrated on the dataset's first train images."""
    from raynas.data.loader import first_images
    from raynas.space.calibration import calibrate

    card, weights, store = zoo_card(name, dataset, home, storage)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    supernet = network_from_state(card, state, f"zoo entry '{name}'").network
    images = first_images(store.local_path(card.dataset["name"]), store.info(card.dataset["name"]), "train",
                          CALIBRATION_IMAGES)
    preprocess = card.preprocessing()
    calibrated = calibrate(supernet, (preprocess.batch(images[i:i + CALIBRATION_BATCH])
                                      for i in range(0, len(images), CALIBRATION_BATCH)))
    network = {**card.network, "calibration": {"channels": calibrated.channels, "images": len(images),
                                               "split": "train"}}
    card = replace(card, network=network)
    return Logits(calibrated).to(device).eval(), card
