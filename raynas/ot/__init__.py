"""Optimal-transport dataset distances: encoders, dataset embeddings, their store, and ranking.

A dataset is embedded once per encoder version (:func:`embed_dataset`, kept by
:class:`EmbeddingStore`); zoo sources are then ranked for a target from the stored
summaries alone (:func:`rank_sources`).
"""

import importlib

# name -> module; imported on first use, so opening an embedding store (every Tune trial does)
# does not pay for POT and scikit-learn (2-3 s) unless distances are computed
_EXPORTS = {
    "Cascade": "distances", "DEFAULT_METHOD": "distances", "DISTANCES": "distances", "RankedSource": "distances",
    "Ranking": "distances", "dataset_distance": "distances", "rank_sources": "distances",
    "DatasetEmbedding": "embedding", "EmbeddingConfig": "embedding", "embed_dataset": "embedding",
    "DEFAULT_ENCODER": "encoders", "ENCODERS": "encoders", "Encoder": "encoders", "create_encoder": "encoders",
    "EmbeddingStore": "store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raynas.ot' has no attribute '{name}'")
    return getattr(importlib.import_module(f"raynas.ot.{_EXPORTS[name]}"), name)
