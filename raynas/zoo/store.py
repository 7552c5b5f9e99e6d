"""The supernet zoo on storage: entries of ``weights.safetensors`` plus ``manifest.json``.

Layout under the zoo root (a local path or any pyarrow.fs URI)::

    <name>/<version>/weights.safetensors   supernet weights and alphas (never pickle)
    <name>/<version>/manifest.json         written last: its presence commits the version

Every publish writes a new version directory of its own, so two writers never touch the
same files and a reader never sees a half-written entry: it uses the newest committed
version. Publishing what the newest version already holds writes nothing (idempotent).
Loading recomputes the sha256 of the weights and refuses a mismatch. Old versions beyond
``keep_versions`` are pruned after each publish.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Mapping

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from raynas.data.validate import check_name
from raynas.errors import RaynasError
from raynas.storage import Storage
from raynas.zoo.manifest import ZooManifest

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
STALE_UNCOMMITTED = dt.timedelta(days=1)  # a version without manifest this old is an abandoned write
RETRIES = 5  # reads that race with pruning look again this often


def new_version() -> str:
    """Sortable and unique: UTC time to the microsecond plus a random suffix."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def _version_time(version: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(version.split("-")[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def weights_to_bytes(weights: Mapping[str, np.ndarray]) -> bytes:
    return save_safetensors({k: np.ascontiguousarray(v) for k, v in weights.items()})


def state_to_numpy(state: Mapping) -> dict[str, np.ndarray]:
    """A torch state_dict as plain numpy arrays (C order), ready for the object store or safetensors."""
    return {k: v.detach().cpu().contiguous().numpy() for k, v in state.items()}


