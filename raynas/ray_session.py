"""Starting or joining Ray once, quietly, with settings that suit small machines."""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from raynas.errors import RaynasError

CONNECT_TIMEOUT_S = 20  # an unreachable address fails after this long instead of hanging
DASHBOARD_HOST = "127.0.0.1"  # a local Ray's dashboard (with --dashboard) is for this machine only
_noted: set[str] = set()  # job server addresses in $RAY_ADDRESS already reported by this process
_settings = {"dashboard": False, "forward_logs": True}  # how the next ensure_ray starts Ray; see configure_ray


def configure_ray(dashboard: bool = False, forward_logs: bool = True) -> None:
    """How :func:`ensure_ray` starts or joins Ray from now on (the command line sets it from its
    flags before anything starts Ray; a Ray already started is left as it is).

    ``dashboard``: start Ray's dashboard with a local Ray, on 127.0.0.1, and print its URL (a
    cluster's dashboard is the cluster's: then there is only a note). ``forward_logs``: print what
    Ray's tasks and actors (trials) write on this process's stdout and stderr, as Ray does (so a
    job's log shows them); off for a command whose stdout is one machine-readable answer."""
    _settings.update(dashboard=bool(dashboard), forward_logs=bool(forward_logs))


def is_job_server_address(address: str) -> bool:
    """An http(s):// address is the dashboard's job server (what `ray job submit` talks to),
    never an address a driver can connect to."""
    return address.strip().lower().startswith(("http://", "https://"))


def cluster_address(address: str | None = None) -> str | None:
    """The Ray cluster to connect to: ``address`` (--address), else $RAY_ADDRESS, else None (none).

    The cluster guide has users export RAY_ADDRESS=http://HEAD:8265 for `ray job submit`; in that
    shell the variable is ignored (with one note), so raynas commands keep working as without it.
    Inside a Ray job, Ray sets RAY_ADDRESS to the cluster's own address, which is used."""
    if address:
        if is_job_server_address(address):
            raise RaynasError(f"--address {address} is the address of a Ray job server (the dashboard), which "
                              f"`ray job submit` uses; raynas connects to a Ray cluster itself",
                              f"run the command on the cluster as a job (`ray job submit --address {address} "
                              f"--working-dir . -- python jobs/raynas_job.py ...`), or connect from here with "
                              f"--address ray://HEAD:10001 (Ray Client), or --address auto on a cluster node")
        return address
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and is_job_server_address(env):
        if env not in _noted:
            _noted.add(env)
            print(f"note: RAY_ADDRESS={env} is a Ray job server's address (for `ray job submit`), not one to "
                  f"connect to: raynas runs without it (export RAY_API_SERVER_ADDRESS={env} instead, which "
                  f"`ray job` reads first, or pass --address ray://HEAD:10001)", file=sys.stderr)
        return None
    return env or None


def ensure_ray(address: str | None = None, **kwargs) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray, without the dashboard
    unless :func:`configure_ray` asked for it. Either way SIGTERM then stops the command as Ctrl+C
    does (``ray.init`` replaces that handler)."""
    import ray

    from raynas.interrupts import stop_on_sigterm

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cluster_address(address)
    dashboard = _settings["dashboard"]
    kwargs = {"log_to_driver": _settings["forward_logs"], **kwargs}  # Ray deduplicates repeated lines
    if not address:
        local = {"include_dashboard": True, "dashboard_host": DASHBOARD_HOST} if dashboard else \
            {"include_dashboard": False}
        with _without_job_server_address():
            context = ray.init(**{**local, **kwargs})
        stop_on_sigterm()
        _watch_local_ray(context)
        if dashboard:
            _print_dashboard_url(context)
        return
    if dashboard:
        print(f"note: --dashboard is ignored when connecting to a Ray cluster ({address}): its dashboard is the "
              f"cluster's (port 8265 of its head)", file=sys.stderr, flush=True)
    try:
        _probe(address)
        with _without_job_server_address():
            ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RaynasError(f"cannot connect to the Ray cluster at '{address}': {first}",
                          "start one (`ray start --head`, or cluster/local.sh start), check the address and "
                          "that the cluster's Ray version matches this one, or leave out --address (and "
                          "unset RAY_ADDRESS) to run locally") from None
    stop_on_sigterm()


def _print_dashboard_url(context) -> None:
    url = (getattr(context, "dashboard_url", None) or "").strip()
    if not url:
        print("note: no Ray dashboard to show: the Ray this command joined runs without one", file=sys.stderr,
              flush=True)
        return
    if "://" not in url:
        url = f"http://{url}"
    # ray.init turns token auth on (in this variable) when it finds a token: the dashboard asks for it
    token = os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"
    print(f"Ray dashboard: {url}" + (" (it asks for the token that `ray get-auth-token` prints)" if token else ""),
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def _without_job_server_address():
    """``ray.init`` reads $RAY_ADDRESS itself (when the address is None or "auto") and fails on an
    http one: hide it for the call. The Ray processes started meanwhile do not inherit it either."""
    env = os.environ.get("RAY_ADDRESS")
    if not env or not is_job_server_address(env):
        yield
        return
    del os.environ["RAY_ADDRESS"]
    try:
        yield
    finally:
        os.environ["RAY_ADDRESS"] = env


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
