"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A nested state (model state_dict, optimiser and scheduler states, RNG states, epoch,
history) is split into a flat ``{path: tensor}`` dict and a JSON skeleton that refers to
the tensors by path. The JSON is written last, names the tensor file and records its
sha256, so a checkpoint interrupted mid-write leaves the previous one intact.

A checkpoint is self-describing: ``checkpoint.json`` also holds the run's ``info`` (the
search config, the warm-start record, the datasets), so a checkpoint that was moved, or
restored by Tune on another node, still knows what it is and where it started from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
TENSOR_NAME = re.compile(r"^checkpoint(-[0-9a-f]{16})?\.safetensors$")  # the only names a checkpoint may point to


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


def save_checkpoint(directory: str | Path, state: dict[str, Any], info: dict[str, Any] | None = None) -> Path:
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
    atomic_write_text(directory / META_FILE, json.dumps({"sha256": digest, "tensors": name, "state": skeleton,
                                                         "info": info or {}}))
    for old in directory.glob("checkpoint*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory


def has_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / META_FILE).is_file()


def _damaged(path: Path, why: str) -> RaynasError:
    return RaynasError(f"checkpoint {path} is damaged: {why}",
                       "resume from an intact run or checkpoint, or start the search again")


def _read_meta(directory: Path) -> dict[str, Any]:
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RaynasError(f"no checkpoint in {directory}",
                          "give a run directory or checkpoint written by `raynas search`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _damaged(meta_path, f"not JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or "state" not in meta:
        raise _damaged(meta_path, "it lacks the sha256 or the state")
    name = meta.get("tensors", TENSORS_FILE)
    if not isinstance(name, str) or not TENSOR_NAME.match(name):
        raise _damaged(meta_path, f"it names the tensor file {name!r}, which is not a checkpoint file of its folder")
    if not isinstance(meta.get("info", {}), dict):
        raise _damaged(meta_path, "its info is not an object")
    return meta


def checkpoint_info(directory: str | Path) -> dict[str, Any]:
    """What the checkpoint says about its run (config, transfer record, datasets); {} for old ones."""
    return _read_meta(Path(directory)).get("info", {})


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    meta = _read_meta(directory)
    tensor_path = directory / meta.get("tensors", TENSORS_FILE)
    if not tensor_path.is_file():
        raise RaynasError(f"checkpoint {directory / META_FILE} names {tensor_path.name}, which is missing",
                          "the run directory was changed by hand; resume from an intact run")
    if sha256_file(tensor_path) != meta["sha256"]:
        raise RaynasError(f"checkpoint {tensor_path} does not match its checksum",
                          "the file is damaged or from another write; resume from an intact run")
    try:
        return join_state(meta["state"], load_file(str(tensor_path)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(directory / META_FILE, f"its state does not match its tensors ({exc!r})") from None
