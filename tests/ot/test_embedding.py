"""Dataset embeddings: class statistics, sample, sliced sketch, config and the Parquet layout."""

import dataclasses
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.ot import EmbeddingConfig, embed_dataset
from raynas.ot.embedding import (FORMAT, class_statistics, from_parquet_bytes, from_table, sketch_projections,
                                 sliced_sketch, summarise, to_parquet_bytes, to_table)
from tests.ot.helpers import synthetic

configs = st.builds(EmbeddingConfig, split=st.sampled_from(["train", "val", "test"]),
                    max_images=st.integers(1, 10**6), rank=st.integers(1, 512), ridge=st.floats(0, 1),
                    sample_size=st.integers(1, 10**5), slices=st.integers(1, 4096), quantiles=st.integers(1, 512),
                    moments=st.integers(0, 12), seed=st.integers(0, 2**31))


@given(configs)
def test_config_round_trips_through_json(config):
    text = config.to_json()
    assert EmbeddingConfig.from_json(text) == config
    assert EmbeddingConfig.from_json(json.loads(text)) == config


def test_config_defaults():
    c = EmbeddingConfig()
    assert (c.split, c.max_images, c.rank, c.sample_size, c.slices, c.quantiles, c.moments, c.seed) == \
        ("train", 2000, 16, 500, 256, 64, 4, 0)


@pytest.mark.parametrize("change", [{"rank": 0}, {"split": "dev"}, {"ridge": -1.0}, {"slices": "4"},
                                    {"quantiles": True}, {"moments": -1}, {"ridge": float("nan")}])
def test_invalid_configs_are_refused(change):
    with pytest.raises(RaynasError, match="embedding config"):
        EmbeddingConfig(**change)


def test_unknown_config_keys_are_refused():
    with pytest.raises(RaynasError, match="unknown embedding config keys: colour"):
        EmbeddingConfig.from_json({"colour": 3})


# -- statistics ------------------------------------------------------------------------------------

