"""A dataset's OT embedding: the small summary every dataset distance is computed from.

Embedding a dataset once and keeping only a summary makes a query against a zoo cost
milliseconds per source instead of a pass over its images. From a seeded, class-stratified
subset of a split (all images up to ``max_images``) it keeps:

* per class c: weight p_c, count n_c, mean mu_c and a rank-r covariance factor F_c with
  Sigma_c ~ F_c F_c^T, plus its truncated trace ||F_c||_F^2 (for Bures-Wasserstein costs);
* a class-stratified sample of ``sample_size`` embedded points with their labels (exact OT);
* a sliced sketch (s-OTDD style): for L fixed slices, q quantiles of the 1-D projections
  psi_0 theta^T x + sum_j psi_j m_j(y), where m_j(y) is the class mean of (theta^T x)^j / j!.
  In 1-D, W2^2 is the L2 distance between quantile functions, so comparing two sketches is
  a mean of squared differences.

Every random choice comes from fixed seeds (the subset from ``config.seed``, the slices from
:data:`SKETCH_SEED` and the dimension), so the same dataset, encoder and config always give
identical arrays, and a dataset's distance to itself is exactly zero.

On disk (one Parquet file per dataset and encoder version, readable with plain pyarrow),
each row is one ``part``:

=========  ======================================================================
part       columns used
=========  ======================================================================
class      label, count, weight, trace, values = mean (d), factor = F_c (d*r, row-major)
sample     label, values = point (d)
sketch     label = slice index, values = quantiles (q)
=========  ======================================================================

Unused cells are null. Schema metadata: ``format`` (:data:`FORMAT`), ``dataset``,
``content_hash``, ``encoder_version``, ``dim``, ``rank`` and ``config`` (JSON).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raynas.data.format import ImageDataset, split_row_groups
from raynas.errors import RaynasError
from raynas.ot.encoders import Encoder
from raynas.ot.sampling import stratified_group_indices, stratified_indices
from raynas.ot.threads import single_threaded_blas

FORMAT = "raynas-embedding/1"
SKETCH_SEED = 42025  # the one seed of all sketch slices; with the dimension it fixes theta and psi


@dataclass(frozen=True)
class EmbeddingConfig:
    """How a dataset is summarised; embeddings are only compared under equal configs."""

    split: str = "train"
    max_images: int = 2000
    rank: int = 16
    ridge: float = 1e-6  # added to class covariances, relative to the mean feature variance
    sample_size: int = 500
    slices: int = 256
    quantiles: int = 64
    moments: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = {"str": str, "int": int, "float": (int, float)}[f.type]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise RaynasError(f"embedding config '{f.name}' must be {f.type}, got {value!r}",
                                  "fix the value (see EmbeddingConfig for the defaults)")
        positive = ("max_images", "rank", "sample_size", "slices", "quantiles")
        bad = [n for n in positive if getattr(self, n) < 1]
        bad += [n for n in ("moments", "seed") if getattr(self, n) < 0]
        if not math.isfinite(self.ridge) or self.ridge < 0:
            bad.append("ridge")
        if self.split not in ("train", "val", "test"):
            bad.append("split")
        if bad:
            raise RaynasError(f"invalid embedding config values: {', '.join(bad)}",
                              "use counts >= 1, moments/seed/ridge >= 0 and split train, val or test")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> "EmbeddingConfig":
        data = json.loads(text) if isinstance(text, str) else dict(text)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise RaynasError(f"unknown embedding config keys: {', '.join(sorted(unknown))}",
                              "the embedding was written by another raynas version; embed the dataset again")
        return cls(**data)


@dataclass(frozen=True, eq=False)
class DatasetEmbedding:
    """The stored summary of one dataset under one encoder version and config."""

    dataset: str
    content_hash: str
    encoder_version: str
    config: EmbeddingConfig
    labels: np.ndarray  # (k,) int32 class ids, ascending
    counts: np.ndarray  # (k,) int64 embedded images per class
    weights: np.ndarray  # (k,) float64 class weights p_c
    means: np.ndarray  # (k, d) float32
    factors: np.ndarray  # (k, d, r) float32, Sigma_c ~ F_c F_c^T
    traces: np.ndarray  # (k,) float64, ||F_c||_F^2 = truncated trace of Sigma_c
    sample: np.ndarray  # (m, d) float32 class-stratified points
    sample_labels: np.ndarray  # (m,) int32
    sketch: np.ndarray  # (L, q) float32 quantiles per slice

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def rank(self) -> int:
        return int(self.factors.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def key(self) -> tuple[str, str]:
        """Canonical order of a pair, so that d(a, b) and d(b, a) run the same computation."""
        return self.content_hash, self.dataset

    _ARRAYS = ("labels", "counts", "weights", "means", "factors", "traces", "sample", "sample_labels", "sketch")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetEmbedding):
            return NotImplemented
        same_meta = (self.dataset, self.content_hash, self.encoder_version, self.config) == \
                    (other.dataset, other.content_hash, other.encoder_version, other.config)
        return same_meta and all(np.array_equal(getattr(self, n), getattr(other, n)) for n in self._ARRAYS)

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside


def check_comparable(a: DatasetEmbedding, b: DatasetEmbedding) -> None:
    """Refuse to compare embeddings from different feature spaces or summaries."""
    if a.encoder_version != b.encoder_version:
        raise RaynasError(f"'{a.dataset}' was embedded with encoder {a.encoder_version} and '{b.dataset}' "
                          f"with {b.encoder_version}; distances across encoders mean nothing",
                          "embed both datasets with the same encoder (EmbeddingStore.ensure does)")
    if a.dim != b.dim:
        raise RaynasError(f"'{a.dataset}' has {a.dim}-d features and '{b.dataset}' {b.dim}-d",
                          "embed both datasets with the same encoder")
    if a.config != b.config:
        raise RaynasError(f"'{a.dataset}' and '{b.dataset}' were embedded with different configs "
                          f"({a.config} vs {b.config})", "embed both datasets with the same EmbeddingConfig")


# -- computing an embedding ----------------------------------------------------------------------

def _positive_largest(vectors: np.ndarray, axis: int) -> np.ndarray:
    """Sign-fix eigenvectors (stored along ``axis``) so their largest-|entry| is positive."""
    peak = np.take_along_axis(vectors, np.abs(vectors).argmax(axis=axis, keepdims=True), axis=axis)
    return vectors * np.where(peak < 0, -1.0, 1.0)


def _class_means(x: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> np.ndarray:
    onehot = np.zeros((len(counts), len(x)))
    onehot[inverse, np.arange(len(x))] = 1.0
    return onehot @ x / counts[:, None]


def class_statistics(x: np.ndarray, y: np.ndarray, rank: int, ridge: float):
    """Labels, counts, means (k, d), rank-r covariance factors (k, d, r) and truncated traces."""
    x = np.asarray(x, dtype=np.float64)
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    d = x.shape[1]
    means = _class_means(x, inverse, counts)
    centred = x - means[inverse]
    covs = np.stack([c.T @ c / len(c) for c in (centred[inverse == i] for i in range(len(labels)))])
    eps = ridge * max(float(x.var(axis=0).mean()), 1e-12)
    values, vectors = np.linalg.eigh(covs + eps * np.eye(d))
    r = min(rank, d)
    top = np.clip(values[:, ::-1][:, :r], 0.0, None)
    factors = (_positive_largest(vectors[:, :, ::-1][:, :, :r], axis=1) * np.sqrt(top)[:, None, :]).astype(np.float32)
    traces = np.square(factors.astype(np.float64)).sum(axis=(1, 2))
    return labels.astype(np.int32), counts.astype(np.int64), means.astype(np.float32), factors, traces


def sketch_projections(dim: int, slices: int, moments: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions theta (L, d) on the unit sphere and moment weights psi (L, K+1) on the unit
    sphere, drawn from :data:`SKETCH_SEED` and the dimension alone: identical across the zoo."""
    rng = np.random.default_rng([SKETCH_SEED, dim])
    theta = rng.standard_normal((slices, dim))
    psi = rng.standard_normal((slices, moments + 1))
    return theta / np.linalg.norm(theta, axis=1, keepdims=True), psi / np.linalg.norm(psi, axis=1, keepdims=True)


