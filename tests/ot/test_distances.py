"""Dataset distances and the ranking cascade: exactness, symmetry, determinism, agreement."""

import dataclasses
import itertools
import json

import numpy as np
import ot
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.ot import DISTANCES, Cascade, dataset_distance, embed_dataset, rank_sources
from raynas.ot.distances import bures_squared, hot, otdd, sliced, squared_distances
from tests.ot.helpers import SMALL, synthetic

METHODS = ["otdd", "hot", "sliced", "cascade"]
FULL_RANK = dataclasses.replace(SMALL, rank=4, ridge=0.0)  # rank = dim: no truncation, exact covariances


def _covariances(e):
    f = e.factors.astype(np.float64)
    return f @ f.transpose(0, 2, 1)


# -- building blocks against POT -----------------------------------------------------------------

@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(2, 5), st.integers(2, 5))
@settings(max_examples=25, deadline=None)
def test_low_rank_bures_matches_pot_at_full_rank(seed_a, seed_b, ka, kb):
    a = synthetic("a", seed=seed_a, classes=ka, config=FULL_RANK)
    b = synthetic("b", seed=seed_b, classes=kb, shift=1.0, config=FULL_RANK)
    ours = bures_squared(a, b)
    pot = ot.gaussian.bures_wasserstein_distance(a.means.astype(np.float64), b.means.astype(np.float64),
                                                 _covariances(a), _covariances(b)) ** 2
    assert ours.shape == (ka, kb) and np.all(ours >= 0)
    assert np.allclose(ours, pot, rtol=1e-4, atol=1e-4)
    assert np.array_equal(bures_squared(b, a), ours.T) or np.allclose(bures_squared(b, a), ours.T, rtol=1e-12)


def test_bures_is_exactly_zero_on_identical_classes():
    a = synthetic("a", seed=3, classes=5)
    w = bures_squared(a, a)
    assert np.all(np.diag(w) == 0.0) and np.all(w[~np.eye(5, dtype=bool)] > 0)


def test_squared_distances_are_exact_on_identical_points():
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32) * 100
    d = squared_distances(x, x[::-1])
    assert np.all(d[np.arange(6), np.arange(6)[::-1]] == 0.0) and np.all(d >= 0)
    assert np.allclose(d, ((x[:, None].astype(np.float64) - x[None, ::-1]) ** 2).sum(-1), rtol=1e-6)


def test_otdd_is_exact_ot_with_the_augmented_cost():
    a, b = synthetic("a", seed=1, config=FULL_RANK), synthetic("b", seed=2, shift=0.5, config=FULL_RANK)
    w = ot.gaussian.bures_wasserstein_distance(a.means.astype(np.float64), b.means.astype(np.float64),
                                               _covariances(a), _covariances(b)) ** 2
    cost = 0.5 * ot.dist(a.sample.astype(np.float64), b.sample.astype(np.float64)) \
        + 0.5 * w[a.sample_labels][:, b.sample_labels]
    expected = ot.emd2(ot.unif(len(a.sample)), ot.unif(len(b.sample)), cost)
    assert otdd(a, b) == pytest.approx(expected, rel=1e-5)


def test_hot_is_the_gaussian_mixture_ot_loss():
    a, b = synthetic("a", seed=1, classes=4, config=FULL_RANK), synthetic("b", seed=2, config=FULL_RANK)
    expected = ot.gmm.gmm_ot_loss(a.means.astype(np.float64), b.means.astype(np.float64), _covariances(a),
                                  _covariances(b), a.weights, b.weights)
    assert hot(a, b) == pytest.approx(float(expected), rel=1e-4)


def test_sliced_is_the_mean_squared_quantile_difference():
    a, b = synthetic("a", seed=1), synthetic("b", seed=2)
    expected = np.mean((a.sketch.astype(np.float64) - b.sketch.astype(np.float64)) ** 2)
    assert sliced(a, b) == pytest.approx(expected, rel=1e-6)


