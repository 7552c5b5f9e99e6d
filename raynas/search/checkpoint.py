"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A nested state (model state_dict, optimiser and scheduler states, RNG states, epoch,
history) is split into a flat ``{path: tensor}`` dict and a JSON skeleton that refers to
the tensors by path. The JSON is written last, names the tensor file and records its
sha256, so a checkpoint interrupted mid-write leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from raynas.errors import RaynasError
from raynas.storage import atomic_write_text

_TENSOR = "__tensor__"
TENSORS_FILE = "checkpoint.safetensors"  # the name before tensor files were content-addressed
META_FILE = "checkpoint.json"


def split_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """Replace every tensor in a nested dict/list by a reference and collect it in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), split_state(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [split_state(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    return obj


def join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_unkey(k): join_state(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [join_state(v, tensors) for v in obj]
    return obj


def _key(k: Any) -> Any:
    """Optimiser states use int keys; keep their type through JSON."""
    return {"int": k} if isinstance(k, int) else k


def _unkey(k: Any) -> Any:
    return k["int"] if isinstance(k, dict) else k


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Tensors go to a file named by their hash, then the JSON that names it replaces the old one.

    Only replacing the JSON commits the checkpoint, so a crash at any point leaves the previous
    checkpoint whole; tensor files no JSON names any more are deleted afterwards.
    """
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split_state(state, tensors)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".checkpoint.safetensors.tmp-{uuid.uuid4().hex[:8]}"
    try:
        save_file(tensors, str(tmp))
        digest = sha256_file(tmp)
        name = f"checkpoint-{digest[:16]}.safetensors"
        os.replace(tmp, directory / name)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(directory / META_FILE, json.dumps({"sha256": digest, "tensors": name, "state": skeleton}))
    for old in directory.glob("checkpoint*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory


def has_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / META_FILE).is_file()


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RaynasError(f"no checkpoint in {directory}", "give a run directory written by `raynas search`")
    meta = json.loads(meta_path.read_text())
    tensor_path = directory / meta.get("tensors", TENSORS_FILE)
    if not tensor_path.is_file():
        raise RaynasError(f"checkpoint {meta_path} names {tensor_path.name}, which is missing",
                          "the run directory was changed by hand; resume from an intact run")
    if sha256_file(tensor_path) != meta["sha256"]:
        raise RaynasError(f"checkpoint {tensor_path} does not match its checksum",
                          "the file is damaged or from another write; resume from an intact run")
    return join_state(meta["state"], load_file(str(tensor_path)))
