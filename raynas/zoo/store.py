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
import re
import time
import uuid
from typing import Callable, Mapping, TypeVar

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
READ_PATIENCE_S = 60.0  # how long a read keeps looking while writers change the entry


T = TypeVar("T")


def new_version() -> str:
    """Sortable and unique: UTC time to the microsecond plus a random suffix."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


VERSION_PATTERN = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{6}$")


def check_version(version: str) -> str:
    """A version as :func:`new_version` makes it; anything else (``..``, a path) is refused."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise RaynasError(f"zoo version {version!r} is not valid",
                          "versions look like 20260101T120000000000Z-1a2b3c; see `raynas zoo list`")
    return version


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
    # A publish commits version V2 (its manifest) before pruning uncommits V1 (deletes its
    # manifest, then its folder), so at every instant the entry has a committed version. A
    # reader that lists the folders and then looks into each can still miss both: V2 looked
    # at before its commit, V1 after its uncommit, or V2 listed too late. So reads are
    # double-collect snapshots: an answer counts only when listing the folders again shows no
    # change, and an empty answer (no version) only when a second pass over the same listing
    # agrees; otherwise they look again. Each change is a writer's progress, so this ends;
    # READ_PATIENCE_S bounds it against writers that never stop.
    def _snapshot(self, name: str, read: Callable[[list[str]], T]) -> T:
        listing, empty_before = self.storage.listdir(name), False
        deadline = time.monotonic() + READ_PATIENCE_S
        while True:
            answer = read(listing)
            again = self.storage.listdir(name)
            if again == listing:
                if answer or empty_before:
                    return answer
                empty_before = True
            else:
                empty_before = False
            if time.monotonic() > deadline:
                raise RaynasError(f"zoo entry '{name}' kept changing for {READ_PATIENCE_S:.0f} s while being read",
                                  "try again when publishing to it has settled")
            listing = again

    def _read_manifest(self, name: str, version: str) -> ZooManifest | None:
        """The manifest of one version folder, or None when the version is not committed (now)."""
        try:
            data = self.storage.read_bytes(name, version, MANIFEST)
        except FileNotFoundError:
            return None
        try:
            manifest = ZooManifest.from_json(json.loads(data))
        except (ValueError, TypeError) as exc:
            raise RaynasError(f"zoo entry '{name}' version {version}: unreadable manifest ({exc})",
                              f"remove the entry with `raynas zoo remove {name}` and publish it again") from exc
        if manifest.name != name or manifest.version != version:
            # the manifest decides which weights are read: it must describe the folder it is in
            raise RaynasError(f"zoo entry '{name}' version {version}: its manifest claims to be "
                              f"'{manifest.name}' version '{manifest.version}'",
                              f"remove the entry with `raynas zoo remove {name}` and publish it again")
        return manifest

    def _newest(self, name: str) -> ZooManifest | None:
        """The newest committed version's manifest (None: the entry has none), as one snapshot."""
        def newest(listing: list[str]) -> ZooManifest | None:
            for version in reversed(listing):
                manifest = self._read_manifest(name, version)
                if manifest is not None:
                    return manifest
            return None
        return self._snapshot(check_name(name), newest)

    def versions(self, name: str) -> list[str]:
        """Committed versions of an entry, oldest first."""
        return self._snapshot(check_name(name), lambda listing: [
            v for v in listing if self.storage.exists(name, v, MANIFEST)])

    def names(self) -> list[str]:
        return [m.name for m in self.list()]

    def manifest(self, name: str, version: str | None = None) -> ZooManifest:
        """The manifest of a version, by default the newest one."""
        if version is None:
            return self._newest(name) or self._not_found(name)
        found = self._read_manifest(check_name(name), check_version(version))
        if found is None:
            if self._newest(name) is None:
                self._not_found(name)
            raise RaynasError(f"zoo entry '{name}' has no version {version}",
                              f"versions: {', '.join(self.versions(name))}")
        return found

    def _not_found(self, name: str) -> ZooManifest:
        """Raise the not-found error, listing the known entries."""
        known = self.names()
        raise RaynasError(f"zoo entry '{name}' not found in {self.storage.uri}",
                          f"entries: {', '.join(known)}" if known else "build the zoo first with `raynas zoo build`")

    def scan(self) -> tuple[list[ZooManifest], dict[str, str]]:
        """The newest manifest of every entry with a committed version, and the entries that
        cannot be read (name -> problem), so one damaged entry does not hide the others."""
        good, damaged = [], {}
        for name in self.storage.listdir():
            try:
                manifest = self._newest(name)
            except RaynasError as exc:
                damaged[name] = exc.problem
                continue
            if manifest is not None:
                good.append(manifest)
        return good, damaged

    def list(self) -> list[ZooManifest]:
        """The readable entries' newest manifests (damaged ones are left out; see :meth:`scan`)."""
        return self.scan()[0]

    def load_weights(self, name: str, version: str | None = None) -> tuple[dict[str, np.ndarray], ZooManifest]:
        """Weights and alphas of an entry, checked against the sha256 in its manifest.

        Without ``version``, a version pruned between reading its manifest and its weights
        makes the newest one be read instead.
        """
        deadline = time.monotonic() + READ_PATIENCE_S
        while True:
            manifest = self.manifest(name, version)
            try:
                data = self.storage.read_bytes(name, manifest.version, WEIGHTS)
                break
            except FileNotFoundError:
                if version is not None or self._read_manifest(name, manifest.version) is not None:
                    raise RaynasError(f"zoo entry '{name}' version {manifest.version} lacks {WEIGHTS}",
                                      f"remove the entry with `raynas zoo remove {name}` and publish it again"
                                      ) from None
                if time.monotonic() > deadline:  # that version was pruned meanwhile: read the newer one
                    raise RaynasError(f"zoo entry '{name}' kept changing for {READ_PATIENCE_S:.0f} s while being "
                                      "read", "try again when publishing to it has settled") from None
        if hashlib.sha256(data).hexdigest() != manifest.weights_sha256:
            raise RaynasError(
                f"zoo entry '{name}' version {manifest.version}: {WEIGHTS} does not match the sha256 in its "
                "manifest (the file was changed or damaged); refusing to load it",
                f"remove the entry with `raynas zoo remove {name}` and build or publish it again")
        try:
            weights = load_safetensors(data)
        except SafetensorError as exc:
            raise RaynasError(f"zoo entry '{name}': {WEIGHTS} is not a safetensors file ({exc})") from exc
        bad = [key for key, array in weights.items()
               if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all()]
        if bad:  # a warm start from them would only diverge, an epoch later and with a misleading message
            raise RaynasError(
                f"zoo entry '{name}' version {manifest.version}: {len(bad)} tensor(s) hold NaN or infinite values "
                f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); refusing to warm-start from it",
                f"remove the entry with `raynas zoo remove {name}` and build or publish it again")
        return weights, manifest

    def check_replaceable(self, name: str, kind: str, space: dict) -> ZooManifest | None:
        """Refuse to publish over an entry of another kind or search space: a new version would
        hide it (and pruning would delete it) although it is not a newer version of the same thing.
        Returns the newest version's manifest (None: there is none)."""
        latest = self._newest(name)  # one snapshot: a concurrent writer may prune what a listing named
        if latest is None:
            return None
        diff = sorted(k for k in set(latest.space) | set(space) if latest.space.get(k) != space.get(k))
        if latest.kind != kind or diff:
            what = (f"a {latest.kind} supernet" if latest.kind != kind else
                    "a supernet of another space (" + ", ".join(f"{k} {latest.space.get(k)} vs {space.get(k)}"
                                                                for k in diff) + ")")
            raise RaynasError(f"zoo entry '{name}' already holds {what}; publishing would replace it",
                              f"give the new supernet another name, or remove the old one first with "
                              f"`raynas zoo remove {name}`")
        return latest

    # -- writing ----------------------------------------------------------------------
    def publish(self, manifest: ZooManifest, weights: Mapping[str, np.ndarray]) -> ZooManifest:
        """Add a new version of ``manifest.name``; returns the manifest as stored."""
        name = check_name(manifest.name)
        broken = [k for k, v in weights.items() if np.issubdtype(np.asarray(v).dtype, np.floating)
                  and not np.isfinite(v).all()]
        if broken:
            raise RaynasError(f"refusing to publish '{name}': {len(broken)} tensor(s) hold NaN or infinite values "
                              f"({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''})",
                              "the search diverged; lower its learning rates and search again")
        data = weights_to_bytes(weights)
        sha = hashlib.sha256(data).hexdigest()
        latest = self.check_replaceable(name, manifest.kind, manifest.space)
        if latest is not None and latest.weights_sha256 == sha and _same_content(latest, manifest):
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