def sliced_sketch(x: np.ndarray, y: np.ndarray, slices: int, quantiles: int, moments: int) -> np.ndarray:
    """q mid-point quantiles (L, q) of each slice's moment-transform projection of (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    theta, psi = sketch_projections(x.shape[1], slices, moments)
    proj = x @ theta.T  # (n, L)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    z = psi[:, 0] * proj
    power = np.ones_like(proj)
    for j in range(1, moments + 1):
        power = power * proj / j  # (theta^T x)^j / j!
        z += psi[:, j] * _class_means(power, inverse, counts)[inverse]
    levels = (np.arange(quantiles) + 0.5) / quantiles
    return np.quantile(z, levels, axis=0).T.astype(np.float32)


@single_threaded_blas
def summarise(features: np.ndarray, labels: np.ndarray, *, dataset: str, content_hash: str,
              encoder_version: str, config: EmbeddingConfig = EmbeddingConfig()) -> DatasetEmbedding:
    """The embedding of already-encoded points (features (n, d), labels (n,))."""
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels) or len(features) == 0:
        raise RaynasError(f"cannot embed '{dataset}': features {features.shape} and labels {labels.shape} "
                          "do not describe n >= 1 points", "pass (n, d) features with n labels")
    if not np.isfinite(features).all():
        raise RaynasError(f"the encoder produced non-finite features for '{dataset}'",
                          "check the images and the encoder (try `--encoder pixels`)")
    cls, counts, means, factors, traces = class_statistics(features, labels, config.rank, config.ridge)
    pick = stratified_indices(labels, config.sample_size, config.seed)
    return DatasetEmbedding(
        dataset=dataset, content_hash=content_hash, encoder_version=encoder_version, config=config,
        labels=cls, counts=counts, weights=counts / counts.sum(), means=means, factors=factors, traces=traces,
        sample=features[pick], sample_labels=labels[pick].astype(np.int32),
        sketch=sliced_sketch(features, labels, config.slices, config.quantiles, config.moments),
    )


def embed_dataset(ds: ImageDataset, encoder: Encoder, config: EmbeddingConfig = EmbeddingConfig()) -> DatasetEmbedding:
    """Encode a seeded class-stratified subset of ``config.split`` and summarise it. ``ds`` may be
    a :class:`raynas.data.stored.StoredDataset`, which reads only the subset's images."""
    labels = ds.split_labels(config.split)
    groups = split_row_groups(ds.info, ds.splits, config.split)
    idx = stratified_group_indices(labels, groups, config.max_images, config.seed)
    features = encoder.encode(ds.split_images(config.split, idx))
    if features.shape != (len(idx), encoder.dim):
        raise RaynasError(f"encoder {encoder.version} returned features of shape {features.shape} "
                          f"for {len(idx)} images, expected ({len(idx)}, {encoder.dim})",
                          "fix the encoder's encode() or dim")
    return summarise(features, labels[idx], dataset=ds.info.name, content_hash=ds.info.content_hash,
                     encoder_version=encoder.version, config=config)


