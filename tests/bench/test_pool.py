"""Leave-one-out: a target never sees a zoo entry trained on it, in any arm."""

import dataclasses
import json
import time

import pytest

from raynas.bench.arms import ARMS, TargetZoo, pick, target_zoo
from raynas.bench.config import ALL_ARMS, TransferBenchConfig
from raynas.bench.pool import RESUME_WITH, build_pool, check_no_leak, folds, is_protocol_multi, multi_plan
from raynas.bench.transfer import plan
from raynas.errors import RaynasError
from raynas.transfer.probe import error_cut
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs, run_jobs

SOURCES = ("digits", "glyph-digits", "glyph-upper", "textures")
TINY = TransferBenchConfig(sources=SOURCES, arms=ALL_ARMS, seeds=2, epochs=1, steps=2, source_epochs=1, source_steps=2,
                           multi_folds=2, random_genotypes=2)
DOMAINS = {"digits": "handwriting", "glyph-digits": "printed glyphs", "glyph-upper": "printed glyphs",
           "textures": "natural textures"}


def test_folds_and_multi_supernets_leave_their_targets_out():
    assert folds(("a", "b", "c"), 2) == [("a", "c"), ("b",)]
    assert folds(("a",), 5) == [("a",)]
    plan_ = multi_plan(TINY, SOURCES, ("digits", "glyph-digits", "glyph-upper"), DOMAINS.get)
    assert plan_ == {"bench-multi-1": ("glyph-digits", "textures"),
                     "bench-multi-2": ("digits", "glyph-upper", "textures"),
                     # leave-one-domain-out: folds of the targets' domains; none saw a dataset of its fold's domains
                     "bench-multi-domain-1": ("glyph-digits", "glyph-upper", "textures"),
                     "bench-multi-domain-2": ("digits", "textures")}
    dataset_only = TINY.replace(protocols=("dataset",))
    assert multi_plan(dataset_only, SOURCES, SOURCES[:3]) == {k: v for k, v in plan_.items() if "domain" not in k}
    assert multi_plan(TINY.replace(arms=("ot", "random")), SOURCES, SOURCES[:3], DOMAINS.get) == {}  # none built
    assert multi_plan(TINY.replace(arms=("ot", "probe")), SOURCES, SOURCES[:3], DOMAINS.get) == plan_  # probe may


@pytest.fixture(scope="module")
def pool(suite_home, tmp_path_factory):
    """A zoo that holds every source, each target's own entry included, and the multi folds."""
    storage = str(tmp_path_factory.mktemp("pool"))
    ws = Workspace.open(suite_home, storage, use_actors=False)
    jobs, _ = plan_jobs(list(SOURCES), TINY.source_search(SOURCES[0]), ws)
    for name, datasets in multi_plan(TINY, SOURCES, SOURCES[:3], DOMAINS.get).items():
        jobs += plan_jobs(list(datasets), TINY.source_search(name), ws, multi=name)[0]
    run_jobs(jobs, verbose=False)
    return ws


def test_no_arm_of_any_target_starts_from_an_entry_trained_on_it(pool):
    picks, zoos = plan(TINY.replace(protocols=("dataset",)), SOURCES, SOURCES[:3], pool)
    assert {p.arm for p in picks} == set(ARMS.names())
    assert len(picks) == 3 * len(ARMS) * 2
    zoos = zoos["dataset"]
    for target, zoo in zoos.items():
        seen = [r["source"] for r in zoo["ranking"]] + zoo["multi"]
        assert target not in seen  # its own entry is in the pool, never in its zoo
        for name in seen:
            assert target not in [s.name for s in pool.zoo.manifest(name).sources]
        assert len(zoo["ranking"]) == len(SOURCES) - 1
        assert zoo["multi"] and all(not m.startswith("bench-multi-domain-") for m in zoo["multi"])  # its own folds
        # the multi supernet is probed too, and random supernets: the scratch baseline
        assert sorted(s["source"] for s in zoo["probe"]) == sorted([*seen, "scratch"])
    for p in picks:
        if p.source not in ("scratch", "race", "uniform"):
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


