"""The zoo on storage: atomic versioned publishing, checksums, concurrent writers, errors."""

import dataclasses
import hashlib
import json
import threading

import numpy as np
import pytest

from raynas.errors import RaynasError
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest
from raynas.zoo.store import MANIFEST, WEIGHTS, Zoo


def _manifest(name="mnist", kind="single", sources=(("mnist", "h1", 10),), acc=0.9):
    return ZooManifest(name=name, kind=kind, sources=[{"name": n, "content_hash": h, "classes": k} for n, h, k in sources],
                       space={"in_channels": 1, "num_classes": 10, "channels": 8, "cells": 5, "nodes": 4},
                       algo="darts", epochs=3, val_acc=acc)


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"stem.0.weight": rng.standard_normal((24, 1, 3, 3)).astype(np.float32),
            "alphas_normal": rng.standard_normal((14, 8)).astype(np.float32)}


@pytest.fixture
def zoo(tmp_path):
    return Zoo(tmp_path / "zoo")


def test_publish_then_load_round_trips_exactly(zoo):
    stored = zoo.publish(_manifest(), _weights())
    weights, manifest = zoo.load_weights("mnist")
    assert manifest == stored and manifest.version and len(manifest.weights_sha256) == 64
    for k, v in _weights().items():
        np.testing.assert_array_equal(weights[k], v)
    assert zoo.names() == ["mnist"] and [m.name for m in zoo.list()] == ["mnist"]
    assert zoo.storage.listdir("mnist", stored.version, dirs=False) == [MANIFEST, WEIGHTS]
    on_disk = json.loads(zoo.storage.read_bytes("mnist", stored.version, MANIFEST))
    assert on_disk["weights_sha256"] == hashlib.sha256(zoo.storage.read_bytes("mnist", stored.version, WEIGHTS)).hexdigest()
    assert on_disk["sources"] == [{"name": "mnist", "content_hash": "h1", "classes": 10}]


def test_summary_has_the_listed_fields(zoo):
    row = zoo.publish(_manifest(kind="multi", name="mix", sources=(("a", "ha", 3), ("b", "hb", 5))), _weights()).summary()
    assert {"name": "mix", "source": "a+b", "kind": "multi", "accuracy": 0.9}.items() <= row.items()


def test_republishing_the_same_content_is_idempotent(zoo):
    first = zoo.publish(_manifest(), _weights())
    again = zoo.publish(_manifest(), _weights())
    assert again.version == first.version and zoo.versions("mnist") == [first.version]


def test_new_content_makes_a_new_version_and_old_ones_are_pruned(zoo):
    versions = [zoo.publish(_manifest(acc=a), _weights(seed=i)).version for i, a in enumerate((0.5, 0.6, 0.7))]
    assert versions == sorted(versions)
    assert zoo.versions("mnist") == versions[-2:]  # keep_versions=2
    assert zoo.manifest("mnist").val_acc == 0.7
    assert zoo.manifest("mnist", versions[1]).val_acc == 0.6


def test_tampered_weights_are_refused(zoo):
    stored = zoo.publish(_manifest(), _weights())
    path = zoo.storage.path("mnist", stored.version, WEIGHTS)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(RaynasError, match="does not match the sha256") as err:
        zoo.load_weights("mnist")
    assert "raynas zoo remove mnist" in str(err.value)


def test_an_uncommitted_version_is_invisible(zoo):
    stored = zoo.publish(_manifest(), _weights())
    zoo.storage.write_bytes(b"half", "mnist", "29990101T000000000000Z-abcdef", WEIGHTS)  # a writer that died
    assert zoo.versions("mnist") == [stored.version]
    assert zoo.load_weights("mnist")[1].version == stored.version
    zoo.storage.write_bytes(b"half", "other", "29990101T000000000000Z-abcdef", WEIGHTS)
    assert zoo.names() == ["mnist"]


def test_concurrent_writers_never_leave_a_broken_entry(zoo):
    errors = []

    def writer(seed):
        try:
            for i in range(4):
                zoo.publish(_manifest(acc=seed + i / 10), _weights(seed=10 * seed + i))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for version in zoo.versions("mnist"):  # every committed version loads and verifies
        weights, manifest = zoo.load_weights("mnist", version)
        assert manifest.version == version and set(weights) == set(_weights())


