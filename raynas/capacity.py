"""What a Ray cluster can run: the nodes alive now, and the node types its autoscaler may add.

An autoscaling cluster often starts with no worker at all (KubeRay ``minReplicas: 0``, a job
submitted right after ``ray up``), so sizing work by the live nodes alone refuses what the
autoscaler would have provided. A request is judged in three steps:

1. a live node fits it: run now;
2. the autoscaler's node types are published in the GCS's cluster config: run if one of them
   fits (the trial waits for that node), refuse at once if none does;
3. otherwise, if an autoscaler runs, ask it for the node (``request_resources``) and wait, with
   a progress line, until one that fits joins or ``timeout_s`` passes. Autoscaler v2 reports a
   request that no node type can meet as infeasible in the cluster status: refused as soon as it
   says so. v1 says only that it runs. A cluster without an autoscaler is refused at once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from raynas.errors import RaynasError

AUTOSCALER_STATUS_KEY = "__autoscaling_status"  # what Ray's autoscaler monitor writes to the GCS
DEFAULT_WAIT_S = 600.0  # how long to wait for a node when no one can say whether one will come
POLL_S = 2.0
ASK_LESS = "per trial (--cpus-per-trial, --gpus-per-trial; fractions share a GPU)"


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    max_count: int  # -1: no limit


@dataclass
class Capacity:
    """A snapshot: the resources of each live node and, where known, the autoscaler's node types."""

    nodes: list[dict[str, float]] = field(default_factory=list)
    node_types: list[NodeType] | None = None  # None: the autoscaler does not say (or there is none)
    autoscaling: bool = False  # an autoscaler runs: nodes may join
    infeasible: list[dict[str, float]] = field(default_factory=list)  # requests autoscaler v2 cannot meet

    @classmethod
    def of_cluster(cls) -> "Capacity":
        import ray

        nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
        types = autoscaler_node_types()
        v2 = autoscaler_v2_status()
        return cls(nodes, types, types is not None or v2 is not None or autoscaler_running(),
                   v2.infeasible if v2 else [])

    def has_gpus(self) -> bool:
        """Whether GPUs exist now or can be added: what a ``--device auto`` default follows."""
        return (any(n.get("GPU", 0) > 0 for n in self.nodes)
                or any(t.resources.get("GPU", 0) > 0 and t.max_count != 0 for t in self.node_types or []))

    def fits_now(self, request: dict[str, float]) -> bool:
        return any(_fits(request, n) for n in self.nodes)

    def is_infeasible(self, request: dict[str, float]) -> bool:
        """Whether the autoscaler said that no node type it can add meets ``request``."""
        return any(_positive(bundle) == _positive(request) for bundle in self.infeasible)

    def fits_type(self, request: dict[str, float]) -> bool | None:
        """True/False when the autoscaler's node types are known, None when they are not."""
        if self.node_types is None:
            return None
        return any(_fits(request, t.resources) and t.max_count != 0 for t in self.node_types)


def _positive(resources: dict[str, float]) -> dict[str, float]:
    """The resources asked for: a zero (``GPU: 0``) asks for nothing."""
    return {k: float(v) for k, v in resources.items() if v > 0}


def _fits(request: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(k, 0) >= v for k, v in request.items() if v > 0)


