"""The embedding store: layout, atomic idempotent writes, staleness, damaged files."""

import pickle

import pytest

from raynas.data import DatasetStore, make_dataset
from raynas.errors import RaynasError
from raynas.ot import EmbeddingConfig, EmbeddingStore
from raynas.ot.embedding import to_parquet_bytes
from raynas.storage import Storage
from tests.ot.helpers import synthetic


@pytest.fixture
def store(tmp_path):
    return EmbeddingStore(Storage(tmp_path / "emb"))


def test_put_get_layout_and_listing(store, tmp_path):
    a, b = synthetic("alpha", seed=1), synthetic("beta", seed=2)
    other = synthetic("alpha", seed=1, version="test-v2")
    for e in (a, b, other):
        store.put(e)
    assert (tmp_path / "emb" / "test-v1" / "alpha.parquet").is_file()
    assert store.path("beta", "test-v1") == str(tmp_path / "emb" / "test-v1" / "beta.parquet")
    assert store.names("test-v1") == ["alpha", "beta"] and store.names("test-v2") == ["alpha"]
    assert store.versions() == ["test-v1", "test-v2"]
    assert store.get("alpha", "test-v1") == a and store.get("alpha", "test-v2") == other
    assert store.get("gamma", "test-v1") is None and store.names("none-yet") == []
    assert [e.dataset for e in store.all("test-v1")] == ["alpha", "beta"]


def test_put_is_idempotent_and_leaves_no_temporary_files(store, tmp_path):
    e = synthetic("alpha")
    path = tmp_path / "emb" / "test-v1" / "alpha.parquet"
    store.put(e)
    first = path.read_bytes()
    store.put(e)
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["alpha.parquet"]


def test_remove_one_version_or_all(store):
    for version in ("test-v1", "test-v2"):
        store.put(synthetic("alpha", version=version))
    store.put(synthetic("beta"))
    assert store.remove("alpha", "test-v1") == ["test-v1"]
    assert store.get("alpha", "test-v1") is None and store.get("alpha", "test-v2") is not None
    assert store.remove("alpha") == ["test-v2"] and store.remove("alpha") == []
    assert store.names("test-v1") == ["beta"] and store.versions() == ["test-v1"]


def test_bad_names_and_versions_are_refused(store):
    with pytest.raises(RaynasError, match="dataset name"):
        store.get("../x", "test-v1")
    for version in ("", "a/b", ".hidden", "encoders"):
        with pytest.raises(RaynasError, match="not an encoder version"):
            store.get("alpha", version)


def test_damaged_and_misplaced_files_name_the_file(store, tmp_path):
    store.storage.write_bytes(b"garbage", "test-v1", "alpha.parquet")
    with pytest.raises(RaynasError, match="alpha.parquet is not a readable Parquet file") as err:
        store.get("alpha", "test-v1")
    assert "delete the file" in err.value.fix
    (tmp_path / "emb" / "test-v1" / "beta.parquet").write_bytes(to_parquet_bytes(synthetic("gamma")))
    with pytest.raises(RaynasError, match="beta.parquet holds 'gamma'"):
        store.get("beta", "test-v1")


class _CountingEncoder:
    """Wraps the pixel encoder and counts calls, to see when the store re-embeds."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim

    def encode(self, images):
        self.calls += 1
        return self.inner.encode(images)


def test_ensure_embeds_only_missing_or_stale(tmp_path, suite_home, pixel_encoder, suite_embeddings):
    store, enc = EmbeddingStore(Storage(tmp_path / "emb")), _CountingEncoder(pixel_encoder)
    ds = DatasetStore(suite_home).load("digits")
    first = store.ensure(ds, enc)
    assert enc.calls == 1 and first == suite_embeddings["digits"]
    assert store.ensure(ds, enc) == first and enc.calls == 1  # stored and current: no work

    changed = make_dataset("digits", ds.images[::-1].copy(), ds.labels[::-1].copy(), ds.info.class_names,
                           domain=ds.info.domain)
    assert changed.info.content_hash != ds.info.content_hash
    stale = store.ensure(changed, enc)  # stale content hash: embedded again and replaced
    assert enc.calls == 2 and stale.content_hash == changed.info.content_hash
    assert store.get("digits", enc.version).content_hash == changed.info.content_hash

    other = store.ensure(changed, enc, EmbeddingConfig(sample_size=100))  # another config: embedded again
    assert enc.calls == 3 and len(other.sample) == 100


def test_ensure_replaces_a_damaged_entry(tmp_path, suite_home, pixel_encoder):
    store = EmbeddingStore(Storage(tmp_path / "emb"))
    ds = DatasetStore(suite_home).load("lfw-faces")
    store.storage.write_bytes(b"garbage", pixel_encoder.version, "lfw-faces.parquet")
    e = store.ensure(ds, pixel_encoder)
    assert store.get("lfw-faces", pixel_encoder.version) == e


def test_store_pickles_and_works_on_uris(tmp_path):
    store = EmbeddingStore(f"file://{tmp_path / 'emb'}")
    e = synthetic("alpha")
    store.put(e)
    clone = pickle.loads(pickle.dumps(store))  # what a Ray actor or task receives
    assert clone.get("alpha", "test-v1") == e and repr(clone).startswith("EmbeddingStore('file://")
    assert (tmp_path / "emb" / "test-v1" / "alpha.parquet").is_file()


def test_store_on_s3(s3_uri):
    store = EmbeddingStore(s3_uri)
    e = synthetic("alpha")
    store.put(e)
    assert pickle.loads(pickle.dumps(store)).get("alpha", "test-v1") == e
    assert store.names("test-v1") == ["alpha"] and store.versions() == ["test-v1"]


def test_rank_uses_the_stored_sources_and_skips_missing_ones(ot_storage, suite_embeddings):
    from raynas.ot.distances import rank_sources

    store = EmbeddingStore(ot_storage)
    target = suite_embeddings["mnist5k-rot"]
    sources = ["mnist5k", "glyph-digits", "textures"]
    ranking = store.rank(target, sources + ["never-embedded"], "otdd")
    expected = rank_sources(target, [suite_embeddings[s] for s in sources], "otdd")
    assert ranking.names() == expected.names() and [r.distance for r in ranking] == [r.distance for r in expected]
    assert store.rank(target, ["never-embedded"]) is None
