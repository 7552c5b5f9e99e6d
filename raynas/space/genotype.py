"""Genotypes: the discrete cells derived from a supernet, with JSON, text and drawings."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from raynas.errors import RaynasError
from raynas.space.ops import OPS
from raynas.figures import pyplot, save_figure
from raynas.storage import atomic_write_text

CELL_KINDS = ("normal", "reduce")


@dataclass(frozen=True)
class Genotype:
    """Per cell kind: for each intermediate node, two (op, input) pairs; inputs 0/1 are the
    cell inputs, k >= 2 is intermediate node k - 2. All intermediate nodes are concatenated."""

    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]
    nodes: int = 4

    def __post_init__(self):
        for kind in CELL_KINDS:
            edges = getattr(self, kind)
            if len(edges) != 2 * self.nodes:
                raise RaynasError(f"genotype {kind} cell has {len(edges)} edges, expected {2 * self.nodes}")
            for n, (op, inp) in enumerate(edges):
                OPS.get(op)
                if op == "none" or not 0 <= inp < n // 2 + 2:
                    raise RaynasError(f"genotype {kind} edge {n} ({op}, {inp}) is not valid for node {n // 2}")

    def cell(self, kind: str) -> tuple[tuple[str, int], ...]:
        return getattr(self, kind)

    @property
    def skip_count(self) -> int:
        """Skip-connections in the normal cell: a rising count signals DARTS collapse."""
        return sum(op == "skip_connect" for op, _ in self.normal)

    def shared_edges(self, other: "Genotype") -> float:
        """Share of edges (op and input) in common with ``other``, node by node in either order:
        how much of a source's architecture a warm-started search kept."""
        from collections import Counter

        if other.nodes != self.nodes:
            raise RaynasError(f"genotypes of {self.nodes} and {other.nodes} nodes cannot be compared")
        same = 0
        for kind in CELL_KINDS:
            mine, theirs = self.cell(kind), other.cell(kind)
            for n in range(self.nodes):
                same += sum((Counter(mine[2 * n:2 * n + 2]) & Counter(theirs[2 * n:2 * n + 2])).values())
        return same / (4 * self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "normal": [list(e) for e in self.normal],
                "reduce": [list(e) for e in self.reduce]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Genotype":
        try:
            return cls(normal=tuple((str(op), int(i)) for op, i in d["normal"]),
                       reduce=tuple((str(op), int(i)) for op, i in d["reduce"]), nodes=int(d.get("nodes", 4)))
        except (KeyError, TypeError, ValueError) as exc:
            raise RaynasError(f"not a genotype: {exc}",
                              "a genotype JSON has 'normal' and 'reduce' lists of [op, input] pairs") from exc

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_json(), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Genotype":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RaynasError(f"genotype file {path} not found") from None
        except json.JSONDecodeError as exc:
            raise RaynasError(f"the genotype {path} is not valid JSON: {exc}",
                              "give a genotype.json written by raynas, or a run directory") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RaynasError(f"cannot read the genotype {path}: {exc}",
                              "give a genotype.json written by raynas, or a run directory") from None
        if not isinstance(data, dict):
            raise RaynasError(f"{path} is not a genotype: it holds a {type(data).__name__}, not an object",
                              "give a genotype.json written by raynas, or a run directory")
        try:
            return cls.from_json(data.get("genotype", data))
        except RaynasError as exc:
            raise RaynasError(f"{path}: {exc.problem}", exc.fix) from None

    def __str__(self) -> str:
        def cell(edges):
            return " | ".join(f"{edges[2 * i][0]}({edges[2 * i][1]}) + {edges[2 * i + 1][0]}({edges[2 * i + 1][1]})"
                              for i in range(self.nodes))
        return f"normal: {cell(self.normal)}\nreduce: {cell(self.reduce)}"


def derive_cell(probs: torch.Tensor, ops: tuple[str, ...], nodes: int,
                edge_weights: torch.Tensor | None = None) -> tuple[tuple[str, int], ...]:
    """DARTS rule: per node keep the two inputs whose strongest non-'none' op weighs most."""
    probs = probs.detach().cpu()
    if edge_weights is not None:
        probs = probs * edge_weights.detach().cpu()[:, None]
    candidates = [k for k, op in enumerate(ops) if op != "none"]
    chosen, offset = [], 0
    for i in range(nodes):
        rows = probs[offset:offset + i + 2][:, candidates]
        best_w, best_k = rows.max(dim=1)
        top = sorted(range(i + 2), key=lambda j: (-best_w[j].item(), j))[:2]
        chosen += [(ops[candidates[best_k[j]]], j) for j in sorted(top)]
        offset += i + 2
    return tuple(chosen)


def sample_genotype(ops: tuple[str, ...], nodes: int, rng: random.Random) -> Genotype:
    """A genotype drawn uniformly from what :func:`derive_cell` can produce: per node, two
    distinct inputs and for each an op other than 'none'. The control that tells whether a
    search found more than chance would."""
    choices = [op for op in ops if op != "none"]
    if not choices:
        raise RaynasError(f"no op to sample among {', '.join(ops)}", "give ops other than 'none'")

    def cell() -> tuple[tuple[str, int], ...]:
        edges = []
        for i in range(nodes):
            edges += [(rng.choice(choices), j) for j in sorted(rng.sample(range(i + 2), 2))]
        return tuple(edges)

    normal = cell()
    return Genotype(normal, cell(), nodes)


def derive_genotype(model) -> Genotype:
    space = model.space
    cells = {kind: derive_cell(model.op_probabilities(kind), space.ops, space.nodes, model.edge_weights(kind))
             for kind in CELL_KINDS}
    return Genotype(cells["normal"], cells["reduce"], space.nodes)


def alpha_entropy(model) -> float:
    """Mean entropy (nats) of the op distribution per edge: falls as the search commits."""
    values = []
    for kind in CELL_KINDS:
        p = model.op_probabilities(kind).clamp_min(1e-12)
        values.append(-(p * p.log()).sum(-1).mean())
    return float(torch.stack(values).mean())


def draw_genotype(genotype: Genotype, out: str | Path, title: str = "") -> Path:
    """Both cells as left-to-right DAGs with labelled edges (matplotlib only)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, kind in zip(axes, CELL_KINDS):
        n = genotype.nodes
        pos = {0: (0.0, 0.8), 1: (0.0, 0.2)}
        for i in range(n):
            pos[i + 2] = (1.0 + i, 0.5 + 0.32 * (-1) ** i)
        pos["out"] = (n + 1.0, 0.5)
        names = {0: "c[k-2]", 1: "c[k-1]", **{i + 2: str(i) for i in range(n)}, "out": "c[k]"}
        for e, (op, src) in enumerate(genotype.cell(kind)):
            x0, y0 = pos[src]
            x1, y1 = pos[e // 2 + 2]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color="tab:blue", shrinkA=14, shrinkB=14))
            t = 0.45 + 0.1 * (e % 2)
            ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), op, fontsize=7, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
        for i in range(n):
            x0, y0 = pos[i + 2]
            ax.annotate("", xy=pos["out"], xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color="0.7", shrinkA=14, shrinkB=14))
        for key, (x, y) in pos.items():
            color = "tab:green" if key in (0, 1) else "gold" if key == "out" else "lightsteelblue"
            ax.text(x, y, names[key], ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.4", fc=color, ec="0.3"))
        ax.set_xlim(-0.6, n + 1.6)
        ax.set_ylim(-0.05, 1.05)
        ax.axis("off")
        ax.set_title(f"{kind} cell")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def draw_alphas(model, out: str | Path, title: str = "") -> Path:
    """Heatmaps of the op weights per edge for both cell kinds."""
    plt = pyplot()

    from raynas.space.cells import edge_index

    space = model.space
    labels = [f"{j}->{i}" for j, i in edge_index(space.nodes)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.32 * space.num_edges + 2.2))
    for ax, kind in zip(axes, CELL_KINDS):
        p = model.op_probabilities(kind).cpu().numpy()
        im = ax.imshow(p, cmap="viridis", aspect="auto", vmin=0, vmax=max(p.max(), 1e-6))
        ax.set_xticks(range(len(space.ops)), space.ops, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(f"{kind} cell op weights")
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def alpha_image(model, cell_px: int = 12, gap_px: int = 6):
    """Both cells' op weights (edges x ops) as one RGB array (3, H, W), viridis, without a
    figure: cheap enough for every epoch of every trial (TensorBoard images)."""
    import numpy as np
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    panels = []
    for kind in CELL_KINDS:
        p = model.op_probabilities(kind).detach().cpu().numpy()
        rgb = cmap(p / max(float(p.max()), 1e-6))[..., :3]
        panels.append(np.repeat(np.repeat(rgb, cell_px, axis=0), cell_px, axis=1))
    gap = np.ones((panels[0].shape[0], gap_px, 3))
    image = np.concatenate([panels[0], gap, panels[1]], axis=1)
    return (255 * image).astype(np.uint8).transpose(2, 0, 1).copy()
