"""Choosing the zoo entry a search warm-starts from (``--transfer``).

Strategies live in a registry: ``scratch`` (no source), ``ot`` (the nearest single-dataset
supernet by OT dataset distance), ``probe`` (the zoo entry, single- or multi-dataset, whose
frozen features a linear probe on the target separates best, or scratch when they beat a
random supernet's by too little), ``multi`` (a multi-dataset supernet), ``random`` (a seeded
random source, the baseline that isolates the value of OT) and ``auto`` (ot, else multi,
else scratch). Any other value names a zoo entry. Only entries whose cell space fits the
target are candidates, and never one trained on the target itself.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from raynas.data.format import DatasetInfo
from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.registry import Registry
from raynas.search.config import SearchConfig
from raynas.space.config import SpaceConfig
from raynas.transfer.mapping import check_compatible
from raynas.transfer.ranking import NoSource
from raynas.zoo.manifest import ZooManifest


@dataclass
class SourceChoice:
    """The chosen entry (None: start from scratch) and why."""

    strategy: str
    entry: ZooManifest | None = None
    distance: float | None = None
    method: str | None = None
    ranking: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {"strategy": self.strategy, "source": e.name if e else None, "source_version": e.version if e else None,
                "source_kind": e.kind if e else None, "source_datasets": [s.name for s in e.sources] if e else [],
                "distance": self.distance, "method": self.method, "ranking": self.ranking, "note": self.note,
                "selection_s": round(self.seconds, 3)}


@dataclass
class SelectionContext:
    """What a strategy may look at: the target, the search's space and config, zoo and embeddings."""

    config: SearchConfig
    target: DatasetInfo
    space: SpaceConfig
    store: DatasetStore
    zoo: Any  # Zoo or ActorZoo
    embeddings: Any = None  # EmbeddingStore or its actor handle; needed by ``ot``
    embedding_storage: Any = None  # where encoders keep their fitted state
    admit: Callable[[ZooManifest], bool] | None = None  # which entries may be candidates at all (a benchmark's)

    def __post_init__(self):
        unknown = [n for n in self.config.exclude_sources if not self.store.exists(n)]
        if unknown:  # a typo would exclude nothing, silently
            raise RaynasError(f"--exclude-sources names unknown dataset(s) {', '.join(unknown)}",
                              "name stored or built-in datasets (`raynas data list` shows them)")

    def candidates(self, kind: str) -> list[ZooManifest]:
        """Entries of ``kind`` that fit the space and were trained neither on the target nor on
        a dataset the search excludes."""
        out = []
        for m in self.zoo.list():
            if m.kind != kind or self.trained_on_target(m) or self.excluded_sources(m):
                continue
            if self.admit is not None and not self.admit(m):
                continue
            try:
                check_compatible(m.space_config, self.space)
            except RaynasError:
                continue
            out.append(m)
        return out

    def trained_on_target(self, m: ZooManifest) -> bool:
        return any(s.name == self.target.name or s.content_hash == self.target.content_hash for s in m.sources)

    def excluded_sources(self, m: ZooManifest) -> list[str]:
        """The datasets of ``m`` that the search excludes (``exclude_sources``)."""
        return [s.name for s in m.sources if s.name in self.config.exclude_sources]


Strategy = Callable[[SelectionContext], SourceChoice]
TRANSFERS: Registry[Strategy] = Registry("transfer strategy")


@TRANSFERS.register("scratch")
def scratch(ctx: SelectionContext) -> SourceChoice:
    return SourceChoice("scratch")


@TRANSFERS.register("ot")
def nearest_by_ot(ctx: SelectionContext) -> SourceChoice:
    """Rank the fitting single-dataset entries by OT distance to the target; take the nearest."""
    from raynas.ot.encoders import create_encoder
    from raynas.transfer.ranking import rank_zoo

    entries = ctx.candidates("single")
    if not entries:
        raise _empty_zoo("ot", ctx)
    encoder = create_encoder(ctx.config.encoder, storage=ctx.embedding_storage, home=ctx.store.home, zoo=ctx.zoo)
    ranked = rank_zoo(ctx.target.name, entries, ctx.store, ctx.embeddings, encoder, method=ctx.config.distance)
    best = ranked.ranking[0]
    note = f"no embedding for {', '.join(ranked.missing)}" if ranked.missing else ""
    return SourceChoice("ot", ranked.entries[best.name], best.distance, best.method, ranked.rows()[:5], note)


