"""A warm-started supernet for a search: choose the source, build the target, map the tensors."""

from __future__ import annotations

from typing import Any

from raynas.data.store import DatasetStore
from raynas.search.config import SearchConfig
from raynas.search.loop import dataset_space
from raynas.space.supernet import Supernet, create_supernet
from raynas.transfer.head import HEAD_INITS, init_head
from raynas.transfer.mapping import TRANSFER_MODES, transfer_state
from raynas.transfer.sources import SelectionContext, choose_source


def warm_start(config: SearchConfig, store: DatasetStore, zoo, embeddings=None,
               embedding_storage=None) -> tuple[Supernet | None, dict[str, Any]]:
    """The initial supernet of a search (None: from scratch) and the record of how it was made."""
    TRANSFER_MODES.get(config.transfer_mode)
    HEAD_INITS.get(config.head)
    if config.transfer == "scratch":
        return None, {"strategy": "scratch"}
    info = store.info(config.dataset)
    space = dataset_space(config, info)
    choice = choose_source(SelectionContext(config, info, space, store, zoo, embeddings, embedding_storage))
    record = {**choice.to_json(), "mode": config.transfer_mode, "alpha_temperature": config.alpha_temperature}
    if choice.entry is None:
        return None, record
    weights, _ = zoo.load_weights(choice.entry.name, choice.entry.version)
    model = create_supernet(space, seed=config.seed)
    record["tensors"] = transfer_state(weights, model, config.transfer_mode, config.alpha_temperature).to_json()
    record["head"] = init_head(config.head, model, config, store)
    return model, record
