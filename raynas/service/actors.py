"""The Ray actors that serve the zoo and the embedding store.

Both are named and detached in namespace ``raynas``, take no CPU (``num_cpus=0``: they must
never hold a slot that trials need), restart forever and reload their state from storage
in ``__init__``, so a killed actor comes back as it was. Calls that were in flight are
retried (``max_task_retries=-1``): every method is idempotent. Reads run concurrently on a
thread pool; writes are serialised by a lock.

A detached actor outlives the job that made it and keeps running that job's code, so its name
carries a hash of the raynas code: a job with other code gets an actor of its own and ends the
others of its storage (see :mod:`raynas.service.handles`).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import ray

from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import Zoo

NAMESPACE = "raynas"
# scheduling_strategy="DEFAULT": never inside the placement group of whoever creates the actor first.
# A Tune trial that created it would otherwise take the actor down with its placement group
# when the trial ends, and the actor could not restart (seen: the next trial's calls hung).
ACTOR_OPTIONS = dict(namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0, max_restarts=-1,
                     max_task_retries=-1, max_concurrency=8, scheduling_strategy="DEFAULT")


@functools.cache
def code_hash() -> str:
    """A sha256 over the raynas package's .py files (names and contents), once per process (a few ms)."""
    import raynas

    root, digest = Path(raynas.__file__).parent, hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def actor_prefix(kind: str, location: str) -> str:
    """What the names of every actor serving ``location``, whatever its code, start with."""
    return f"{kind}-{hashlib.sha1(location.encode()).hexdigest()[:12]}"


def actor_name(kind: str, location: str, code: str | None = None) -> str:
    """One actor per storage location and code: ``zoo-<hash of the location>-<hash of the code>``."""
    return f"{actor_prefix(kind, location)}-{(code or code_hash())[:12]}"


def identity() -> dict[str, str]:
    """The raynas version and code hash of this process, as an actor reports them."""
    from raynas import __version__

    return {"version": __version__, "code": code_hash()}


def storage_location(storage: Storage) -> str:
    """What identifies a storage across processes: the absolute path locally, else the URI."""
    return storage.root if storage.is_local else storage.uri


class _Cache:
    """A small LRU of object-store refs, so hot entries are read from storage once."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@ray.remote
class ZooActor:
    def __init__(self, location: str, keep_versions: int = 2, cache_entries: int = 16):
        self.zoo = Zoo(location, keep_versions)
        self.write_lock = threading.Lock()
        self.cache = _Cache(cache_entries)
        self.started = self.zoo.names()  # (re)starting reads the entries from storage

    def ping(self) -> list[str]:
        """The entries seen when this actor (re)started."""
        return self.started

    def identity(self) -> dict[str, str]:
        return identity()

    def node(self) -> str:
        """The id of the node this actor runs on (as the dashboard shows it)."""
        return ray.get_runtime_context().get_node_id()

    def names(self) -> list[str]:
        return self.zoo.names()

    def list(self) -> list[ZooManifest]:
        return self.zoo.list()

    def scan(self) -> tuple[list[ZooManifest], dict[str, str]]:
        return self.zoo.scan()

    def manifest(self, name: str, version: str | None = None) -> ZooManifest:
        return self.zoo.manifest(name, version)

    def weights_ref(self, name: str, version: str | None = None) -> tuple[list[ray.ObjectRef], ZooManifest]:
        """The weights as numpy arrays in the object store (owned by this actor), and the manifest.

        The ref is wrapped in a list so that Ray hands the reference itself to the caller,
        who then reads the arrays zero-copy.
        """
        manifest = self.zoo.manifest(name, version)
        key = (name, manifest.version)
        ref = self.cache.get(key)
        if ref is None:
            weights, manifest = self.zoo.load_weights(name, manifest.version)
            ref = ray.put(weights)
            self.cache.put(key, ref)
        return [ref], manifest

    def check_replaceable(self, name: str, kind: str, space: dict) -> None:
        self.zoo.check_replaceable(name, kind, space)

    def publish(self, manifest: ZooManifest, weights: dict[str, Any]) -> ZooManifest:
        with self.write_lock:
            return self.zoo.publish(manifest, weights)

    def remove(self, name: str) -> None:
        with self.write_lock:
            if self.zoo.versions(name):  # a retried call finds it gone: nothing to do
                self.zoo.remove(name)


@ray.remote
class EmbeddingStoreActor:
    """Serves stored embeddings from memory and answers rankings next to them.

    A query ships only the target's embedding; the sources (up to thousands) stay in this
    actor's memory, loaded from storage once.
    """

    def __init__(self, location: str):
        from raynas.ot.store import EmbeddingStore

        self.store = EmbeddingStore(location)
        self.write_lock = threading.Lock()
        self.cache: dict[tuple[str, str], tuple[Any, Any]] = {}  # key -> (file stamp, embedding)
        self.started = {v: self.store.names(v) for v in self.store.versions()}  # (re)starting reads storage

    def ping(self) -> dict[str, list[str]]:
        """Datasets per encoder version seen when this actor (re)started."""
        return self.started

    def identity(self) -> dict[str, str]:
        return identity()

    def versions(self) -> list[str]:
        return self.store.versions()

    def names(self, encoder_version: str) -> list[str]:
        return self.store.names(encoder_version)

    def get(self, dataset: str, encoder_version: str):
        """From memory while the stored file is unchanged (others may write the storage directly)."""
        key = (dataset, encoder_version)
        stamp = self.store.stamp(dataset, encoder_version)
        if stamp is None:
            self.cache.pop(key, None)
            return None
        hit = self.cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        embedding = self.store.get(dataset, encoder_version)
        self.cache[key] = (stamp, embedding)
        return embedding

    def content_hashes(self, encoder_version: str, datasets: list[str]) -> dict[str, str]:
        return self.store.content_hashes(encoder_version, datasets)

    def put(self, embedding) -> str:
        with self.write_lock:
            return self.store.put(embedding)  # the next get() sees the new file and reloads it

    def remove(self, dataset: str, encoder_version: str | None = None) -> list[str]:
        with self.write_lock:
            for key in [k for k in self.cache if k[0] == dataset and encoder_version in (None, k[1])]:
                del self.cache[key]
            return self.store.remove(dataset, encoder_version)

    def rank(self, target, sources: list[str], method: str = "cascade", top: int | None = None):
        """Rank the stored embeddings of ``sources`` (missing ones are skipped) against ``target``."""
        from raynas.ot.distances import rank_sources

        found = [e for e in (self.get(s, target.encoder_version) for s in sources) if e is not None]
        return rank_sources(target, found, method, top) if found else None


ACTOR_CLASSES = {"zoo": ZooActor, "embeddings": EmbeddingStoreActor}