# -- Parquet ---------------------------------------------------------------------------------------

_VALUES = pa.list_(pa.float32())


def _list_column(rows: np.ndarray) -> pa.Array:
    rows = np.ascontiguousarray(rows, dtype=np.float32).reshape(len(rows), -1)
    width = rows.shape[1]
    offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1)), type=_VALUES)


def _part(part: str, n: int, **columns: pa.Array) -> pa.Table:
    schema = {"part": pa.string(), "label": pa.int32(), "count": pa.int64(), "weight": pa.float64(),
              "trace": pa.float64(), "values": _VALUES, "factor": _VALUES}
    data = {name: columns.get(name, pa.nulls(n, kind)) for name, kind in schema.items()}
    data["part"] = pa.array([part] * n, pa.string())
    return pa.table(data, schema=pa.schema(schema))


def to_table(e: DatasetEmbedding) -> pa.Table:
    k, m, L = e.num_classes, len(e.sample), len(e.sketch)
    table = pa.concat_tables([
        _part("class", k, label=pa.array(e.labels, pa.int32()), count=pa.array(e.counts, pa.int64()),
              weight=pa.array(e.weights, pa.float64()), trace=pa.array(e.traces, pa.float64()),
              values=_list_column(e.means), factor=_list_column(e.factors)),
        _part("sample", m, label=pa.array(e.sample_labels, pa.int32()), values=_list_column(e.sample)),
        _part("sketch", L, label=pa.array(np.arange(L, dtype=np.int32)), values=_list_column(e.sketch)),
    ])
    meta = {"format": FORMAT, "dataset": e.dataset, "content_hash": e.content_hash,
            "encoder_version": e.encoder_version, "dim": str(e.dim), "rank": str(e.rank),
            "config": e.config.to_json()}
    return table.replace_schema_metadata(meta)


