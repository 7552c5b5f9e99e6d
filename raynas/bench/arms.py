"""The arms of the transfer benchmark: where each search on a target starts from.

Every arm is registered with how it runs and how it picks its start from the target's zoo
(the pool without the target's own entries): ``scratch``; ``ot``, the nearest source by OT
distance; ``probe``, the source whose frozen features a linear probe on the target separates
best among the single- and multi-dataset entries, or scratch when they beat a random supernet's
by too little (``--transfer probe``; charged for the probe's seconds); ``race``, the Tune race
of the nearest sources (its trials pick their own); ``multi``, the multi-dataset supernet that
never saw the target; ``random``, a seeded random source; ``farthest``, the OT-farthest source
(the negative control); and ``zero-shot``, the nearest source's own architecture, derived with
no search on the target; and ``random-genotype``, architectures drawn uniformly from the space
and retrained at the same budget (does the search beat chance?).

Under the leave-one-domain-out protocol a target's zoo also loses every entry trained on a
dataset of its domain: the pick records the protocols it was made for.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from raynas.errors import RaynasError
from raynas.registry import Registry
from raynas.transfer.sources import SelectionContext

SEARCH, RACE, ZERO_SHOT, SAMPLE = "search", "race", "zero-shot", "sample"  # how an arm runs
SHARED = ("scratch", "random-genotype")  # arms that use no zoo: one run serves every protocol


@dataclass(frozen=True)
class Pick:
    """One arm's start on one target and seed: what its Tune trial receives (names and numbers)."""

    target: str
    arm: str
    seed: int
    source: str  # a zoo entry, "scratch", or "race" (the race's trials choose)
    distance: float | None = None  # OT distance of the source's dataset to the target
    rank: int | None = None  # the source's OT rank (1 = nearest)
    selection_s: float = 0.0  # what choosing the source cost beyond the OT ranking (the probe), charged to the arm
    protocols: tuple[str, ...] = ()  # the protocols this run answers for (empty: every one, it uses no zoo)
    exclude: tuple[str, ...] = ()  # datasets the protocol took out of the target's zoo, besides the target

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> str:
        return f"{self.target}/{self.arm}/seed{self.seed}" + "".join(f"/{p}" for p in self.protocols)


@dataclass
class TargetZoo:
    """What the arms may choose from on one target: its selection context and the OT ranking
    of the single-dataset sources that never saw it (nearest first)."""

    ctx: SelectionContext
    ranking: list[dict[str, Any]]  # {"source", "dataset", "distance", "rank"}
    multi: list[str]  # multi-dataset supernets that never saw the target
    probe: list[dict[str, Any]] = field(default_factory=list)  # probe scores of every entry and scratch, best first
    probe_pick: str | None = None  # what ``--transfer probe`` chose: a zoo entry or "scratch"
    probe_s: float = 0.0  # what probing them all took

    @property
    def names(self) -> list[str]:
        return [r["source"] for r in self.ranking] + self.multi


@dataclass(frozen=True)
class Arm:
    runs: str  # SEARCH, RACE, ZERO_SHOT or SAMPLE
    pick: Callable[[TargetZoo, int], tuple[str, dict[str, Any] | None]]  # (source, its ranking row)


ARMS: Registry[Arm] = Registry("benchmark arm")


class NoStart(RaynasError):
    """The target's zoo offers this arm nothing to start from (too few sources, or none left
    outside the target's domain)."""


def _ranked(zoo: TargetZoo, arm: str) -> list[dict[str, Any]]:
    if not zoo.ranking:
        raise NoStart(f"arm '{arm}': the zoo of '{zoo.ctx.target.name}' has no single-dataset source",
                          "give the benchmark at least two --sources")
    return zoo.ranking


def _nearest(zoo: TargetZoo, seed: int, arm: str = "ot"):
    row = _ranked(zoo, arm)[0]
    return row["source"], row


def _farthest(zoo: TargetZoo, seed: int):
    row = _ranked(zoo, "farthest")[-1]
    return row["source"], row


def _random(zoo: TargetZoo, seed: int):
    # seeded by target and seed: a seed alone would pick the same position of every target's
    # (similar) zoo, one source for most targets, and the control would stop being random
    rows = sorted(_ranked(zoo, "random"), key=lambda r: r["source"])
    row = random.Random(f"{zoo.ctx.target.name}/seed{seed}").choice(rows)
    return row["source"], row