class Zoo:
    """Publish, list, load and remove supernets; safe for many readers and several writers."""

    def __init__(self, storage: Storage | str, keep_versions: int = 2):
        self.storage = storage if isinstance(storage, Storage) else Storage(storage)
        self.keep_versions = max(1, keep_versions)

    def __repr__(self) -> str:
        return f"Zoo({self.storage.uri!r})"

    # -- reading ----------------------------------------------------------------------
    def versions(self, name: str) -> list[str]:
        """Committed versions of an entry, oldest first."""
        return [v for v in self.storage.listdir(name) if self.storage.exists(name, v, MANIFEST)]

    def names(self) -> list[str]:
        return [n for n in self.storage.listdir() if self.versions(n)]

    def manifest(self, name: str, version: str | None = None) -> ZooManifest:
        """The manifest of a version, by default the newest one."""
        for _ in range(RETRIES):
            versions = self.versions(check_name(name))
            if not versions:
                known = self.names()
                raise RaynasError(f"zoo entry '{name}' not found in {self.storage.uri}",
                                  f"entries: {', '.join(known)}" if known else
                                  "build the zoo first with `raynas zoo build`")
            try:
                return ZooManifest.from_json(json.loads(self.storage.read_bytes(name, version or versions[-1],
                                                                                MANIFEST)))
            except FileNotFoundError:
                if version is None:
                    continue  # pruned or removed while we looked: look again
                raise RaynasError(f"zoo entry '{name}' has no version {version}",
                                  f"versions: {', '.join(versions)}") from None
            except (ValueError, TypeError) as exc:
                raise RaynasError(f"zoo entry '{name}' version {version or versions[-1]}: unreadable manifest "
                                  f"({exc})", f"remove the entry with `raynas zoo remove {name}` and publish it "
                                  "again") from exc
        raise RaynasError(f"zoo entry '{name}' kept changing while being read", "try again")

    def list(self) -> list[ZooManifest]:
        return [self.manifest(n) for n in self.names()]

    def load_weights(self, name: str, version: str | None = None) -> tuple[dict[str, np.ndarray], ZooManifest]:
        """Weights and alphas of an entry, checked against the sha256 in its manifest.

        Without ``version``, a version pruned between reading its manifest and its weights
        makes the newest one be read instead.
        """
        for _ in range(RETRIES):
            manifest = self.manifest(name, version)
            try:
                data = self.storage.read_bytes(name, manifest.version, WEIGHTS)
                break
            except FileNotFoundError:
                if version is None and not self.storage.exists(name, manifest.version, MANIFEST):
                    continue  # that version was pruned meanwhile
                raise RaynasError(f"zoo entry '{name}' version {manifest.version} lacks {WEIGHTS}",
                                  f"remove the entry with `raynas zoo remove {name}` and publish it again") from None
        else:
            raise RaynasError(f"zoo entry '{name}' kept changing while being read", "try again")
        if hashlib.sha256(data).hexdigest() != manifest.weights_sha256:
            raise RaynasError(
                f"zoo entry '{name}' version {manifest.version}: {WEIGHTS} does not match the sha256 in its "
                "manifest (the file was changed or damaged); refusing to load it",
                f"remove the entry with `raynas zoo remove {name}` and build or publish it again")
        try:
            return load_safetensors(data), manifest
        except SafetensorError as exc:
            raise RaynasError(f"zoo entry '{name}': {WEIGHTS} is not a safetensors file ({exc})") from exc

    def check_replaceable(self, name: str, kind: str, space: dict) -> None:
        """Refuse to publish over an entry of another kind or search space: a new version would
        hide it (and pruning would delete it) although it is not a newer version of the same thing."""
        versions = self.versions(check_name(name))
        if not versions:
            return
        latest = self.manifest(name, versions[-1])
        diff = sorted(k for k in set(latest.space) | set(space) if latest.space.get(k) != space.get(k))
        if latest.kind != kind or diff:
            what = (f"a {latest.kind} supernet" if latest.kind != kind else
                    "a supernet of another space (" + ", ".join(f"{k} {latest.space.get(k)} vs {space.get(k)}"
                                                                for k in diff) + ")")
            raise RaynasError(f"zoo entry '{name}' already holds {what}; publishing would replace it",
                              f"give the new supernet another name, or remove the old one first with "
                              f"`raynas zoo remove {name}`")

    # -- writing ----------------------------------------------------------------------
    def publish(self, manifest: ZooManifest, weights: Mapping[str, np.ndarray]) -> ZooManifest:
        """Add a new version of ``manifest.name``; returns the manifest as stored."""
        name = check_name(manifest.name)
        data = weights_to_bytes(weights)
        sha = hashlib.sha256(data).hexdigest()
        self.check_replaceable(name, manifest.kind, manifest.space)
        versions = self.versions(name)
        if versions:
            latest = self.manifest(name, versions[-1])
            if latest.weights_sha256 == sha and _same_content(latest, manifest):
                return latest
        stored = dataclasses.replace(manifest, weights_sha256=sha, version=new_version())
        self.storage.write_bytes(data, name, stored.version, WEIGHTS)
        self.storage.write_bytes(stored.dumps().encode(), name, stored.version, MANIFEST)
        self._prune(name)
        return stored

    def remove(self, name: str) -> None:
        if not self.versions(check_name(name)):
            self.manifest(name)  # raises the not-found error with the list of entries
        self.storage.delete(name)

    def _prune(self, name: str) -> None:
        committed = self.versions(name)
        for version in committed[:-self.keep_versions]:
            self.storage.delete(name, version, MANIFEST)  # uncommit first: readers skip it from now on
            self.storage.delete(name, version)
        now = dt.datetime.now(dt.timezone.utc)
        for version in set(self.storage.listdir(name)) - set(committed):
            born = _version_time(version)
            if born is not None and now - born > STALE_UNCOMMITTED:
                self.storage.delete(name, version)


def _same_content(a: ZooManifest, b: ZooManifest) -> bool:
    ignore = {"created", "version", "weights_sha256", "run"}
    da, db = a.to_json(), b.to_json()
    return {k: v for k, v in da.items() if k not in ignore} == {k: v for k, v in db.items() if k not in ignore}