def test_a_shift_grows_every_distance():
    base = synthetic("a", seed=5)
    for method in ("otdd", "hot", "sliced"):
        values = [dataset_distance(base, synthetic(f"s{s}", seed=5, shift=s), method) for s in (0.5, 1.0, 2.0)]
        assert values[0] > 0 and np.all(np.diff(values) > 0), (method, values)


# -- required properties on the built-in suite -----------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_every_dataset_is_at_distance_exactly_zero_from_itself(suite_embeddings, method):
    for name, e in suite_embeddings.items():
        assert dataset_distance(e, e, method) == 0.0, name


@pytest.mark.parametrize("method", METHODS)
def test_distances_are_exactly_symmetric_and_positive(suite_embeddings, method):
    names = ["digits", "mnist5k", "mnist5k-rot", "glyph-greek", "photo-patches", "lfw-faces"]
    for x, y in itertools.combinations(names, 2):
        a, b = suite_embeddings[x], suite_embeddings[y]
        d = dataset_distance(a, b, method)
        assert d == dataset_distance(b, a, method) and d > 0, (x, y)


def test_distances_are_deterministic(suite_embeddings, suite_home, pixel_encoder):
    datasets = DatasetStore(suite_home)
    a = embed_dataset(datasets.load("mnist5k-inv"), pixel_encoder)
    b = embed_dataset(datasets.load("textures"), pixel_encoder)
    for method in METHODS:
        assert dataset_distance(a, b, method) == dataset_distance(suite_embeddings["mnist5k-inv"],
                                                                  suite_embeddings["textures"], method)


@pytest.mark.parametrize("method", METHODS)
def test_mnist_is_nearer_its_rotation_than_photos(suite_embeddings, method):
    e = suite_embeddings
    assert dataset_distance(e["mnist5k"], e["mnist5k-rot"], method) < \
        dataset_distance(e["mnist5k"], e["photo-patches"], method)


def test_incomparable_embeddings_are_refused():
    a = synthetic("a")
    cases = [(synthetic("b", version="test-v2"), "encoder test-v1 .* with test-v2"),
             (synthetic("b", dim=5), "4-d features and 'b' 5-d"),
             (synthetic("b", config=dataclasses.replace(SMALL, slices=8)), "different configs")]
    for b, match in cases:
        for method in METHODS:
            with pytest.raises(RaynasError, match=match):
                dataset_distance(a, b, method)
            with pytest.raises(RaynasError, match=match):
                rank_sources(a, [synthetic("c"), b], method)


# -- leave-one-out on the suite --------------------------------------------------------------------

@pytest.fixture(scope="module")
def otdd_matrix(suite_embeddings):
    names = list(suite_embeddings)
    d = np.zeros((len(names), len(names)))
    for i, j in itertools.combinations(range(len(names)), 2):
        d[i, j] = d[j, i] = otdd(suite_embeddings[names[i]], suite_embeddings[names[j]])
    return names, d


def test_suite_nearest_neighbours_make_sense(otdd_matrix):
    names, d = otdd_matrix
    nearest = {n: names[np.argsort(d[i])[1]] for i, n in enumerate(names)}
    assert nearest["mnist5k"] == "mnist5k-rot" and nearest["mnist5k-rot"] == "mnist5k"
    assert nearest["glyph-upper"] == "glyph-lower" and nearest["glyph-lower"] == "glyph-upper"


def test_cascade_top3_holds_the_otdd_nearest_source_for_every_target(suite_embeddings, otdd_matrix):
    names, d = otdd_matrix
    rhos = []
    for i, target in enumerate(names):
        others = [j for j in range(len(names)) if j != i]
        ranking = rank_sources(suite_embeddings[target], [suite_embeddings[names[j]] for j in others])
        nearest = names[others[int(np.argmin(d[i, others]))]]
        assert nearest in ranking.names()[:3], (target, nearest, ranking.names())
        position = {name: r for r, name in enumerate(ranking.names())}
        rhos.append(spearmanr([position[names[j]] for j in others], d[i, others])[0])
    assert np.mean(rhos) >= 0.9 and np.min(rhos) >= 0.7, rhos