@TRANSFERS.register("probe")
def best_by_probe(ctx: SelectionContext) -> SourceChoice:
    """Probe every fitting entry on the target (:mod:`raynas.transfer.probe`); take the best,
    unless its features beat a random supernet's by too little to be worth starting from.

    Multi-dataset supernets are candidates too: where no single source suits the target, one
    that saw many datasets may, and the probe measures that on the target instead of guessing."""
    from raynas.transfer.probe import error_cut, probe_scratch, probe_zoo

    entries = ctx.candidates("single") + ctx.candidates("multi")
    if not entries:
        raise _empty_zoo("probe", ctx)
    target = ctx.store.open(ctx.target.name)  # the probe reads only its sample's images
    scores = probe_zoo(target, entries, ctx.zoo)
    baseline = probe_scratch(target, ctx.space)
    ranking = [s.to_json() for s in sorted([*scores, baseline], key=lambda s: (-s.accuracy, s.source))]
    best, cut = scores[0], error_cut(scores[0].accuracy, baseline.accuracy)
    if ctx.config.probe_min_cut > 0 and cut < ctx.config.probe_min_cut:  # 0: the best entry, even below random
        return SourceChoice("probe", method="linear probe", ranking=ranking,
                            note=f"the best source, '{best.source}', removes {cut:.0%} of a random supernet's probe "
                                 f"error, under --probe-min-cut {ctx.config.probe_min_cut:g}")
    return SourceChoice("probe", {m.name: m for m in entries}[best.source], method="linear probe", ranking=ranking)


@TRANSFERS.register("multi")
def multi_dataset(ctx: SelectionContext) -> SourceChoice:
    """The newest fitting multi-dataset supernet that did not see the target."""
    entries = ctx.candidates("multi")
    if not entries:
        raise _empty_zoo("multi", ctx)
    return SourceChoice("multi", max(entries, key=lambda m: m.created))


@TRANSFERS.register("random")
def random_source(ctx: SelectionContext) -> SourceChoice:
    """A seeded random single-dataset source: the baseline that tells what OT selection is worth."""
    entries = sorted(ctx.candidates("single"), key=lambda m: m.name)
    if not entries:
        raise _empty_zoo("random", ctx)
    return SourceChoice("random", random.Random(ctx.config.seed).choice(entries))


@TRANSFERS.register("auto")
def automatic(ctx: SelectionContext) -> SourceChoice:
    """OT when the zoo has a fitting single-dataset source, else a multi-dataset one, else scratch.

    Only "no fitting source" falls through to the next choice; any other error (a broken
    zoo, an unknown encoder) is reported, not papered over by a search from scratch.
    """
    reasons = []
    for name in ("ot", "multi"):
        try:
            choice = TRANSFERS.get(name)(ctx)
        except NoSource as exc:
            reasons.append(f"{name}: {exc.problem}")
            continue
        choice.strategy = f"auto:{name}"
        choice.note = "; ".join(filter(None, [*reasons, choice.note]))
        return choice
    return SourceChoice("auto:scratch", note="; ".join(reasons))


def named_entry(ctx: SelectionContext, name: str) -> SourceChoice:
    entry = ctx.zoo.manifest(name)
    check_compatible(entry.space_config, ctx.space, f"zoo entry '{name}'")
    excluded = ctx.excluded_sources(entry)
    if excluded:
        raise RaynasError(f"zoo entry '{name}' was trained on {', '.join(excluded)}, which --exclude-sources excludes",
                          "name another entry, or leave those datasets out of --exclude-sources")
    note = "trained on the target dataset itself" if ctx.trained_on_target(entry) else ""
    return SourceChoice("named", entry, note=note)


def choose_source(ctx: SelectionContext) -> SourceChoice:
    t0 = time.perf_counter()
    name = ctx.config.transfer
    choice = TRANSFERS.get(name)(ctx) if name in TRANSFERS else named_entry(ctx, name)
    choice.seconds = time.perf_counter() - t0
    return choice


def _empty_zoo(strategy: str, ctx: SelectionContext) -> NoSource:
    kind = {"multi": "multi-dataset ", "probe": ""}.get(strategy, "single-dataset ")
    build = (f"raynas zoo build --multi NAME --datasets A,B,... --preset {ctx.config.preset}" if strategy == "multi"
             else f"raynas zoo build --preset {ctx.config.preset} --exclude {ctx.target.name}")
    return NoSource(f"--transfer {strategy}: the zoo has no {kind}supernet that fits this search "
                       f"(same cells as preset '{ctx.config.preset}') and was not trained on '{ctx.target.name}'",
                       f"build one with `{build}`, or use --transfer scratch")
