"""Dataset distances between stored embeddings, and ranking zoo sources for a target.

Three distances of increasing cost and fidelity, all on the squared scale of OTDD:

* ``sliced``: mean squared difference of the sliced sketches (s-OTDD style), microseconds
  per source and vectorised over a whole zoo;
* ``hot``: class-level OT, an exact EMD between the class weights with label-to-label costs
  W2^2 between class Gaussians;
* ``otdd``: exact OT (``ot.emd2``) between the stored samples with ground cost
  1/2 ||x - x'||^2 + 1/2 W2^2(y, y') (OTDD with its default Gaussian label distance, solved
  exactly rather than with entropic Sinkhorn).

W2^2 between Gaussians comes from the stored rank-r factors (Sigma ~ F F^T):
||mu_a - mu_b||^2 + tr_a + tr_b - 2 ||F_a^T F_b||_*, a batch of r x r SVDs instead of d x d
matrix square roots (which are slow and turn NaN on rank-deficient covariances).

``cascade`` (the default) ranks a zoo in three stages: sliced on every source, hot on the
best ``n1``, otdd on the best ``n2`` of those. The ranking lists the otdd-ranked sources first,
then the rest in hot order, then the rest in sliced order; each entry names the stage that
produced its distance (distances of different stages are not on one scale).

Every distance is exactly 0 between an embedding and itself (the stored sample is reused,
identical class statistics cost exactly 0) and exactly symmetric (a pair is always computed
in one canonical order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import ot

from raynas.errors import RaynasError
from raynas.ot.embedding import DatasetEmbedding, check_comparable
from raynas.ot.threads import single_threaded_blas
from raynas.registry import Registry

DEFAULT_METHOD = "cascade"


# -- building blocks ------------------------------------------------------------------------------

def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) mask of rows with identical bytes: their cost must be exactly 0."""
    a = np.ascontiguousarray(a.reshape(len(a), -1))
    b = np.ascontiguousarray(b.reshape(len(b), -1), dtype=a.dtype)
    row = np.dtype((np.void, a.dtype.itemsize * a.shape[1]))
    _, ids = np.unique(np.concatenate([a, b]).view(row).ravel(), return_inverse=True)
    return ids[: len(a), None] == ids[None, len(a):]


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """||x_i - y_j||^2 in float64, non-negative, exactly 0 for identical points."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d = np.square(x64).sum(1)[:, None] + np.square(y64).sum(1)[None, :] - 2.0 * x64 @ y64.T
    np.maximum(d, 0.0, out=d)
    d[_same_rows(x, y)] = 0.0
    return d


@single_threaded_blas
def bures_squared(a: DatasetEmbedding, b: DatasetEmbedding) -> np.ndarray:
    """(k_a, k_b) W2^2 between the class Gaussians of ``a`` and ``b`` (low-rank covariances)."""
    (ka, d, r), kb = a.factors.shape, b.num_classes
    fa, fb = a.factors.astype(np.float64), b.factors.astype(np.float64)
    # F_a^T F_b for every class pair in one matmul: (ka*r, d) @ (d, kb*r) -> (ka, kb, r, r)
    cross = (fa.transpose(0, 2, 1).reshape(ka * r, d) @ fb.transpose(1, 0, 2).reshape(d, kb * r))
    cross = cross.reshape(ka, r, kb, r).transpose(0, 2, 1, 3)
    nuclear = np.linalg.svd(cross, compute_uv=False).sum(-1)
    means = squared_distances(a.means, b.means)
    w = means + a.traces[:, None] + b.traces[None, :] - 2.0 * nuclear
    np.maximum(w, 0.0, out=w)
    w[_same_rows(_class_stats(a), _class_stats(b))] = 0.0
    return w


def _class_stats(e: DatasetEmbedding) -> np.ndarray:
    """One row per class: its mean and factor, to spot identical class Gaussians."""
    return np.concatenate([e.means, e.factors.reshape(e.num_classes, -1)], axis=1)


def _canonical(a: DatasetEmbedding, b: DatasetEmbedding) -> tuple[DatasetEmbedding, DatasetEmbedding]:
    check_comparable(a, b)
    return (a, b) if a.key <= b.key else (b, a)


# -- the three distances ---------------------------------------------------------------------------

@single_threaded_blas
def otdd(a: DatasetEmbedding, b: DatasetEmbedding) -> float:
    """Exact OT between the stored samples, cost 1/2 ||x - x'||^2 + 1/2 W2^2(y, y')."""
    a, b = _canonical(a, b)
    labels = bures_squared(a, b)
    ia, ib = np.searchsorted(a.labels, a.sample_labels), np.searchsorted(b.labels, b.sample_labels)
    cost = 0.5 * squared_distances(a.sample, b.sample) + 0.5 * labels[ia][:, ib]
    ma, mb = len(a.sample), len(b.sample)
    return float(ot.emd2(np.full(ma, 1.0 / ma), np.full(mb, 1.0 / mb), cost, numItermax=1_000_000))


@single_threaded_blas
def hot(a: DatasetEmbedding, b: DatasetEmbedding) -> float:
    """Class-level OT: EMD between class weights with Gaussian W2^2 label costs."""
    a, b = _canonical(a, b)
    return float(ot.emd2(a.weights / a.weights.sum(), b.weights / b.weights.sum(), bures_squared(a, b)))


SKETCH_BLOCK = 64  # sources per vectorised block: a few MB of temporaries instead of hundreds


def sliced_many(target: DatasetEmbedding, sources: Sequence[DatasetEmbedding]) -> np.ndarray:
    """Sketch distances from ``target`` to every source, vectorised over blocks of sources.

    One stack of a 1,000-entry zoo is 65 MB (and its float64 squares twice that); building
    and freeing it took 0.1-0.9 s per query depending on the allocator's state, blocks of
    64 sources take a few hundredths of a second and give the same numbers.
    """
    for s in sources:
        check_comparable(target, s)
    out = np.zeros(len(sources))
    for start in range(0, len(sources), SKETCH_BLOCK):
        block = np.stack([s.sketch for s in sources[start:start + SKETCH_BLOCK]])  # (B, L, q) float32
        diff = block - target.sketch[None]  # float32 subtraction is exactly antisymmetric: d(a,b) == d(b,a)
        out[start:start + len(block)] = np.square(diff, dtype=np.float64).reshape(len(block), -1).mean(axis=1)
    return out


def sliced(a: DatasetEmbedding, b: DatasetEmbedding) -> float:
    """Mean over slices of the 1-D W2^2 between the sketches' quantile functions."""
    return float(sliced_many(a, [b])[0])