def test_errors_name_the_problem(zoo, tmp_path):
    with pytest.raises(RaynasError, match="zoo entry 'nope' not found") as err:
        zoo.manifest("nope")
    assert "raynas zoo build" in str(err.value)
    zoo.publish(_manifest(), _weights())
    with pytest.raises(RaynasError, match="entries: mnist"):
        zoo.load_weights("nope")
    with pytest.raises(RaynasError, match="not valid"):
        zoo.manifest("Bad Name")
    with pytest.raises(RaynasError, match="has no version"):
        zoo.manifest("mnist", "20000101T000000000000Z-000000")
    version = zoo.versions("mnist")[0]
    zoo.storage.write_bytes(b"{not json", "mnist", version, MANIFEST)
    with pytest.raises(RaynasError, match="unreadable manifest"):
        zoo.manifest("mnist")
    zoo.storage.write_bytes(json.dumps({"format": "something-else"}).encode(), "mnist", version, MANIFEST)
    with pytest.raises(RaynasError, match="not a raynas zoo manifest"):
        zoo.manifest("mnist")


@pytest.mark.parametrize("kind, sources, message", [("both", (("a", "h", 2),), "unknown zoo entry kind"),
                                                    ("single", (("a", "h", 2), ("b", "h", 2)), "needs one source"),
                                                    ("multi", (), "needs sources")])
def test_manifest_validation(kind, sources, message):
    with pytest.raises(RaynasError, match=message):
        _manifest(kind=kind, sources=sources)


def test_remove(zoo):
    zoo.publish(_manifest(), _weights())
    zoo.remove("mnist")
    assert zoo.names() == []
    with pytest.raises(RaynasError, match="not found"):
        zoo.remove("mnist")


def test_a_uri_root_works_like_a_path(tmp_path):
    zoo = Zoo(Storage(f"file://{tmp_path}/uri-zoo"))
    zoo.publish(_manifest(), _weights())
    assert Zoo(tmp_path / "uri-zoo").names() == ["mnist"]


def test_a_zoo_on_s3_publishes_lists_loads_and_removes(s3_uri):
    zoo = Zoo(Storage(s3_uri))
    zoo.publish(_manifest(), _weights())
    zoo.publish(_manifest(), _weights(1))
    again = Zoo(Storage(s3_uri))  # another node opening the same URI
    assert again.names() == ["mnist"] and len(again.versions("mnist")) == 2
    assert again.manifest("mnist") == zoo.manifest("mnist")
    weights, _ = again.load_weights("mnist")
    assert all(np.array_equal(weights[k], v) for k, v in _weights(1).items())
    again.remove("mnist")
    assert zoo.names() == []


def test_publishing_another_kind_or_space_under_an_existing_name_is_refused(zoo):
    zoo.publish(_manifest(), _weights())
    multi = _manifest(kind="multi", sources=(("a", "ha", 3), ("b", "hb", 5)))
    with pytest.raises(RaynasError, match="already holds a single supernet") as err:
        zoo.publish(multi, _weights(1))
    assert "raynas zoo remove mnist" in str(err.value)
    other_space = dataclasses.replace(_manifest(), space={**_manifest().space, "channels": 16})
    with pytest.raises(RaynasError, match=r"another space \(channels 8 vs 16\)"):
        zoo.publish(other_space, _weights(1))
    assert len(zoo.versions("mnist")) == 1 and zoo.manifest("mnist").kind == "single"


@pytest.mark.parametrize("read", [
    lambda zoo: zoo.load_weights("mnist")[1].version,
    lambda zoo: zoo.manifest("mnist").version,
    lambda zoo: [m.version for m in zoo.list() if m.name == "mnist"][0],  # zoo list and OT candidates
    lambda zoo: zoo.versions("mnist")[-1],
], ids=["load_weights", "manifest", "list", "versions"])
def test_readers_racing_with_pruning_always_get_a_whole_version(tmp_path, read):
    zoo = Zoo(tmp_path / "zoo", keep_versions=1)  # every publish deletes the previous version
    zoo.publish(_manifest(acc=0.0), _weights(0))
    zoo.publish(_manifest(name="other"), _weights(0))
    stop, errors, reads = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                reads.append(read(zoo))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(1, 40):
        zoo.publish(_manifest(acc=i / 100), _weights(i))
    stop.set()
    thread.join()
    assert not errors, errors[:3]
    assert reads and reads == sorted(reads)  # versions only move forward


