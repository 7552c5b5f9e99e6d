"""Leave-one-out: a target never sees a zoo entry trained on it, in any arm."""

import pytest

from raynas.bench.arms import ARMS, TargetZoo, pick, target_zoo
from raynas.bench.config import ALL_ARMS, TransferBenchConfig
from raynas.bench.pool import check_no_leak, folds, multi_plan
from raynas.bench.transfer import plan
from raynas.errors import RaynasError
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
    run_jobs(jobs, parallel=False, verbose=False)
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
        assert sorted(s["source"] for s in zoo["probe"]) == sorted(seen)  # the multi supernet is probed too
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
            assert p.source == zoos[p.target]["probe"][0]["source"] and p.selection_s > 0
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


def test_a_multi_dataset_supernet_can_win_the_probe(pool, monkeypatch):
    """`--transfer probe` (and the probe arm) ask every entry that never saw the target, multi ones included."""
    from raynas.search.algorithms import create_algorithm
    from raynas.search.loop import resolve_space
    from raynas.transfer import probe
    from raynas.transfer.sources import TRANSFERS, SelectionContext

    search = TINY.search("digits")
    info = pool.store.info("digits")
    space = resolve_space(search, info.shape[0], info.num_classes, create_algorithm(search))
    ctx = SelectionContext(search, info, space, pool.store, pool.zoo, pool.embeddings, pool.embedding_storage)
    choice = TRANSFERS.get("probe")(ctx)
    assert {r["source"] for r in choice.ranking} == {"glyph-digits", "glyph-upper", "textures", "bench-multi-1"}
    assert choice.entry.name == choice.ranking[0]["source"]
    # a probe whose scores rise in call order ranks the last entry probed, the multi supernet, first
    scores = iter(range(100))
    monkeypatch.setattr(probe, "probe_accuracy", lambda *a: next(scores) / 100)
    assert TRANSFERS.get("probe")(ctx).entry.name == "bench-multi-1"
    p = pick(target_zoo(ctx, probe=True), "probe", 0)
    assert p.source == "bench-multi-1" and p.distance is None and p.rank is None and p.selection_s > 0
