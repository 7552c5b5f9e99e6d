"""Do warm-started searches keep their source's architecture, and does keeping it cost the retrain?

A warm start copies the source's alphas, so its search begins at the source's genotype. If the
target's short search never leaves it, the warm start's genotype is the source's choice for the
source's data, and a lower retrained accuracy would follow from that. Measured per run: the
share of edges its genotype shares with its source's (derived from the source entry's alphas),
against the share that scratch's genotype on the same target and seed has with that same
source genotype: what a search that never saw the source shares with it anyway.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from raynas.bench.analysis import NOT_TRANSFER, difference
from raynas.bench.speedup import median_or_never, spearman
from raynas.space.genotype import Genotype

NO_SEARCH = "zero-shot"  # derives the source's genotype itself: it keeps all of it by construction


def source_genotypes(names: Sequence[str], zoo) -> dict[str, dict[str, Any]]:
    """The genotype each zoo entry's alphas derive, by entry name (entries that cannot be read
    are left out: the analysis then skips their runs)."""
    import numpy as np
    import torch

    from raynas.errors import RaynasError
    from raynas.space.genotype import derive_genotype
    from raynas.space.supernet import ARCH_PREFIXES, create_supernet

    out = {}
    for name in sorted(set(names)):
        try:
            weights, manifest = zoo.load_weights(name)
        except RaynasError:
            continue
        model = create_supernet(manifest.space_config)
        arch = {k: torch.tensor(np.asarray(v)) for k, v in weights.items() if k.startswith(ARCH_PREFIXES)}
        model.load_state_dict(arch, strict=False)
        out[name] = derive_genotype(model).to_json()
    return out


def kinship(runs: Sequence[dict[str, Any]], sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per warm-started arm: the median share of edges kept from the source, scratch's share with
    the same source genotype, and whether keeping more goes with a lower retrain gain."""
    scratch = {(r["target"], r["seed"]): r for r in runs if r["arm"] == "scratch" and r.get("genotype")}
    rows = []
    for r in runs:
        base, source = scratch.get((r["target"], r["seed"])), sources.get(r.get("source") or "")
        if r["arm"] in (*NOT_TRANSFER, NO_SEARCH) or base is None or source is None or not r.get("genotype"):
            continue
        theirs = Genotype.from_json(source)
        kept, by_chance = Genotype.from_json(r["genotype"]).shared_edges(theirs), \
            Genotype.from_json(base["genotype"]).shared_edges(theirs)
        rows.append({"arm": r["arm"], "target": r["target"], "seed": r["seed"], "source": r["source"],
                     "kept": kept, "scratch_kept": by_chance,
                     "retrain_gain": difference(r.get("retrain_test_acc"), base.get("retrain_test_acc"))})
    arms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        arms[row["arm"]].append(row)
    return {"runs": rows, "arms": [_summary(arm, rs) for arm, rs in arms.items()],
            "all": _summary("every warm-started search", rows) if rows else None}


def _summary(arm: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    excess = [r["kept"] - r["scratch_kept"] for r in rows]
    return {"arm": arm, "runs": len(rows), "median_kept": median_or_never([r["kept"] for r in rows]),
            "median_scratch_kept": median_or_never([r["scratch_kept"] for r in rows]),
            "unchanged": sum(r["kept"] == 1.0 for r in rows),
            "excess_vs_retrain_gain": spearman(excess, [r["retrain_gain"] for r in rows])}