def _pairwise_many(pair: Callable[[DatasetEmbedding, DatasetEmbedding], float]):
    def many(target: DatasetEmbedding, sources: Sequence[DatasetEmbedding]) -> np.ndarray:
        return np.array([pair(target, s) for s in sources], dtype=np.float64)

    many.__doc__ = f"{pair.__name__} from ``target`` to every source."
    return many


otdd_many = _pairwise_many(otdd)
hot_many = _pairwise_many(hot)


# -- rankings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankedSource:
    name: str
    distance: float
    method: str  # the stage that produced ``distance``
    rank: int  # 1 = nearest


@dataclass(frozen=True)
class Ranking:
    """Sources nearest first, with seconds spent and sources evaluated per stage."""

    target: str
    method: str
    sources: tuple[RankedSource, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    evaluated: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[RankedSource]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> RankedSource:
        return self.sources[i]

    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "method": self.method, "seconds": self.seconds,
                "evaluated": self.evaluated,
                "sources": [{"rank": s.rank, "name": s.name, "distance": s.distance, "method": s.method}
                            for s in self.sources]}


class Method(Protocol):
    name: str

    def rank(self, target: DatasetEmbedding, sources: Sequence[DatasetEmbedding],
             top: int | None = None) -> Ranking: ...


def _order(distances: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Indices nearest first; ties broken by name, then position (deterministic)."""
    return np.lexsort((np.arange(len(names)), np.asarray(names, dtype=str), distances))


def _finish(target, method, entries, top, seconds, evaluated) -> Ranking:
    entries = entries[: top] if top else entries
    ranked = tuple(RankedSource(name, float(dist), stage, i + 1) for i, (name, dist, stage) in enumerate(entries))
    return Ranking(target.dataset, method, ranked, seconds, evaluated)


@dataclass(frozen=True)
class Exhaustive:
    """One distance on every source."""

    name: str
    distances: Callable[[DatasetEmbedding, Sequence[DatasetEmbedding]], np.ndarray]

    @single_threaded_blas
    def rank(self, target: DatasetEmbedding, sources: Sequence[DatasetEmbedding],
             top: int | None = None) -> Ranking:
        start = time.perf_counter()
        dist = self.distances(target, sources)
        seconds = {self.name: time.perf_counter() - start}
        seconds["total"] = seconds[self.name]
        names = [s.dataset for s in sources]
        entries = [(names[i], dist[i], self.name) for i in _order(dist, names)]
        return _finish(target, self.name, entries, top, seconds, {self.name: len(sources)})


@dataclass(frozen=True)
class Cascade:
    """sliced on all sources -> hot on the best ``max(n1, n2')`` -> otdd on the best ``n2' = max(n2, top)``."""

    n1: int = 50
    n2: int = 5
    name: str = "cascade"

    def __post_init__(self) -> None:
        if self.n1 < 1 or self.n2 < 1 or self.n2 > self.n1:
            raise RaynasError(f"cascade sizes n1={self.n1}, n2={self.n2} are not 1 <= n2 <= n1",
                              "pass n1 >= n2 >= 1 (defaults: 50 and 5)")

    @single_threaded_blas
    def rank(self, target: DatasetEmbedding, sources: Sequence[DatasetEmbedding],
             top: int | None = None) -> Ranking:
        names = [s.dataset for s in sources]
        n2 = max(self.n2, top or 0)
        stages = (("sliced", sliced_many, len(sources)), ("hot", hot_many, max(self.n1, n2)), ("otdd", otdd_many, n2))
        candidates = np.arange(len(sources))
        layers, seconds, evaluated = [], {}, {}
        for stage, distances, size in stages:
            candidates = candidates[:size]
            start = time.perf_counter()
            dist = distances(target, [sources[i] for i in candidates])
            seconds[stage], evaluated[stage] = time.perf_counter() - start, len(candidates)
            order = _order(dist, [names[i] for i in candidates])
            layers.append([(int(candidates[j]), dist[j], stage) for j in order])
            candidates = candidates[order]
        seconds["total"] = sum(seconds.values())
        entries, seen = [], set()
        for layer in reversed(layers):  # otdd-ranked first, then hot order, then sliced order
            for i, dist, stage in layer:
                if i not in seen:
                    seen.add(i)
                    entries.append((names[i], dist, stage))
        return _finish(target, self.name, entries, top, seconds, evaluated)


DISTANCES: Registry[Method] = Registry("dataset distance")
DISTANCES.add("otdd", Exhaustive("otdd", otdd_many))
DISTANCES.add("hot", Exhaustive("hot", hot_many))
DISTANCES.add("sliced", Exhaustive("sliced", sliced_many))
DISTANCES.add("cascade", Cascade())


def _method(method: str | Method) -> Method:
    return DISTANCES.get(method) if isinstance(method, str) else method


def rank_sources(target: DatasetEmbedding, sources: Sequence[DatasetEmbedding], method: str | Method = DEFAULT_METHOD,
                 top: int | None = None) -> Ranking:
    """Rank ``sources`` by distance to ``target`` (nearest first), keeping the best ``top``."""
    if top is not None and top < 1:
        raise RaynasError(f"top={top} keeps no source", "pass top >= 1, or None for all")
    return _method(method).rank(target, list(sources), top)


def dataset_distance(a: DatasetEmbedding, b: DatasetEmbedding, method: str | Method = "otdd") -> float:
    """The distance between two embeddings (``cascade`` of a single pair is its otdd)."""
    return rank_sources(a, [b], method)[0].distance
