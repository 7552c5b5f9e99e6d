"""The zoo and the embedding store have one interface, whether read directly or through an actor."""

import inspect

import pytest

from raynas.ot.store import EmbeddingStore
from raynas.service.actors import EmbeddingStoreActor, ZooActor
from raynas.service.handles import ActorEmbeddings, ActorZoo
from raynas.service.protocols import EmbeddingHandle, ZooHandle
from raynas.zoo.store import Zoo


def _methods(protocol):
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]


def _params(fn):
    return [p.name for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("protocol, classes", [(ZooHandle, [Zoo, ActorZoo]),
                                               (EmbeddingHandle, [EmbeddingStore, ActorEmbeddings])])
def test_direct_and_actor_handles_implement_the_protocol_with_its_signatures(protocol, classes):
    for cls in classes:
        for name in _methods(protocol):
            assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
            assert _params(getattr(cls, name)) == _params(getattr(protocol, name)), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("actor, protocol", [(ZooActor, ZooHandle), (EmbeddingStoreActor, EmbeddingHandle)])
def test_actors_serve_what_their_handles_call(actor, protocol):
    served = set(dir(actor.__ray_metadata__.modified_class))
    called = {n for n in _methods(protocol)} - {"load_weights", "ensure"}  # served as weights_ref / computed here
    assert called <= served, called - served


def test_both_kinds_pass_isinstance(tmp_path):
    assert isinstance(Zoo(tmp_path / "z"), ZooHandle) and isinstance(EmbeddingStore(tmp_path / "e"), EmbeddingHandle)