def _data(n=300, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + y[:, None]
    return x, y


def test_full_rank_factors_reproduce_class_covariances():
    x, y = _data()
    labels, counts, means, factors, traces = class_statistics(x, y, rank=6, ridge=0.0)
    assert labels.tolist() == [0, 1, 2] and counts.tolist() == np.bincount(y).tolist()
    for c in range(3):
        xc = x[y == c]
        cov = np.cov(xc.T, bias=True)
        assert np.allclose(means[c], xc.mean(0), atol=1e-5)
        f = factors[c].astype(np.float64)
        assert np.allclose(f @ f.T, cov, atol=1e-4)
        assert traces[c] == pytest.approx(np.trace(cov), rel=1e-5)


def test_low_rank_factors_keep_the_top_eigenvalues():
    x, y = _data(d=8)
    *_, factors, traces = class_statistics(x, y, rank=3, ridge=0.0)
    assert factors.shape == (3, 8, 3) and factors.dtype == np.float32
    top = np.linalg.eigvalsh(np.cov(x[y == 1].T, bias=True))[::-1][:3]
    f = factors[1].astype(np.float64)
    assert np.allclose(np.linalg.svd(f, compute_uv=False) ** 2, top, rtol=1e-4)
    assert traces[1] == pytest.approx(top.sum(), rel=1e-5)  # truncated trace = ||F||_F^2
    peaks = np.take_along_axis(factors, np.abs(factors).argmax(axis=1)[:, None, :], axis=1)
    assert np.all(peaks > 0)  # sign-fixed columns


def test_ridge_keeps_single_image_classes_finite():
    x, y = _data(n=20)
    y[0] = 7  # a class of one image: zero covariance
    *_, factors, traces = class_statistics(x, y, rank=4, ridge=1e-6)
    assert np.isfinite(factors).all() and traces[-1] == pytest.approx(4e-6 * x.var(0).mean(), rel=1e-3)


def test_sketch_projections_are_unit_and_depend_only_on_the_dimension():
    theta, psi = sketch_projections(10, 32, 4)
    assert theta.shape == (32, 10) and psi.shape == (32, 5)
    assert np.allclose(np.linalg.norm(theta, axis=1), 1) and np.allclose(np.linalg.norm(psi, axis=1), 1)
    again = sketch_projections(10, 32, 4)
    assert np.array_equal(theta, again[0]) and np.array_equal(psi, again[1])
    assert not np.allclose(sketch_projections(11, 32, 4)[0][:, :10], theta)


def test_sketch_without_moments_is_the_quantiles_of_the_projections():
    x, y = _data()
    sketch = sliced_sketch(x, y, slices=16, quantiles=8, moments=0)
    theta, psi = sketch_projections(6, 16, 0)
    proj = psi[:, 0] * (x @ theta.T)
    expected = np.quantile(proj, (np.arange(8) + 0.5) / 8, axis=0).T
    assert sketch.shape == (16, 8) and np.allclose(sketch, expected, atol=1e-5)


def test_sketch_moments_use_class_means_of_powers():
    x, y = _data()
    theta, psi = sketch_projections(6, 4, 2)
    p = x @ theta.T
    m1 = np.stack([p[y == c].mean(0) for c in range(3)])[y]
    m2 = np.stack([(p[y == c] ** 2 / 2).mean(0) for c in range(3)])[y]
    z = psi[:, 0] * p + psi[:, 1] * m1 + psi[:, 2] * m2
    expected = np.quantile(z, (np.arange(5) + 0.5) / 5, axis=0).T
    assert np.allclose(sliced_sketch(x, y, slices=4, quantiles=5, moments=2), expected, atol=1e-5)


def test_summarise_refuses_bad_features():
    with pytest.raises(RaynasError, match="non-finite"):
        summarise(np.full((4, 2), np.nan), np.zeros(4), dataset="x", content_hash="h", encoder_version="v")
    with pytest.raises(RaynasError, match="do not describe"):
        summarise(np.zeros((4, 2)), np.zeros(3), dataset="x", content_hash="h", encoder_version="v")


# -- embedding real datasets ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist5k", "glyph-upper", "lfw-faces", "photo-patches"])
def test_suite_embeddings_have_the_documented_shapes(suite_embeddings, suite_home, name):
    e = suite_embeddings[name]
    info = DatasetStore(suite_home).info(name)
    n = min(2000, info.split_counts["train"])
    assert e.dataset == name and e.content_hash == info.content_hash and e.encoder_version.startswith("pixels-")
    assert e.num_classes == info.num_classes and e.dim == 64 and e.rank == 16
    assert e.counts.sum() == n and e.weights.sum() == pytest.approx(1.0)
    assert e.means.shape == (e.num_classes, 64) and e.factors.shape == (e.num_classes, 64, 16)
    assert len(e.sample) == len(e.sample_labels) == min(500, n)
    sample_counts = np.bincount(e.sample_labels, minlength=e.num_classes)
    assert np.all(np.abs(sample_counts - e.weights * len(e.sample)) < 1 + 1e-9)  # stratified
    assert e.sketch.shape == (256, 64) and np.all(np.diff(e.sketch, axis=1) >= 0)  # quantiles ascend


def test_embedding_is_deterministic(suite_embeddings, suite_home, pixel_encoder):
    ds = DatasetStore(suite_home).load("glyph-greek")
    again = embed_dataset(ds, pixel_encoder)
    assert again == suite_embeddings["glyph-greek"]
    assert to_parquet_bytes(again) == to_parquet_bytes(suite_embeddings["glyph-greek"])


def test_another_seed_gives_another_sample(suite_embeddings, suite_home, pixel_encoder):
    ds = DatasetStore(suite_home).load("digits")
    other = embed_dataset(ds, pixel_encoder, EmbeddingConfig(seed=1))
    assert not np.array_equal(other.sample, suite_embeddings["digits"].sample)


def test_encoder_output_shape_is_checked(suite_home, pixel_encoder):
    class Broken:
        name, version, dim = "broken", "broken-1", 3

        def encode(self, images):
            return np.zeros((len(images), 2), np.float32)

    with pytest.raises(RaynasError, match="expected"):
        embed_dataset(DatasetStore(suite_home).load("digits"), Broken())


# -- Parquet ----------------------------------------------------------------------------------------

def test_parquet_round_trip_is_exact(suite_embeddings):
    e = suite_embeddings["textures"]
    back = from_parquet_bytes(to_parquet_bytes(e))
    assert back == e and back.config == e.config
    assert back.factors.dtype == np.float32 and back.weights.dtype == np.float64


def test_parquet_is_readable_with_plain_pyarrow(suite_embeddings):
    e = suite_embeddings["glyph-digits"]
    table = pq.read_table(io.BytesIO(to_parquet_bytes(e)))
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["format"] == FORMAT == "raynas-embedding/1"
    assert (meta["dataset"], meta["content_hash"], meta["encoder_version"]) == \
        (e.dataset, e.content_hash, e.encoder_version)
    assert (meta["dim"], meta["rank"]) == ("64", "16") and EmbeddingConfig.from_json(meta["config"]) == e.config
    assert table.column_names == ["part", "label", "count", "weight", "trace", "values", "factor"]
    parts = table.column("part").to_pylist()
    assert [parts.count(p) for p in ("class", "sample", "sketch")] == [10, 500, 256]
    classes = table.filter(pc.equal(table.column("part"), "class"))
    assert classes.column("count").to_pylist() == e.counts.tolist()
    assert np.array_equal(np.array(classes.column("values")[3].as_py(), np.float32), e.means[3])
    assert len(classes.column("factor")[0].as_py()) == 64 * 16
    sketch = table.filter(pc.equal(table.column("part"), "sketch"))
    assert sketch.column("factor").null_count == 256 and len(sketch.column("values")[0].as_py()) == 64


def _refused(data_or_table, match):
    with pytest.raises(RaynasError, match=match) as err:
        if isinstance(data_or_table, bytes):
            from_parquet_bytes(data_or_table, "embedding file x.parquet")
        else:
            from_table(data_or_table, "embedding file x.parquet")
    assert "x.parquet" in str(err.value) and "delete the file" in err.value.fix


def test_damaged_and_foreign_files_are_refused():
    e = synthetic("a")
    data = to_parquet_bytes(e)
    _refused(data[: len(data) // 2], "not a readable Parquet file")
    _refused(b"", "not a readable Parquet file")
    table = to_table(e)
    _refused(table.replace_schema_metadata({}), "format tag None")
    _refused(pa.table({"x": [1]}).replace_schema_metadata({"format": "raynas-dataset/1"}), "format tag")
    meta = dict(table.schema.metadata)
    _refused(table.replace_schema_metadata({**meta, b"config": b"{\"bogus\": 1}"}), "unknown embedding config")
    _refused(table.filter(pc.not_equal(table.column("part"), "sketch")), "0 of 32 sketch slices")
    _refused(table.replace_schema_metadata({**meta, b"dim": b"5"}), "ValueError|ArrowInvalid")


def test_a_small_config_round_trips(tmp_path):
    e = synthetic("b", classes=4, n=50, dim=3)
    assert e.rank == 3 and len(e.sample) == 40 and e.sketch.shape == (32, 16)  # rank capped at d
    assert from_parquet_bytes(to_parquet_bytes(e)) == e
    assert dataclasses.replace(e, dataset="c") != e