def test_a_manifest_must_describe_its_own_folder(zoo, tmp_path):
    """The manifest decides which weights are loaded: one naming another version or a path
    outside the zoo is refused, never followed."""
    outside = tmp_path / "elsewhere"
    Zoo(outside).publish(_manifest(), _weights(1))
    stored = zoo.publish(_manifest(), _weights())
    for version in ("../../elsewhere/mnist/" + Zoo(outside).versions("mnist")[0], "20000101T000000000000Z-000000"):
        zoo.storage.write_bytes(dataclasses.replace(stored, version=version).dumps().encode(),
                                "mnist", stored.version, MANIFEST)
        with pytest.raises(RaynasError, match="its manifest claims to be"):
            zoo.load_weights("mnist")
    with pytest.raises(RaynasError, match="zoo version '../x' is not valid"):
        zoo.manifest("mnist", "../x")


def test_a_damaged_entry_does_not_hide_the_others(zoo):
    zoo.publish(_manifest(), _weights())
    zoo.publish(_manifest(name="broken"), _weights())
    zoo.storage.write_bytes(b"{not json", "broken", zoo.versions("broken")[0], MANIFEST)
    good, damaged = zoo.scan()
    assert [m.name for m in good] == ["mnist"] and "unreadable manifest" in damaged["broken"]
    assert zoo.names() == ["mnist"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_never_published(zoo, bad):
    weights = _weights()
    weights["alphas_normal"][3, 2] = bad
    with pytest.raises(RaynasError, match="hold NaN or infinite values .*alphas_normal"):
        zoo.publish(_manifest(), weights)
    assert zoo.names() == [] and not list(zoo.storage.listdir())


def test_non_finite_weights_with_a_matching_sha256_are_refused_on_load(zoo):
    """A stored entry whose weights were replaced by NaNs and its manifest's sha256 recomputed."""
    from raynas.zoo.store import weights_to_bytes

    stored = zoo.publish(_manifest(), _weights())
    poisoned = {k: np.full_like(v, np.nan) for k, v in _weights().items()}
    data = weights_to_bytes(poisoned)
    zoo.storage.write_bytes(data, "mnist", stored.version, WEIGHTS)
    manifest = json.loads(zoo.storage.read_bytes("mnist", stored.version, MANIFEST))
    manifest["weights_sha256"] = hashlib.sha256(data).hexdigest()
    zoo.storage.write_bytes(json.dumps(manifest).encode(), "mnist", stored.version, MANIFEST)
    with pytest.raises(RaynasError, match=f"zoo entry 'mnist' version {stored.version}: 2 tensor") as err:
        zoo.load_weights("mnist")
    assert "NaN or infinite" in str(err.value) and "raynas zoo remove mnist" in str(err.value)


def test_publishing_while_another_writer_prunes_the_newest_version(zoo, monkeypatch):
    """The newest version may vanish between listing it and reading it (another writer's prune):
    publishing then compares with what is left instead of failing."""
    zoo.publish(_manifest(acc=0.1), _weights(seed=1))
    newest = zoo.publish(_manifest(acc=0.2), _weights(seed=2))
    read = zoo._read_manifest
    pruned = []

    def read_after_a_prune(name, version):
        if version == newest.version and not pruned:
            zoo.storage.delete(name, version, "manifest.json")  # another writer uncommits it first
            zoo.storage.delete(name, version)
            pruned.append(version)
        return read(name, version)

    monkeypatch.setattr(zoo, "_read_manifest", read_after_a_prune)
    stored = zoo.publish(_manifest(acc=0.3), _weights(seed=3))
    assert pruned == [newest.version] and zoo.versions("mnist")[-1] == stored.version