def to_parquet_bytes(e: DatasetEmbedding) -> bytes:
    sink = io.BytesIO()
    pq.write_table(to_table(e), sink, compression="zstd")
    return sink.getvalue()


def _matrix(table: pa.Table, column: str, width: int) -> np.ndarray:
    values = pc.list_flatten(table.column(column)).to_numpy(zero_copy_only=False)
    return values.astype(np.float32).reshape(table.num_rows, width)


def from_table(table: pa.Table, source: str = "embedding") -> DatasetEmbedding:
    """Rebuild an embedding; anything that is not a complete raynas embedding is refused."""
    def refuse(why: str) -> RaynasError:
        return RaynasError(f"{source} is not a readable raynas embedding ({why})",
                           "delete the file; `EmbeddingStore.ensure` (or `raynas distance`) embeds the dataset again")

    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("format") != FORMAT:
        raise refuse(f"format tag {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        config = EmbeddingConfig.from_json(meta["config"])
        d, r = int(meta["dim"]), int(meta["rank"])
        parts = {p: table.filter(pc.equal(table.column("part"), p)) for p in ("class", "sample", "sketch")}
        cls, sample, sketch = parts["class"], parts["sample"], parts["sketch"]
        factors = _matrix(cls, "factor", d * r).reshape(-1, d, r)
        embedding = DatasetEmbedding(
            dataset=meta["dataset"], content_hash=meta["content_hash"], encoder_version=meta["encoder_version"],
            config=config,
            labels=cls.column("label").to_numpy().astype(np.int32),
            counts=cls.column("count").to_numpy().astype(np.int64),
            weights=cls.column("weight").to_numpy().astype(np.float64),
            means=_matrix(cls, "values", d), factors=factors,
            traces=cls.column("trace").to_numpy().astype(np.float64),
            sample=_matrix(sample, "values", d),
            sample_labels=sample.column("label").to_numpy().astype(np.int32),
            sketch=_matrix(sketch, "values", config.quantiles),
        )
    except RaynasError as exc:
        raise refuse(exc.problem) from exc
    except (KeyError, ValueError, TypeError, pa.ArrowException) as exc:
        raise refuse(f"{type(exc).__name__}: {exc}") from exc
    if embedding.num_classes == 0 or len(embedding.sample) == 0 or len(embedding.sketch) != config.slices:
        raise refuse(f"{embedding.num_classes} classes, {len(embedding.sample)} sample points, "
                     f"{len(embedding.sketch)} of {config.slices} sketch slices")
    return embedding


def from_parquet_bytes(data: bytes, source: str = "embedding") -> DatasetEmbedding:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise RaynasError(f"{source} is not a readable Parquet file ({exc})",
                          "delete the file; `EmbeddingStore.ensure` (or `raynas distance`) embeds the dataset "
                          "again") from exc
    return from_table(table, source)
