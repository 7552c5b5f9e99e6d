"""The warm starts a race tries: one Tune trial each.

``--transfer auto`` races the ``--race K`` zoo sources nearest to the target by OT distance,
the newest multi-dataset supernet that never saw the target, and (``--baseline``) a search
from scratch. Any other ``--transfer`` picks one source as a single search does (ot, probe, multi,
random, scratch or a zoo entry's name), plus the scratch baseline if asked. Candidates are
chosen in the driver; trials receive only the entry's name and these facts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from raynas.search.config import SearchConfig
from raynas.space.config import SpaceConfig
from raynas.transfer.ranking import NoSource
from raynas.transfer.sources import SelectionContext, choose_source
from raynas.workspace import Workspace

SCRATCH = "scratch"


@dataclass(frozen=True)
class Candidate:
    key: str  # what a trial's config carries: a zoo entry's name, or "scratch"
    strategy: str  # how it was chosen: ot, probe, multi, random, named, scratch
    distance: float | None = None  # OT distance of its source dataset to the target
    method: str | None = None
    rank: int | None = None  # 1 = nearest

    def note(self) -> dict[str, Any]:
        """What the trial adds to its warm-start record."""
        return {"strategy": self.strategy, "distance": self.distance, "method": self.method, "race_rank": self.rank}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        if self.key == SCRATCH:
            return "scratch"
        if self.distance is not None:
            return f"{self.key} ({self.strategy} #{self.rank}, d={self.distance:.3g})"
        return f"{self.key} ({self.strategy})"


def race_candidates(search: SearchConfig, race_k: int, include_multi: bool, baseline: bool, space: SpaceConfig,
                    workspace: Workspace) -> tuple[list[Candidate], list[str]]:
    """The candidates (nearest first, then multi, then scratch) and notes on what was left out."""
    store = workspace.store
    ctx = SelectionContext(search, store.info(search.dataset), space, store, workspace.zoo, workspace.embeddings,
                           workspace.embedding_storage)
    notes: list[str] = []
    if search.transfer == "auto":
        found = _nearest(ctx, race_k, notes)
        if include_multi:
            found += _multi(ctx, notes)
    else:
        choice = choose_source(ctx)
        entry = choice.entry
        found = [Candidate(entry.name if entry else SCRATCH, choice.strategy if entry else SCRATCH, choice.distance,
                           choice.method, 1 if choice.distance is not None else None)]
        if choice.note:
            notes.append(choice.note)
    if baseline and all(c.key != SCRATCH for c in found):
        found.append(Candidate(SCRATCH, SCRATCH))
    if not found:
        notes.append("nothing in the zoo fits this target: racing a search from scratch alone")
        found = [Candidate(SCRATCH, SCRATCH)]
    return found, notes


def _nearest(ctx: SelectionContext, k: int, notes: list[str]) -> list[Candidate]:
    from raynas.ot.encoders import create_encoder
    from raynas.transfer.ranking import rank_zoo

    entries = ctx.candidates("single")
    if not entries:
        notes.append("ot: the zoo has no single-dataset supernet that fits this search and was not trained on "
                     f"'{ctx.target.name}' (build one with `raynas zoo build --exclude {ctx.target.name}`)")
        return []
    encoder = create_encoder(ctx.config.encoder, storage=ctx.embedding_storage, home=ctx.store.home, zoo=ctx.zoo)
    try:
        ranked = rank_zoo(ctx.target.name, entries, ctx.store, ctx.embeddings, encoder, method=ctx.config.distance)
    except NoSource as exc:
        notes.append(f"ot: {exc.problem}")
        return []
    if ranked.missing:
        notes.append(f"ot: no embedding for {', '.join(ranked.missing)}")
    return [Candidate(ranked.entries[r.name].name, "ot", r.distance, r.method, r.rank)
            for r in list(ranked.ranking)[:k]]


def _multi(ctx: SelectionContext, notes: list[str]) -> list[Candidate]:
    entries = ctx.candidates("multi")
    if not entries:
        notes.append("multi: no multi-dataset supernet fits this search without having seen the target")
        return []
    return [Candidate(max(entries, key=lambda m: m.created).name, "multi")]

