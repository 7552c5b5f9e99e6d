"""Zoo and embedding-store actors: named, detached, restartable, zero-copy reads, one code path, one
actor per code."""

import time

import numpy as np
import pytest

from raynas.errors import RaynasError
from raynas.service import open_embeddings, open_zoo
from raynas.service.actors import (ACTOR_OPTIONS, NAMESPACE, ZooActor, actor_name, actor_prefix, code_hash,
                                   storage_location)
from raynas.service.handles import ActorEmbeddings, ActorZoo
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import Zoo


def _manifest(name="src", acc=0.5):
    return ZooManifest(name=name, kind="single", sources=[{"name": name, "content_hash": "h", "classes": 2}],
                       space={"in_channels": 1, "channels": 4, "cells": 3, "nodes": 3}, algo="darts", epochs=1,
                       val_acc=acc)


def _weights(seed=0):
    return {"alphas_normal": np.random.default_rng(seed).standard_normal((9, 8)).astype(np.float32),
            "stem.0.weight": np.full((12, 1, 3, 3), float(seed), np.float32)}


def _eventually(check, seconds=60):
    """Kills are asynchronous: the old instance may answer a call or two before it dies."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_without_ray_the_storage_is_used_directly(tmp_path):
    assert isinstance(open_zoo(tmp_path / "zoo", use_actor=False), Zoo)


def test_zoo_actor_serves_reads_writes_and_survives_a_kill(ray_session, tmp_path):
    import ray

    storage = Storage(tmp_path / "zoo")
    Zoo(storage).publish(_manifest("before"), _weights(1))  # written directly, before the actor exists
    zoo = open_zoo(storage)
    assert isinstance(zoo, ActorZoo)
    actor = ray.get_actor(actor_name("zoo", storage_location(storage)), namespace=NAMESPACE)
    assert ray.get(actor.ping.remote()) == ["before"]  # the actor loaded its state from storage
    stored = zoo.publish(_manifest("src"), _weights(2))
    assert stored.version and zoo.names() == ["before", "src"]
    weights, manifest = zoo.load_weights("src")
    assert manifest.version == stored.version and not weights["alphas_normal"].flags.writeable  # zero-copy view
    np.testing.assert_array_equal(weights["alphas_normal"], _weights(2)["alphas_normal"])
    assert open_zoo(storage).actor._actor_id == zoo.actor._actor_id  # one named actor per storage

    ray.kill(actor, no_restart=False)  # the actor restarts and reloads its state from storage
    assert _eventually(lambda: ray.get(zoo.actor.ping.remote(), timeout=60) == ["before", "src"])
    assert [m.name for m in zoo.list()] == ["before", "src"]
    np.testing.assert_array_equal(zoo.load_weights("before")[0]["stem.0.weight"], _weights(1)["stem.0.weight"])

    assert zoo.publish(_manifest("src"), _weights(2)).version == stored.version  # idempotent
    with pytest.raises(RaynasError, match="zoo entry 'nope' not found"):
        zoo.remove("nope")
    zoo.remove("before")
    assert Zoo(storage).names() == ["src"]  # writes reach storage
    ray.kill(zoo.actor, no_restart=True)


def test_zoo_actor_refuses_tampered_weights(ray_session, tmp_path):
    import ray

    storage = Storage(tmp_path / "zoo")
    stored = Zoo(storage).publish(_manifest(), _weights())
    path = storage.path("src", stored.version, "weights.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x55
    open(path, "wb").write(bytes(data))
    zoo = open_zoo(storage)
    with pytest.raises(RaynasError, match="does not match the sha256"):
        zoo.load_weights("src")
    ray.kill(zoo.actor, no_restart=True)


def test_embedding_actor_stores_serves_and_ranks(ray_session, tmp_path, suite_home):
    import ray

    from raynas.data import DatasetStore
    from raynas.ot.embedding import EmbeddingConfig
    from raynas.ot.encoders import create_encoder
    from raynas.ot.store import EmbeddingStore

    store = DatasetStore(suite_home)
    storage = Storage(tmp_path / "embeddings")
    encoder = create_encoder("pixels", storage=storage, home=store.home)
    embeddings = open_embeddings(storage)
    assert isinstance(embeddings, ActorEmbeddings)
    config = EmbeddingConfig()
    for name in ("digits", "glyph-digits", "textures"):
        embeddings.ensure(store.load(name), encoder, config)
    assert embeddings.names(encoder.version) == ["digits", "glyph-digits", "textures"]
    assert EmbeddingStore(storage).names(encoder.version) == ["digits", "glyph-digits", "textures"]
    target = embeddings.get("digits", encoder.version)
    ranking = embeddings.rank(target, ["digits", "glyph-digits", "textures", "absent"], "otdd")
    assert ranking.names()[0] == "digits" and ranking[0].distance == 0.0 and len(ranking) == 3
    # a write straight to storage (another process, no Ray) is seen: the cache checks the file
    direct = EmbeddingStore(storage)
    assert embeddings.get("textures", encoder.version).config == config  # now cached in the actor
    smaller = EmbeddingConfig(sample_size=100)
    direct.put(direct.ensure(store.load("textures"), encoder, smaller))
    assert embeddings.get("textures", encoder.version).config == smaller
    direct.remove("textures")
    assert embeddings.get("textures", encoder.version) is None
    embeddings.ensure(store.load("textures"), encoder, config)
    assert ray.get(embeddings.actor.ping.remote()) == {}  # it started before anything was stored
    ray.kill(embeddings.actor, no_restart=False)
    names = {encoder.version: ["digits", "glyph-digits", "textures"]}
    assert _eventually(lambda: ray.get(embeddings.actor.ping.remote(), timeout=60) == names)  # reloaded
    assert embeddings.get("textures", encoder.version) is not None
    ray.kill(embeddings.actor, no_restart=True)


def test_an_actors_error_reaches_the_caller_as_its_own_clear_error(ray_session, tmp_path):
    import ray

    storage = Storage(tmp_path / "zoo")
    Zoo(storage).publish(_manifest(), _weights())
    zoo = open_zoo(storage)
    assert isinstance(zoo, ActorZoo)
    other_space = {"in_channels": 3, "channels": 4, "cells": 3, "nodes": 3}
    with pytest.raises(RaynasError) as caught:
        zoo.check_replaceable("src", "single", other_space)
    text = str(caught.value)
    assert text.startswith("zoo entry 'src' already holds") and "ray::" not in text and "File " not in text
    assert caught.value.fix and "raynas zoo remove src" in caught.value.fix
    ray.kill(zoo.actor, no_restart=True)


def _named(location):
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE
            and a["name"].startswith(actor_prefix("zoo", location))}


def test_an_actor_of_other_code_is_replaced_and_one_of_the_same_code_reused(ray_session, tmp_path):
    """Detached actors outlive their job: a later job with other code must not be served by them."""
    import ray

    import raynas

    location, elsewhere = storage_location(Storage(tmp_path / "zoo")), storage_location(Storage(tmp_path / "other"))
    stale = [ZooActor.options(name=name, **ACTOR_OPTIONS).remote(location)
             for name in (actor_name("zoo", location, code="0" * 64), actor_prefix("zoo", location))]  # unhashed: older
    untouched = ZooActor.options(name=actor_name("zoo", elsewhere, code="0" * 64), **ACTOR_OPTIONS).remote(elsewhere)
    ray.get([a.ping.remote() for a in [*stale, untouched]])

    zoo = open_zoo(tmp_path / "zoo")
    identity = ray.get(zoo.actor.identity.remote())  # its own hash: equal to ours unless raynas was edited since
    assert identity["version"] == raynas.__version__ and len(identity["code"]) == 64
    assert _eventually(lambda: _named(location) == {actor_name("zoo", location)})
    assert open_zoo(tmp_path / "zoo").actor._actor_id == zoo.actor._actor_id  # same code: reused
    assert ray.get(untouched.ping.remote()) == []  # another storage's actors are left to its own clients


def test_a_handle_whose_actor_was_ended_makes_a_new_one(ray_session, tmp_path):
    """As a running job's handle finds it when a job with other code ended its actor."""
    import ray

    storage = Storage(tmp_path / "zoo")
    zoo = open_zoo(storage)
    zoo.publish(_manifest("src"), _weights(1))
    old = zoo.actor
    first = old._actor_id
    ray.kill(old, no_restart=True)

    def gone() -> bool:  # the handle is used once the actor has died, as in the running job
        try:
            ray.get(old.ping.remote(), timeout=30)
            return False
        except ray.exceptions.RayActorError:
            return True
        except ray.exceptions.GetTimeoutError:  # a loaded machine: ask again
            return False

    assert _eventually(gone)
    assert zoo.names() == ["src"] and zoo.actor._actor_id != first
    np.testing.assert_array_equal(zoo.load_weights("src")[0]["stem.0.weight"], _weights(1)["stem.0.weight"])


def test_the_code_hash_follows_the_package_files(tmp_path, monkeypatch):
    """Any edit of a .py file gives other code, and so other actors."""
    import raynas

    (tmp_path / "sub").mkdir()
    (tmp_path / "__init__.py").write_text("x = 1\n")
    (tmp_path / "sub" / "m.py").write_text("y = 2\n")
    monkeypatch.setattr(raynas, "__file__", str(tmp_path / "__init__.py"))
    before = code_hash.__wrapped__()
    (tmp_path / "sub" / "m.py").write_text("y = 3\n")
    assert code_hash.__wrapped__() != before and len(before) == 64  # code_hash() itself is cached
