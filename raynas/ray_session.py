"""Starting or joining Ray once, quietly, with settings that suit small machines."""

from __future__ import annotations

import os


def ensure_ray(address: str | None = None, **kwargs) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS), else start a local Ray without the dashboard."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, **kwargs)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
