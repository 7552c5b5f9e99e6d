"""Optimal-transport dataset distances: encoders, dataset embeddings, their store, and ranking.

A dataset is embedded once per encoder version (:func:`embed_dataset`, kept by
:class:`EmbeddingStore`); zoo sources are then ranked for a target from the stored
summaries alone (:func:`rank_sources`).
"""

from raynas.ot.distances import (DEFAULT_METHOD, DISTANCES, Cascade, Ranking, RankedSource, dataset_distance,
                                 rank_sources)
from raynas.ot.embedding import DatasetEmbedding, EmbeddingConfig, embed_dataset
from raynas.ot.encoders import DEFAULT_ENCODER, ENCODERS, Encoder, create_encoder
from raynas.ot.store import EmbeddingStore

__all__ = ["Cascade", "DEFAULT_ENCODER", "DEFAULT_METHOD", "DISTANCES", "DatasetEmbedding", "ENCODERS",
           "EmbeddingConfig", "EmbeddingStore", "Encoder", "RankedSource", "Ranking", "create_encoder",
           "dataset_distance", "embed_dataset", "rank_sources"]
