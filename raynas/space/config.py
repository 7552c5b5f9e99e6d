"""The search-space configuration and the size presets."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from raynas.errors import RaynasError
from raynas.registry import Registry
from raynas.space.ops import DARTS_OPS, OPS

MIXINGS = ("softmax", "dirichlet")


def check_ops(ops: tuple[str, ...], label: str = "candidate ops") -> None:
    """Refuse an op list no supernet can be built from, naming the registered ops, so a typo
    or an empty ``--ops ""`` fails at once instead of silently meaning the default ops."""
    known = f"known ops: {', '.join(OPS.names())}"
    if not all(isinstance(o, str) for o in ops):
        raise RaynasError(f"{label} must be a list of op names, got {list(ops)!r}", known)
    if not any(ops):
        raise RaynasError(f"{label} names no operation", f"list the ops, separated by commas; {known}")
    if not all(ops):
        raise RaynasError(f"{label} {','.join(ops)!r} has an empty name", f"remove the extra comma; {known}")
    for op in ops:
        if op not in OPS:
            close = difflib.get_close_matches(op, OPS.names(), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise RaynasError(f"{label}: unknown operation '{op}'", hint + known)
    if len(set(ops)) != len(ops) or all(o == "none" for o in ops):
        raise RaynasError(f"{label} {list(ops)} must be distinct and include an op other than 'none'", known)


@dataclass(frozen=True)
class SpaceConfig:
    """Everything that fixes the supernet's shape; two supernets with equal configs share a state_dict layout."""

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 16
    channels: int = 8  # initial channels C
    cells: int = 5  # reduction cells sit at 1/3 and 2/3 of the depth
    nodes: int = 4  # intermediate nodes per cell
    stem_multiplier: int = 3
    ops: tuple[str, ...] = DARTS_OPS
    partial_channels: int = 1  # PC-DARTS: only 1/K of the channels go through the candidate ops
    edge_norm: bool = False  # PC-DARTS: per-edge weights (betas) normalised over a node's inputs
    mixing: str = "softmax"  # how alphas become op weights: softmax logits or Dirichlet concentrations

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        self.validate()

    @property
    def num_edges(self) -> int:
        return sum(2 + i for i in range(self.nodes))

    @property
    def reduction_cells(self) -> tuple[int, int]:
        return self.cells // 3, 2 * self.cells // 3

    def validate(self) -> None:
        check_ops(self.ops)
        if self.nodes < 2:
            raise RaynasError(f"a cell needs at least 2 intermediate nodes, got {self.nodes}", "use --nodes 2 or more")
        if self.cells < 3:
            raise RaynasError(f"the network needs at least 3 cells (two of them reductions), got {self.cells}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise RaynasError(f"in_channels must be >= 1 and num_classes >= 2, got {self.in_channels}, "
                              f"{self.num_classes}")
        k = self.partial_channels
        if k < 1 or self.channels % (2 * k):
            raise RaynasError(f"channels ({self.channels}) must be a positive multiple of 2 x partial_channels ({k})",
                              "pick channels divisible by 2K, e.g. 8 with K=4")
        if self.image_size % 4 or self.image_size < 8:
            raise RaynasError(
                f"image size {self.image_size} is too small or not divisible by 4 for the two reduction cells",
                "use an image size of at least 8 that is a multiple of 4 (e.g. 8, 16, 32)")
        if self.mixing not in MIXINGS:
            raise RaynasError(f"unknown mixing '{self.mixing}'", f"choose one of: {', '.join(MIXINGS)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ops"] = list(self.ops)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SpaceConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RaynasError(f"unknown search-space field(s): {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "SpaceConfig":
        return replace(self, **changes)


@dataclass(frozen=True)
class Preset:
    """A size preset fixes image size, channels, cells, nodes and batch size."""

    name: str
    image_size: int
    channels: int
    cells: int
    nodes: int
    batch_size: int
    arch_lr_scale: float = 1.0  # short searches take far fewer steps than the paper's 50 epochs
    description: str = field(default="", compare=False)

    def space(self, **changes: Any) -> SpaceConfig:
        sizes = dict(image_size=self.image_size, channels=self.channels, cells=self.cells, nodes=self.nodes)
        return SpaceConfig(**{**sizes, **changes})


PRESETS: Registry[Preset] = Registry("preset")
PRESETS.add("tiny", Preset("tiny", 8, 4, 3, 3, 32, 10.0, "tests: seconds per epoch"))
PRESETS.add("cpu", Preset("cpu", 16, 8, 5, 4, 64, 10.0, "a 2-core machine: a search in minutes"))
PRESETS.add("gpu", Preset("gpu", 32, 16, 8, 4, 64, 1.0, "the DARTS paper's search network"))
