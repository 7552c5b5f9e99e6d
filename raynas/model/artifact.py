"""A trained model on disk: ``model.safetensors`` (weights, never pickle) and ``model.json``.

``model.json`` (the card) says how to rebuild the network, how to preprocess an image for
it, what its outputs mean (class names), where it came from (dataset and content hash, run
or zoo entry) and the sha256 of the weights. It is written last, so its presence marks a
complete model, and every read checks the weights against it: a changed file is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from raynas import __version__
from raynas.errors import RaynasError
from raynas.model.architectures import ARCHITECTURES, Logits, build_network
from raynas.model.preprocess import Preprocess
from raynas.storage import atomic_write_bytes, atomic_write_text

FORMAT = "raynas-model/1"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
MODEL_DIR = "model"  # the model's folder inside a run directory
MAX_CARD_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelCard:
    """Everything about a trained model except its weights."""

    architecture: str  # a name in ARCHITECTURES: discrete | supernet
    network: dict[str, Any]  # the builder's config (genotype, channels, cells, ... or the supernet's space)
    preprocess: dict[str, Any]  # Preprocess.to_json()
    class_names: tuple[str, ...]
    dataset: dict[str, Any]  # name and content_hash of the dataset it was trained on
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. test_acc
    source: dict[str, Any] = field(default_factory=dict)  # the run or zoo entry it came from
    weights_sha256: str = ""  # set by save_model
    raynas_version: str = __version__
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    format: str = FORMAT

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.architecture not in ARCHITECTURES:
            raise RaynasError(f"unknown model architecture '{self.architecture}'",
                              f"this raynas knows: {', '.join(ARCHITECTURES.names())}")
        if not self.class_names or not all(isinstance(c, str) for c in self.class_names):
            raise RaynasError("a model card needs its class names (strings)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocessing(self) -> Preprocess:
        return Preprocess.from_json(self.preprocess)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_json(cls, d: Any, where: str = "model.json") -> "ModelCard":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RaynasError(f"{where} is not a raynas model card (format {FORMAT})",
                              "give a model directory written by `raynas retrain` or a run directory holding one")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as exc:
            raise RaynasError(f"{where} lacks fields: {exc}", "the model file is damaged; retrain to write it again"
                              ) from None


def save_model(directory: str | Path, network: nn.Module, card: ModelCard) -> ModelCard:
    """Write the weights, then the card naming their sha256 (each atomically). Returns the card written."""
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    data = save_safetensors(state)
    atomic_write_bytes(directory / WEIGHTS_FILE, data)
    written = ModelCard(**{**{f.name: getattr(card, f.name) for f in fields(card)},
                           "weights_sha256": hashlib.sha256(data).hexdigest()})
    atomic_write_text(directory / CARD_FILE, json.dumps(written.to_json(), indent=2))
    return written


def model_dir(path: str | Path) -> Path:
    """The model folder a user means: the folder itself, or a run directory's ``model/``."""
    path = Path(path).expanduser()
    for candidate in (path, path / MODEL_DIR):
        if (candidate / CARD_FILE).is_file():
            return candidate
    if not path.exists():
        raise RaynasError(f"{path} not found", "give a run directory, a model directory or zoo:NAME")
    if path.is_dir() and (path / "genotype.json").is_file():
        raise RaynasError(f"run {path} has no trained model yet (the search found an architecture but did not "
                          "retrain it)", f"train it: raynas retrain {path}")
    raise RaynasError(f"{path} holds no raynas model ({CARD_FILE})",
                      "give a run directory after `raynas retrain`, a model directory or zoo:NAME")


def read_card(directory: str | Path) -> ModelCard:
    path = Path(directory) / CARD_FILE
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_CARD_BYTES:
            raise RaynasError(f"{path} is {len(raw):,} bytes, not a model card", "retrain to write it again")
        return ModelCard.from_json(json.loads(raw), str(path))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RaynasError(f"cannot read {path}: {exc}", "retrain to write the model again") from None


def read_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[Logits, ModelCard]:
    """The network of a model folder in eval mode, after checking its weights against the card."""
    directory = Path(directory)
    card = read_card(directory)
    path = directory / WEIGHTS_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RaynasError(f"cannot read {path}: {exc}", "retrain to write the model again") from None
    if hashlib.sha256(data).hexdigest() != card.weights_sha256:
        raise RaynasError(f"{path} does not match the sha256 in {CARD_FILE} (the file was changed or damaged); "
                          "refusing to load it", "retrain to write the model again")
    try:
        state = load_safetensors(data)
    except SafetensorError as exc:
        raise RaynasError(f"{path} is not a safetensors file ({exc})", "retrain to write the model again") from None
    return network_from_state(card, state, str(path), device), card


def network_from_state(card: ModelCard, state: dict[str, torch.Tensor], where: str,
                       device: str | torch.device = "cpu") -> Logits:
    """Build the card's network, load ``state`` into it (all of it, finite) and wrap it for inference."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RaynasError(f"{where}: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])})",
                          "the training diverged or the file is damaged; retrain")
    network = build_network(card.architecture, card.network)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = " ".join(str(exc).strip().splitlines()[:2])
        raise RaynasError(f"{where} does not fit the network its card describes: {first}",
                          "the model file is damaged; retrain to write it again") from None
    bare = getattr(network, "supernet", network)  # a calibrated supernet wraps the supernet
    head = bare.heads[bare.active] if hasattr(bare, "heads") else bare.classifier
    if head.out_features != card.num_classes:
        raise RaynasError(f"{where}: the network has {head.out_features} outputs but the card names "
                          f"{card.num_classes} classes", "the model file is damaged; retrain to write it again")
    return Logits(network).to(device).eval()
