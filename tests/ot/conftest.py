"""Fixtures of the OT tests: the built-in suite embedded once per session with the pixel encoder."""

from __future__ import annotations

import pytest

from raynas.data import DatasetStore
from raynas.ot import EmbeddingStore, create_encoder
from raynas.ot.encoders import PCA_POOL
from raynas.storage import Storage


@pytest.fixture(scope="session")
def ot_storage(tmp_path_factory) -> Storage:
    """An embedding storage shared by the session (tests must not modify its entries)."""
    return Storage(tmp_path_factory.mktemp("embeddings"))


@pytest.fixture(scope="session")
def pixel_encoder(ot_storage, suite_home):
    return create_encoder("pixels", storage=ot_storage, home=suite_home)


@pytest.fixture(scope="session")
def suite_embeddings(ot_storage, pixel_encoder, suite_home):
    """name -> DatasetEmbedding of the 11 original built-in datasets (default config), in suite
    order: the pairwise checks grow with the square of the suite, and these are the sets whose
    neighbours the tests know."""
    datasets, store = DatasetStore(suite_home), EmbeddingStore(ot_storage)
    return {name: store.ensure(datasets.load(name), pixel_encoder) for name in PCA_POOL}
