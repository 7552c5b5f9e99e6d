"""One interface to the zoo and the embedding store, served by an actor or read directly.

With Ray connected (``ray.is_initialized()``), calls go to the storage's named actor, which
is created on first use; otherwise the storage is opened in this process. Both expose the
same methods, so the CLI and Tune trials never branch on it.

The actor's name carries the hash of the raynas code (:func:`raynas.service.actors.actor_name`):
opening the storage ends the actors of other code that serve it, so a later job never runs on
an earlier job's code. A job still using such an actor finds it ended and makes its own again
(methods are idempotent, so the call is simply repeated there).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from raynas.errors import RaynasError
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import Zoo


CALL_TIMEOUT_S = 600.0  # a call that takes longer is stuck (a read of the largest supernet takes seconds)
RECONNECT_TRIES = 5  # an ended actor's name may take a moment to come free for its replacement


def _ray_connected() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency, but keep the direct path importable
        return False
    return ray.is_initialized()


def connect(kind: str, location: str, end_others: bool = True):
    """The named actor of ``kind`` serving ``location`` with this process's code, created if missing,
    after ending (``end_others``) the actors of other code serving it. Safe with many clients at once:
    ``get_if_exists`` gives all clients of one code the same actor, and ending an actor twice is harmless."""
    import ray

    from raynas.service.actors import ACTOR_CLASSES, ACTOR_OPTIONS, NAMESPACE, actor_name, actor_prefix

    name, prefix = actor_name(kind, location), actor_prefix(kind, location)
    actor = ACTOR_CLASSES[kind].options(name=name, **ACTOR_OPTIONS).remote(location)
    if end_others:
        for entry in ray.util.list_named_actors(all_namespaces=True):
            other = entry["name"]
            if entry["namespace"] == NAMESPACE and other != name and (other == prefix or  # unhashed: older raynas
                                                                      other.startswith(prefix + "-")):
                with contextlib.suppress(ValueError):  # already ended by another client
                    ray.kill(ray.get_actor(other, namespace=NAMESPACE), no_restart=True)
    return actor


class _ActorHandle:
    """Blocking calls to the named actor of ``kind`` that serves the storage at ``location``."""

    kind = ""

    def __init__(self, location: str):
        self.location = location
        self.actor = connect(self.kind, location)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _call(self, method: str, *args: Any) -> Any:
        """The call, made again on a new actor when this one was ended for good (by a job with other
        code, or by hand); a crashed actor restarts by itself and Ray repeats the call there."""
        import ray

        for attempt in range(RECONNECT_TRIES):
            try:
                return self._get(method, args)
            except ray.exceptions.ActorDiedError:
                if attempt == RECONNECT_TRIES - 1:
                    raise
                time.sleep(0.2 * attempt)
                self.actor = connect(self.kind, self.location, end_others=False)  # no ending back and forth

    def _get(self, method: str, args: tuple) -> Any:
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

    kind = "zoo"

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

        for attempt in range(2):
            refs, manifest = self._call("weights_ref", name, version)
            try:
                return ray.get(refs[0]), manifest
            except ray.exceptions.ObjectLostError:  # the actor that held them was ended meanwhile: ask again
                if attempt:
                    raise

    def check_replaceable(self, name: str, kind: str, space: dict) -> None:
        self._call("check_replaceable", name, kind, space)

    def publish(self, manifest: ZooManifest, weights: dict[str, np.ndarray]) -> ZooManifest:
        return self._call("publish", manifest, weights)

    def remove(self, name: str) -> None:
        self.manifest(name)  # the not-found error, before anything is done
        self._call("remove", name)


def open_zoo(storage: Storage | str, use_actor: bool | None = None) -> Zoo | ActorZoo:
    """The zoo at ``storage``: through its actor when Ray is connected, else directly."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if use_actor if use_actor is not None else _ray_connected():
        from raynas.service.actors import storage_location

        return ActorZoo(storage_location(storage))
    return Zoo(storage)


class ActorEmbeddings(_ActorHandle):
    """The embedding store through its actor. Embeddings are computed by the caller (which
    has the images and the CPU) and only stored and served by the actor."""

    kind = "embeddings"

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
        from raynas.service.actors import storage_location

        return ActorEmbeddings(storage_location(storage))
    return EmbeddingStore(storage)
