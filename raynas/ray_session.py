"""Starting or joining Ray once, quietly, with settings that suit small machines."""

from __future__ import annotations

import os
import socket

from raynas.errors import RaynasError

CONNECT_TIMEOUT_S = 20  # an unreachable address fails after this long instead of hanging


def ensure_ray(address: str | None = None, **kwargs) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray without the dashboard."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        context = ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        _watch_local_ray(context)
        return
    try:
        _probe(address)
        ray.init(address=address, log_to_driver=False, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RaynasError(f"cannot connect to the Ray cluster at '{address}': {first}",
                          "start one (`ray start --head`, or cluster/local.sh start), check the address and "
                          "that the cluster's Ray version matches this one, or leave out --address (and "
                          "unset RAY_ADDRESS) to run locally") from None


def _probe(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on: Ray itself retries for minutes."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves those itself, quickly
    with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
        pass


def _watch_local_ray(context) -> None:
    """The local Ray this process just started ends with it, even when it is killed with SIGKILL.
    ``ray.init()`` may instead have joined a cluster started with ``ray start`` on this machine:
    that one outlives its drivers, so it is not watched."""
    from raynas.ray_watchdog import start_watchdog

    session_dir = (getattr(context, "address_info", None) or {}).get("session_dir")
    if session_dir and _started_head():
        start_watchdog(session_dir)


def _started_head() -> bool:
    try:
        from ray._private import worker  # no public API tells a started head from a joined one

        return bool(worker._global_node is not None and worker._global_node.is_head())
    except (ImportError, AttributeError):
        return False