def autoscaler_node_types() -> list[NodeType] | None:
    """The node types autoscaler v2 published to the GCS; None when there are none to read."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - an internal API: when it is missing or fails, we do not know
        return None
    if config is None or not config.node_group_configs:
        return None
    return [NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
            for g in config.node_group_configs]


@dataclass(frozen=True)
class AutoscalerV2Status:
    infeasible: list[dict[str, float]]  # standing resource requests that no node type can meet


def autoscaler_v2_status() -> AutoscalerV2Status | None:
    """What autoscaler v2 last reported to the GCS; None when none reports (v1, or no autoscaler).

    Ray 2.60's autoscaler v2 does not publish its node types, but it does report its state (a
    version above 0) and the requests of ``request_resources`` that no node type can meet."""
    try:
        import ray
        from ray._raylet import GcsClient
        from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply

        reply = GetClusterStatusReply()
        reply.ParseFromString(GcsClient(ray.get_runtime_context().gcs_address).get_cluster_status(timeout_s=10))
    except Exception:  # noqa: BLE001 - an internal API: when it is missing or fails, we do not know
        return None
    state = reply.autoscaling_state
    if state.autoscaler_state_version <= 0:
        return None
    return AutoscalerV2Status([{k: float(v) for k, v in r.request.resources_bundle.items()}
                               for c in state.infeasible_cluster_resource_constraints for r in c.resource_requests])


def autoscaler_running() -> bool:
    """Whether an autoscaler that can add nodes runs on this cluster.

    Every Ray head runs a monitor that writes a status to the GCS; without an autoscaling config
    (a local ``ray.init``, a fixed cluster) it is read-only and names each node's type after the
    node itself (``node_<id>``). A real autoscaler names them after its configured node types."""
    try:
        import json

        from ray.autoscaler._private.util import format_readonly_node_type
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(AUTOSCALER_STATUS_KEY)
        if raw is None:
            return False
        mapping = (json.loads(raw).get("autoscaler_report") or {}).get("node_type_mapping") or {}
        return any(kind != format_readonly_node_type(node) for node, kind in mapping.items())
    except Exception:  # noqa: BLE001 - not connected, or an internal API that moved
        return False


def describe(request: dict[str, float]) -> str:
    parts = [f"{v:g} {k}{'s' if k in ('CPU', 'GPU') and v != 1 else ''}" for k, v in request.items() if v > 0]
    return " and ".join(parts) or "no resources"


def ensure_capacity(request: dict[str, float], what: str, *, timeout_s: float = DEFAULT_WAIT_S,
                    capacity: Callable[[], Capacity] | None = None, verbose: bool = True,
                    request_nodes: Callable[[list[dict[str, float]]], None] | None = None) -> str:
    """Make sure ``request`` (e.g. ``{"CPU": 2, "GPU": 1}``, one ``what``) can run on the cluster.

    Returns how: ``"now"`` (a live node fits), ``"autoscaler"`` (a published node type fits) or
    ``"joined"`` (a fitting node joined while waiting). Raises RaynasError when no node type
    fits, or when no node fits after ``timeout_s`` seconds.
    """
    capacity = capacity or Capacity.of_cluster
    snapshot = capacity()
    if snapshot.fits_now(request):
        return "now"
    need = describe(request)
    by_type = snapshot.fits_type(request)
    if by_type is True:
        return "autoscaler"
    if by_type is False:
        types = "; ".join(f"{t.name}: {describe(t.resources)}" for t in snapshot.node_types or []) or "none"
        raise RaynasError(f"{what} needs {need} on one node, but neither a node of the Ray cluster nor a node "
                          f"type its autoscaler can add has that much (node types: {types})",
                          f"ask for less {ASK_LESS}, or add a node type that big to the cluster")
    if not snapshot.autoscaling:
        raise RaynasError(f"{what} needs {need} on one node, but no node of the Ray cluster has that much (the "
                          f"biggest: {_biggest(snapshot.nodes)}) and no autoscaler runs that could add one",
                          f"ask for less {ASK_LESS}, or add a node that big to the cluster")
    request_nodes = request_nodes or _request_from_autoscaler
    request_nodes([_positive(request)])
    start = time.monotonic()
    last = start - 10  # say at once what is waited for
    try:
        while True:
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise RaynasError(
                    f"{what} needs {need} on one node; none joined the Ray cluster within {timeout_s:.0f} s "
                    f"(the biggest node now: {_biggest(snapshot.nodes)})",
                    "start or scale up a node that big (or check the autoscaler's log), wait longer with "
                    f"--node-wait-s, or ask for less {ASK_LESS}")
            if verbose and time.monotonic() - last >= 10:
                have = sum(_fits(request, n) for n in snapshot.nodes)
                print(f"waiting for a node with {need}: {have} of 1 there, {waited:.0f} s of at most "
                      f"{timeout_s:.0f} s (an autoscaler adds one on demand)", file=sys.stderr, flush=True)
                last = time.monotonic()
            time.sleep(POLL_S)
            snapshot = capacity()
            if snapshot.fits_now(request):
                return "joined"
            if snapshot.is_infeasible(request):
                raise RaynasError(f"{what} needs {need} on one node, but the cluster's autoscaler reports that "
                                  f"no node type it can add has that much (the biggest node now: "
                                  f"{_biggest(snapshot.nodes)})",
                                  f"ask for less {ASK_LESS}, or add a node type that big to the cluster")
    finally:
        request_nodes([])  # withdraw the standing request: the work itself now asks for its resources


def _request_from_autoscaler(bundles: list[dict[str, float]]) -> None:
    """Ask the autoscaler for ``bundles`` (``[]`` withdraws the request): autoscaler v2 through
    its own API when it reports (Ray's generic call decides v1 or v2 once per process and keeps
    that answer, wrong for a later connection to another cluster), else through Ray's generic one."""
    try:
        if autoscaler_v2_status() is not None:
            import ray
            from ray.autoscaler.v2.sdk import request_cluster_resources

            request_cluster_resources(ray.get_runtime_context().gcs_address, [{"resources": b} for b in bundles])
            return
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=bundles)
    except Exception:  # noqa: BLE001 - no autoscaler (a fixed cluster): waiting is all there is
        pass


def _biggest(nodes: list[dict[str, float]]) -> str:
    if not nodes:
        return "no node"
    best = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)))
    return describe({k: best.get(k, 0) for k in ("CPU", "GPU")})
