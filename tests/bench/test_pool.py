"""Leave-one-out: a target never sees a zoo entry trained on it, in any arm."""

import pytest

from raynas.bench.arms import ARMS, TargetZoo, pick, target_zoo
from raynas.bench.config import ALL_ARMS, TransferBenchConfig
from raynas.bench.pool import check_no_leak, folds, multi_plan
from raynas.bench.transfer import plan
from raynas.errors import RaynasError
from raynas.transfer.probe import error_cut
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs, run_jobs

SOURCES = ("digits", "glyph-digits", "glyph-upper", "textures")
TINY = TransferBenchConfig(sources=SOURCES, arms=ALL_ARMS, seeds=2, epochs=1, steps=2, source_epochs=1, source_steps=2,
                           multi_folds=2)


def test_folds_and_multi_supernets_leave_their_targets_out():
    assert folds(("a", "b", "c"), 2) == [("a", "c"), ("b",)]
    assert folds(("a",), 5) == [("a",)]
    plan_ = multi_plan(TINY, SOURCES, ("digits", "glyph-digits", "glyph-upper"))
    assert plan_ == {"bench-multi-1": ("glyph-digits", "textures"), "bench-multi-2": ("digits", "glyph-upper",
                                                                                      "textures")}
    assert multi_plan(TINY.replace(arms=("ot", "random")), SOURCES, SOURCES[:3]) == {}  # no multi arm: none built
    assert multi_plan(TINY.replace(arms=("ot", "probe")), SOURCES, SOURCES[:3]) == plan_  # the probe may pick one


@pytest.fixture(scope="module")
def pool(suite_home, tmp_path_factory):
    """A zoo that holds every source, each target's own entry included, and the multi folds."""
    storage = str(tmp_path_factory.mktemp("pool"))
    ws = Workspace.open(suite_home, storage, use_actors=False)
    jobs, _ = plan_jobs(list(SOURCES), TINY.source_search(SOURCES[0]), ws)
    for name, datasets in multi_plan(TINY, SOURCES, SOURCES[:3]).items():
        jobs += plan_jobs(list(datasets), TINY.source_search(name), ws, multi=name)[0]
    run_jobs(jobs, verbose=False)
    return ws


def test_no_arm_of_any_target_starts_from_an_entry_trained_on_it(pool):
    picks, zoos = plan(TINY, SOURCES[:3], pool)
    assert {p.arm for p in picks} == set(ARMS.names())
    assert len(picks) == 3 * len(ARMS) * 2
    for target, zoo in zoos.items():
        seen = [r["source"] for r in zoo["ranking"]] + zoo["multi"]
        assert target not in seen  # its own entry is in the pool, never in its zoo
        for name in seen:
            assert target not in [s.name for s in pool.zoo.manifest(name).sources]
        assert len(zoo["ranking"]) == len(SOURCES) - 1
        # the multi supernet is probed too, and random supernets: the scratch baseline
        assert sorted(s["source"] for s in zoo["probe"]) == sorted([*seen, "scratch"])
    for p in picks:
        if p.source not in ("scratch", "race"):
            assert p.target not in [s.name for s in pool.zoo.manifest(p.source).sources], p
    ranked = {t: [r["source"] for r in z["ranking"]] for t, z in zoos.items()}
    for p in picks:
        if p.arm in ("ot", "zero-shot"):
            assert p.source == ranked[p.target][0] and p.rank == 1
        if p.arm == "farthest":
            assert p.source == ranked[p.target][-1]
        if p.arm == "probe":
            scores = {r["source"]: r["accuracy"] for r in zoos[p.target]["probe"]}
            best = max((n for n in scores if n != "scratch"), key=lambda n: (scores[n], [-ord(c) for c in n]))
            worth = error_cut(scores[best], scores["scratch"]) >= TINY.probe_min_cut
            assert p.source == (best if worth else "scratch") and p.selection_s > 0
        if p.arm == "multi":
            assert p.source.startswith("bench-multi-")


def test_a_source_trained_on_the_target_is_refused(pool):
    info = pool.store.info("digits")
    check_no_leak("digits", info.content_hash, pool.zoo.manifest("glyph-upper"))
    with pytest.raises(RaynasError, match="leave-one-out broken"):
        check_no_leak("digits", info.content_hash, pool.zoo.manifest("digits"))
    with pytest.raises(RaynasError, match="leave-one-out broken"):  # the multi that saw it
        check_no_leak("digits", info.content_hash, pool.zoo.manifest("bench-multi-2"))


