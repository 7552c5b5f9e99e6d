"""One interface to the zoo and the embedding store, served by an actor or read directly.

With Ray connected (``ray.is_initialized()``), calls go to the storage's named actor, which
is created on first use; otherwise the storage is opened in this process. Both expose the
same methods, so the CLI and Tune trials never branch on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raynas.errors import RaynasError
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import Zoo


CALL_TIMEOUT_S = 600.0  # a call that takes longer is stuck (a read of the largest supernet takes seconds)


def _ray_connected() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency, but keep the direct path importable
        return False
    return ray.is_initialized()


class _ActorHandle:
    """Blocking calls to one named actor, which serves the storage at ``location``."""

    def __init__(self, actor, location: str):
        self.actor, self.location = actor, location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        try:
            return ray.get(getattr(self.actor, method).remote(*args), timeout=CALL_TIMEOUT_S)
        except ray.exceptions.RayTaskError as exc:  # the actor's own error, without Ray's wrapping and traceback
            if isinstance(exc.cause, RaynasError):
                raise exc.cause from None
            raise
        except ray.exceptions.GetTimeoutError:
            raise RaynasError(f"{type(self).__name__} for {self.location}: '{method}' got no answer in "
                              f"{CALL_TIMEOUT_S:.0f} s (the actor is stuck or cannot be scheduled)",
                              "check the cluster in the Ray dashboard (Actors page, namespace raynas); "
                              "restarting the cluster recreates the actor from storage") from None


class ActorZoo(_ActorHandle):
    """The zoo through its actor; weights arrive zero-copy from the object store (read-only)."""

    def names(self) -> list[str]:
        return self._call("names")

    def list(self) -> list[ZooManifest]:
        return self._call("list")

    def scan(self) -> tuple[list[ZooManifest], dict[str, str]]:
        return self._call("scan")

    def manifest(self, name: str, version: str | None = None) -> ZooManifest:
        return self._call("manifest", name, version)

    def load_weights(self, name: str, version: str | None = None) -> tuple[dict[str, np.ndarray], ZooManifest]:
        import ray

        refs, manifest = self._call("weights_ref", name, version)
        return ray.get(refs[0]), manifest

    def check_replaceable(self, name: str, kind: str, space: dict) -> None:
        self._call("check_replaceable", name, kind, space)

    def publish(self, manifest: ZooManifest, weights: dict[str, np.ndarray]) -> ZooManifest:
        return self._call("publish", manifest, weights)

    def remove(self, name: str) -> None:
        self.manifest(name)  # the not-found error, before anything is done
        self._call("remove", name)


def zoo_actor(storage: Storage):
    """The named actor serving ``storage`` (created if it does not exist yet)."""
    from raynas.service.actors import ACTOR_OPTIONS, ZooActor, actor_name, storage_location

    location = storage_location(storage)
    return ZooActor.options(name=actor_name("zoo", location), **ACTOR_OPTIONS).remote(location), location


def open_zoo(storage: Storage | str, use_actor: bool | None = None) -> Zoo | ActorZoo:
    """The zoo at ``storage``: through its actor when Ray is connected, else directly."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if use_actor if use_actor is not None else _ray_connected():
        return ActorZoo(*zoo_actor(storage))
    return Zoo(storage)


class ActorEmbeddings(_ActorHandle):
    """The embedding store through its actor. Embeddings are computed by the caller (which
    has the images and the CPU) and only stored and served by the actor."""

    def versions(self) -> list[str]:
        return self._call("versions")

    def names(self, encoder_version: str) -> list[str]:
        return self._call("names", encoder_version)

    def get(self, dataset: str, encoder_version: str):
        return self._call("get", dataset, encoder_version)

    def content_hashes(self, encoder_version: str, datasets: list[str]) -> dict[str, str]:
        return self._call("content_hashes", encoder_version, datasets)

    def put(self, embedding) -> str:
        return self._call("put", embedding)

    def remove(self, dataset: str, encoder_version: str | None = None) -> list[str]:
        return self._call("remove", dataset, encoder_version)

    def rank(self, target, sources: list[str], method: str = "cascade", top: int | None = None):
        return self._call("rank", target, sources, method, top)

    def ensure(self, ds, encoder, config):
        from raynas.ot.store import ensure_embedding

        return ensure_embedding(self, ds, encoder, config)


def open_embeddings(storage: Storage | str, use_actor: bool | None = None):
    """The embedding store at ``storage``: through its actor when Ray is connected, else directly."""
    from raynas.ot.store import EmbeddingStore

    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if use_actor if use_actor is not None else _ray_connected():
        from raynas.service.actors import ACTOR_OPTIONS, EmbeddingStoreActor, actor_name, storage_location

        location = storage_location(storage)
        actor = EmbeddingStoreActor.options(name=actor_name("embeddings", location), **ACTOR_OPTIONS).remote(location)
        return ActorEmbeddings(actor, location)
    return EmbeddingStore(storage)
