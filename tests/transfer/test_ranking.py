"""Ranking zoo sources: embeddings made from other data than the supernet saw are not used."""

import pytest

from raynas.data import DatasetStore, make_dataset
from raynas.ot.embedding import EmbeddingConfig
from raynas.ot.encoders import create_encoder
from raynas.ot.store import EmbeddingStore
from raynas.storage import Storage
from raynas.transfer.ranking import NoSource, rank_zoo
from raynas.zoo.manifest import SourceDataset, ZooManifest


def _entry(name, content_hash):
    return ZooManifest(name=name, kind="single", sources=(SourceDataset(name, content_hash, 10),), space={},
                       algo="darts", epochs=1, val_acc=None)


def test_stale_or_missing_source_embeddings_are_left_out(suite_home, tmp_path):
    store = DatasetStore(suite_home)
    embeddings = EmbeddingStore(Storage(tmp_path / "emb"))
    encoder = create_encoder("pixels", storage=embeddings.storage, home=suite_home)
    config = EmbeddingConfig()
    # "gone" was embedded, but from other content than its zoo entry was trained on, and its data is not here
    stale = make_dataset("gone", store.load("digits").images, store.load("digits").labels,
                         [str(i) for i in range(10)], domain="t")
    embeddings.ensure(stale, encoder, config)
    entries = [_entry("mnist5k", store.info("mnist5k").content_hash), _entry("gone", "another-hash"),
               _entry("nowhere", "h")]
    ranked = rank_zoo("mnist5k-rot", entries, store, embeddings, encoder)
    assert [r["dataset"] for r in ranked.rows()] == ["mnist5k"]
    assert sorted(ranked.missing) == ["gone", "nowhere"]
    assert embeddings.content_hashes(encoder.version, ["mnist5k", "gone", "nowhere"]) == {
        "mnist5k": store.info("mnist5k").content_hash, "gone": stale.info.content_hash}


def test_nothing_to_rank_is_no_source(suite_home, tmp_path):
    store = DatasetStore(suite_home)
    embeddings = EmbeddingStore(Storage(tmp_path / "emb"))
    encoder = create_encoder("pixels", storage=embeddings.storage, home=suite_home)
    with pytest.raises(NoSource, match="no single-dataset supernets"):
        rank_zoo("digits", [], store, embeddings, encoder)
    with pytest.raises(NoSource, match="no zoo source has"):
        rank_zoo("digits", [_entry("nowhere", "h")], store, embeddings, encoder)