def test_leave_one_domain_out_takes_the_targets_domain_out_of_its_zoo(pool):
    picks, zoos = plan(TINY, SOURCES, SOURCES[:3], pool)
    glyphs = zoos["domain"]["glyph-digits"]
    assert glyphs["excluded"] == ["glyph-upper"]
    assert [r["source"] for r in glyphs["ranking"]] == sorted(["digits", "textures"], key=lambda n: next(
        r["rank"] for r in glyphs["ranking"] if r["source"] == n))
    assert glyphs["multi"] == ["bench-multi-domain-2"]  # the fold that never saw a printed glyph
    assert {s["source"] for s in glyphs["probe"]} == {"digits", "textures", "bench-multi-domain-2", "scratch"}
    assert zoos["domain"]["digits"]["excluded"] == []  # no other handwriting source: the same zoo but its multi
    assert zoos["domain"]["digits"]["multi"] == ["bench-multi-domain-1"]
    for p in picks:
        for protocol in p.protocols or TINY.protocols:
            off = {p.target, *zoos[protocol][p.target]["excluded"]}
            if p.source not in ("scratch", "race", "uniform"):
                assert not off & {s.name for s in pool.zoo.manifest(p.source).sources}, p
    # a search both protocols would run the same way runs once; scratch and random genotypes serve both
    keys = [(p.target, p.arm, p.seed, p.source) for p in picks if p.arm != "race"]
    assert len(keys) == len(set(keys))
    assert all(p.protocols == () for p in picks if p.arm in ("scratch", "random-genotype"))
    assert {p.protocols for p in picks if p.target == "digits" and p.arm == "ot"} == {("dataset", "domain")}
    assert len([p for p in picks if p.arm == "race"]) == 3 * 2 * 2  # never merged: its trials choose
    assert len([p for p in picks if p.arm == "random-genotype"]) == 3 * TINY.random_genotypes
    with pytest.raises(RaynasError, match="leave-one-domain-out broken"):
        check_no_leak("glyph-digits", pool.store.info("glyph-digits").content_hash, pool.zoo.manifest("glyph-upper"),
                      exclude=("glyph-upper",))


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
    # the multi-dataset supernets of the leave-one-dataset-out folds, as the benchmark offers them
    return SelectionContext(search, info, space, pool.store, pool.zoo, pool.embeddings, pool.embedding_storage,
                            admit=lambda m: m.kind != "multi" or is_protocol_multi(m.name, "dataset"))


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


def test_a_search_can_exclude_sources_from_its_zoo(pool):
    """`raynas search --exclude-sources`: what the leave-one-domain-out protocol stands on."""
    from raynas.transfer.sources import choose_source

    ctx = _probe_context(pool, protocols=("dataset",))
    assert {m.name for m in ctx.candidates("single")} == {"glyph-digits", "glyph-upper", "textures"}
    off = dataclasses.replace(ctx, config=ctx.config.replace(exclude_sources=("glyph-upper", "glyph-digits")))
    assert {m.name for m in off.candidates("single")} == {"textures"}
    assert {m.name for m in off.candidates("multi")} == set()  # both dataset folds saw a printed glyph
    assert choose_source(dataclasses.replace(off, config=off.config.replace(transfer="ot"))).entry.name == "textures"
    with pytest.raises(RaynasError, match="trained on glyph-upper, which --exclude-sources excludes"):
        choose_source(dataclasses.replace(off, config=off.config.replace(transfer="glyph-upper")))
    with pytest.raises(RaynasError, match="--exclude-sources names unknown dataset\\(s\\) glyph-uper"):
        dataclasses.replace(ctx, config=ctx.config.replace(exclude_sources=("glyph-uper",)))


def test_an_interrupted_benchmark_zoo_says_to_run_the_benchmark_again(suite_home, tmp_path, monkeypatch):
    """The benchmark plans its zoo itself: `raynas zoo build --resume` would not finish the benchmark."""
    import raynas.zoo.tune_build

    calls = []

    def interrupted(jobs, workspace, **options):
        calls.append(options)
        time.sleep(0.1)  # long enough to show in the build time, which is kept to 0.1 s
        raise RaynasError("the zoo build was interrupted", options["resume_with"])

    monkeypatch.setattr(raynas.zoo.tune_build, "build_zoo", interrupted)
    ws = Workspace.open(suite_home, str(tmp_path / "storage"), use_actors=False)
    with pytest.raises(RaynasError, match="interrupted") as err:
        build_pool(TINY, SOURCES, SOURCES[:3], ws, tmp_path / "out", verbose=False)
    assert err.value.fix == RESUME_WITH and "run the same `raynas bench transfer` command again" in RESUME_WITH
    assert len(calls) == 1 and calls[0]["run_dir"].parent == tmp_path / "out" / "zoo-builds"
    first = json.loads((tmp_path / "out" / "pool.json").read_text())["build_s"]
    assert first > 0  # the stopped build's time is kept for the run that finishes it
    with pytest.raises(RaynasError, match="interrupted"):
        build_pool(TINY, SOURCES, SOURCES[:3], ws, tmp_path / "out", verbose=False)
    assert json.loads((tmp_path / "out" / "pool.json").read_text())["build_s"] > first


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"build_s": "long"}', '{"build_s": -5}',
                                     '{"build_s": NaN}', '{"build_s": true}'])
def test_a_damaged_pool_file_counts_no_earlier_build_time(tmp_path, content):
    from raynas.bench.pool import _previous_build_s

    (tmp_path / "pool.json").write_text(content)
    assert _previous_build_s(tmp_path) == 0.0
    (tmp_path / "pool.json").write_text('{"build_s": 12.5}')
    assert _previous_build_s(tmp_path) == 12.5