def test_random_picks_are_seeded(pool):
    from raynas.search.algorithms import create_algorithm
    from raynas.search.loop import resolve_space
    from raynas.transfer.sources import SelectionContext

    search = TINY.search("digits")
    info = pool.store.info("digits")
    space = resolve_space(search, info.shape[0], info.num_classes, create_algorithm(search))
    zoo = target_zoo(SelectionContext(search, info, space, pool.store, pool.zoo, pool.embeddings,
                                      pool.embedding_storage))
    assert [pick(zoo, "random", s).source for s in range(4)] == [pick(zoo, "random", s).source for s in range(4)]
    assert len({pick(zoo, "random", s).source for s in range(12)}) > 1


def test_random_picks_vary_across_targets_of_one_seed():
    from types import SimpleNamespace

    from raynas.bench.arms import _random

    names = [f"src{i}" for i in range(10)]

    def zoo(target):
        ctx = SimpleNamespace(target=SimpleNamespace(name=target))
        ranking = [{"source": n, "dataset": n, "distance": float(i), "rank": i + 1} for i, n in enumerate(names)]
        return TargetZoo(ctx, ranking, [])

    picks = [_random(zoo(f"target{t}"), 0)[0] for t in range(10)]
    assert len(set(picks)) >= 4  # one seed must not map every target to the same position
    assert picks == [_random(zoo(f"target{t}"), 0)[0] for t in range(10)]  # and stays seeded


def _probe_context(pool, **changes):
    from raynas.search.algorithms import create_algorithm
    from raynas.search.loop import resolve_space
    from raynas.transfer.sources import SelectionContext

    search = TINY.replace(**changes).search("digits")
    info = pool.store.info("digits")
    space = resolve_space(search, info.shape[0], info.num_classes, create_algorithm(search))
    return SelectionContext(search, info, space, pool.store, pool.zoo, pool.embeddings, pool.embedding_storage)


def _fake_probe(monkeypatch, entries, random_inits):
    """Probe accuracies in call order: the zoo's entries (by name), then the random supernets."""
    from raynas.transfer import probe

    scores = iter([*entries, *random_inits])
    monkeypatch.setattr(probe, "probe_accuracy", lambda *a: next(scores))


def test_a_multi_dataset_supernet_can_win_the_probe(pool, monkeypatch):
    """`--transfer probe` (and the probe arm) ask every entry that never saw the target, multi ones included."""
    from raynas.transfer.sources import TRANSFERS

    ctx = _probe_context(pool)
    choice = TRANSFERS.get("probe")(ctx)
    assert {r["source"] for r in choice.ranking} == {"glyph-digits", "glyph-upper", "textures", "bench-multi-1",
                                                     "scratch"}
    assert choice.entry is None or choice.entry.name == [r for r in choice.ranking if r["source"] != "scratch"][0][
        "source"]
    # entries are probed singles first, then multis: the multi supernet scores best, far above random
    _fake_probe(monkeypatch, [0.5, 0.6, 0.7, 0.9], [0.4, 0.4, 0.4])
    assert TRANSFERS.get("probe")(ctx).entry.name == "bench-multi-1"
    _fake_probe(monkeypatch, [0.5, 0.6, 0.7, 0.9], [0.4, 0.4, 0.4])
    p = pick(target_zoo(ctx, probe=True), "probe", 0)
    assert p.source == "bench-multi-1" and p.distance is None and p.rank is None and p.selection_s > 0


def test_the_probe_searches_from_scratch_when_no_source_beats_random_features_by_enough(pool, monkeypatch):
    from raynas.transfer.sources import TRANSFERS

    ctx = _probe_context(pool)
    # the best source removes (0.6 - 0.55) / 0.45 = 11% of the random features' error: < 0.33
    _fake_probe(monkeypatch, [0.5, 0.5, 0.5, 0.6], [0.5, 0.55, 0.6])
    choice = TRANSFERS.get("probe")(ctx)
    assert choice.entry is None and "removes 11%" in choice.note and "bench-multi-1" in choice.note
    assert [r["source"] for r in choice.ranking][:2] == ["bench-multi-1", "scratch"]
    _fake_probe(monkeypatch, [0.5, 0.5, 0.5, 0.6], [0.5, 0.55, 0.6])
    p = pick(target_zoo(ctx, probe=True), "probe", 0)
    assert p.source == "scratch" and p.selection_s > 0
    assert TINY.arm_epochs(p.source) == TINY.epochs  # it gets scratch's whole budget, not the warm one
    # --probe-min-cut 0 always transfers
    _fake_probe(monkeypatch, [0.5, 0.5, 0.5, 0.6], [0.5, 0.55, 0.6])
    assert TRANSFERS.get("probe")(_probe_context(pool, probe_min_cut=0.0)).entry.name == "bench-multi-1"
