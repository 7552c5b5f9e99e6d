"""The manifest of a zoo entry: what the supernet is, where it came from, how to check it.

Written next to ``weights.safetensors`` and last, so its presence marks a complete entry.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from raynas import __version__
from raynas.errors import RaynasError
from raynas.space.config import SpaceConfig

KINDS = ("single", "multi")
FORMAT = "raynas-zoo/1"


@dataclass(frozen=True)
class SourceDataset:
    name: str
    content_hash: str
    classes: int


@dataclass(frozen=True)
class ZooManifest:
    """One published supernet (weights and alphas) and its provenance."""

    name: str
    kind: str  # single: pretrained on one dataset; multi: on several, one head each
    sources: tuple[SourceDataset, ...]
    space: dict[str, Any]  # SpaceConfig.to_json() of the supernet
    algo: str
    epochs: int
    val_acc: float | None
    weights_sha256: str = ""  # set by the zoo on publish
    embedding_version: str | None = None  # encoder version of the source's stored OT embedding
    warm_start: dict[str, Any] | None = None  # the transfer record, when the supernet was itself warm-started
    run: str | None = None  # the run directory that produced it, for people
    search: dict[str, Any] | None = None  # the search config that trained it (SearchConfig.to_json())
    raynas_version: str = __version__
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    version: str = ""  # the entry version this manifest belongs to (set by the zoo on publish)
    format: str = FORMAT

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(
            s if isinstance(s, SourceDataset) else SourceDataset(**s) for s in self.sources))
        if self.kind not in KINDS:
            raise RaynasError(f"unknown zoo entry kind '{self.kind}'", f"choose one of: {', '.join(KINDS)}")
        if not self.sources or (self.kind == "single" and len(self.sources) != 1):
            raise RaynasError(f"a {self.kind} zoo entry needs {'one source' if self.kind == 'single' else 'sources'}")
        kinds = {"name": str, "algo": str, "epochs": int, "space": dict, "weights_sha256": str, "version": str,
                 "created": str}
        wrong = [k for k, t in kinds.items() if not isinstance(getattr(self, k), t) or isinstance(getattr(self, k), bool)]
        if self.val_acc is not None and not isinstance(self.val_acc, (int, float)):
            wrong.append("val_acc")
        if any(not isinstance(s.name, str) or not isinstance(s.content_hash, str) for s in self.sources):
            wrong.append("sources")
        if wrong:
            raise RaynasError(f"zoo manifest of '{self.name}' has fields of the wrong type: {', '.join(wrong)}")
        self.space_config  # a space that does not describe a supernet is refused here, not at load time

    @property
    def source(self) -> str:
        """The source dataset (single) or the '+'-joined sources (multi)."""
        return "+".join(s.name for s in self.sources)

    @property
    def space_config(self) -> SpaceConfig:
        return SpaceConfig.from_json(self.space)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = [asdict(s) for s in self.sources]
        return d

    def summary(self) -> dict[str, Any]:
        """What ``raynas zoo list --json`` prints for the entry."""
        sp = self.space
        return {"name": self.name, "source": self.source, "kind": self.kind, "accuracy": self.val_acc,
                "algo": self.algo, "epochs": self.epochs, "channels": sp["channels"], "cells": sp["cells"],
                "nodes": sp["nodes"], "in_channels": sp["in_channels"], "version": self.version,
                "created": self.created, "warm_started_from": (self.warm_start or {}).get("source")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ZooManifest":
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RaynasError("not a raynas zoo manifest", "the entry was not written by raynas; remove it")
        return cls(**{k: v for k, v in d.items() if k in known})

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)