def _probe(zoo: TargetZoo, seed: int):
    if zoo.probe_pick is None:
        raise RaynasError(f"arm 'probe': the zoo of '{zoo.ctx.target.name}' was not probed",
                          "this is a bug in the benchmark's plan; report it")
    ot_row = next((r for r in zoo.ranking if r["source"] == zoo.probe_pick), {})  # none for multi or scratch
    return zoo.probe_pick, {**ot_row, "selection_s": zoo.probe_s}


def _multi(zoo: TargetZoo, seed: int):
    if not zoo.multi:
        raise NoStart(f"arm 'multi': no multi-dataset supernet left out '{zoo.ctx.target.name}'",
                          "give the benchmark at least three --sources, or drop the multi arm (--arms)")
    return sorted(zoo.multi)[0], None


ARMS.add("scratch", Arm(SEARCH, lambda zoo, seed: ("scratch", None)))
ARMS.add("ot", Arm(SEARCH, _nearest))
ARMS.add("probe", Arm(SEARCH, _probe))
ARMS.add("race", Arm(RACE, lambda zoo, seed: ("race", None)))
ARMS.add("multi", Arm(SEARCH, _multi))
ARMS.add("random", Arm(SEARCH, _random))
ARMS.add("farthest", Arm(SEARCH, _farthest))
ARMS.add("zero-shot", Arm(ZERO_SHOT, lambda zoo, seed: _nearest(zoo, seed, "zero-shot")))
ARMS.add("random-genotype", Arm(SAMPLE, lambda zoo, seed: ("uniform", None)))


def target_zoo(ctx: SelectionContext, probe: bool = False) -> TargetZoo:
    """Rank the target's zoo once (distances and probe scores do not depend on the seed);
    ``probe``: also make the choice of ``--transfer probe`` (only when the probe arm runs)."""
    from raynas.ot.encoders import create_encoder
    from raynas.transfer.ranking import NoSource, rank_zoo
    from raynas.transfer.sources import best_by_probe

    singles, multis = ctx.candidates("single"), ctx.candidates("multi")
    rows: list[dict[str, Any]] = []
    if singles:
        encoder = create_encoder(ctx.config.encoder, storage=ctx.embedding_storage, home=ctx.store.home, zoo=ctx.zoo)
        try:
            ranked = rank_zoo(ctx.target.name, singles, ctx.store, ctx.embeddings, encoder,
                              method=ctx.config.distance)
            rows = ranked.rows()
        except NoSource:
            rows = []
    zoo = TargetZoo(ctx, rows, [m.name for m in multis])
    if probe and (singles or multis):
        t0 = time.perf_counter()
        choice = best_by_probe(ctx)
        zoo.probe_s = time.perf_counter() - t0
        zoo.probe, zoo.probe_pick = choice.ranking, choice.entry.name if choice.entry else "scratch"
    return zoo


def pick(zoo: TargetZoo, arm: str, seed: int, protocol: str = "") -> Pick:
    source, row = ARMS.get(arm).pick(zoo, seed)
    row = row or {}
    shared = arm in SHARED or not protocol
    return Pick(zoo.ctx.target.name, arm, seed, source, row.get("distance"), row.get("rank"),
                row.get("selection_s", 0.0), () if shared else (protocol,),
                () if shared else tuple(zoo.ctx.config.exclude_sources))


def merge_picks(picks: list[Pick]) -> list[Pick]:
    """One run for picks that would run the same search: the same target, arm, seed and source
    under several protocols (a target whose nearest source lies outside its domain either way).
    A race is never merged: its trials choose among the protocol's own zoo."""
    merged: dict[tuple, Pick] = {}
    for p in picks:
        key = (p.target, p.arm, p.seed, p.source) if ARMS.get(p.arm).runs != RACE else (p.key,)
        if key in merged:
            before = merged[key]
            protocols = tuple(dict.fromkeys((*before.protocols, *p.protocols)))
            merged[key] = replace(before, protocols=protocols if before.protocols and p.protocols else ())
        else:
            merged[key] = p
    return list(merged.values())