def test_exhaustive_rankings_sort_the_pairwise_distances(suite_embeddings):
    target, sources = suite_embeddings["digits"], [e for n, e in suite_embeddings.items() if n != "digits"]
    for method in ("otdd", "hot", "sliced"):
        ranking = rank_sources(target, sources, method)
        assert [s.rank for s in ranking] == list(range(1, 11)) and {s.method for s in ranking} == {method}
        assert [s.distance for s in ranking] == sorted(s.distance for s in ranking)
        for s in ranking:
            assert s.distance == dataset_distance(target, suite_embeddings[s.name], method)
        assert ranking.evaluated == {method: 10} and ranking.seconds["total"] >= 0


# -- the cascade's structure -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo():
    return [synthetic(f"s{i:02d}", seed=100 + i, classes=2 + i % 5, shift=0.05 * i) for i in range(30)]


def test_cascade_stages_and_order(zoo):
    target = synthetic("target", seed=7)
    ranking = rank_sources(target, zoo, Cascade(n1=10, n2=3))
    assert len(ranking) == 30 and [s.rank for s in ranking] == list(range(1, 31))
    assert [s.method for s in ranking] == ["otdd"] * 3 + ["hot"] * 7 + ["sliced"] * 20
    assert ranking.evaluated == {"sliced": 30, "hot": 10, "otdd": 3}
    assert set(ranking.seconds) == {"sliced", "hot", "otdd", "total"}
    by_stage = {m: [s for s in ranking if s.method == m] for m in ("otdd", "hot", "sliced")}
    for stage, entries in by_stage.items():
        assert [e.distance for e in entries] == sorted(e.distance for e in entries)
        for e in entries:
            assert e.distance == dataset_distance(target, next(z for z in zoo if z.dataset == e.name), stage)
    sliced_order = rank_sources(target, zoo, "sliced").names()
    assert {s.name for s in ranking[:10]} == set(sliced_order[:10])  # stage 2 ran on stage 1's best 10
    hot_order = rank_sources(target, [z for z in zoo if z.dataset in sliced_order[:10]], "hot").names()
    assert {s.name for s in ranking[:3]} == set(hot_order[:3]) and ranking.names()[3:10] == hot_order[3:]
    assert ranking.names()[10:] == sliced_order[10:]


def test_cascade_top_widens_the_last_stage(zoo):
    ranking = rank_sources(synthetic("target", seed=7), zoo, Cascade(n1=10, n2=3), top=6)
    assert len(ranking) == 6 and [s.method for s in ranking] == ["otdd"] * 6
    assert ranking.evaluated == {"sliced": 30, "hot": 10, "otdd": 6}


def test_cascade_of_one_pair_is_its_otdd(zoo):
    assert dataset_distance(zoo[0], zoo[1], "cascade") == otdd(zoo[0], zoo[1])
    assert DISTANCES.names() == ["otdd", "hot", "sliced", "cascade"]


def test_ties_are_broken_by_name():
    a = synthetic("a", seed=1)
    twins = [dataclasses.replace(a, dataset=n) for n in ("zz", "bb", "mm")]
    for method in METHODS:
        assert rank_sources(synthetic("t", seed=2), twins, method).names() == ["bb", "mm", "zz"]


def test_ranking_errors_and_edges(zoo):
    with pytest.raises(RaynasError, match="unknown dataset distance 'emd'"):
        rank_sources(zoo[0], zoo, "emd")
    with pytest.raises(RaynasError, match="keeps no source"):
        rank_sources(zoo[0], zoo, top=0)
    with pytest.raises(RaynasError, match="1 <= n2 <= n1"):
        Cascade(n1=2, n2=3)
    empty = rank_sources(zoo[0], [])
    assert len(empty) == 0 and empty.target == "s00"
    data = json.loads(json.dumps(rank_sources(zoo[0], zoo[1:], top=2).to_json()))
    assert data["method"] == "cascade" and [s["rank"] for s in data["sources"]] == [1, 2]
    assert data["evaluated"]["sliced"] == 29
