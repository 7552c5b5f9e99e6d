"""Shared fixtures: one built-in suite and at most one Ray start per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def suite_home(tmp_path_factory):
    """A home with the built-in suite built once; tests must not modify its datasets."""
    from raynas.data import DatasetStore

    home = tmp_path_factory.mktemp("suite_home")
    DatasetStore(home).ensure_builtins()
    return home


@pytest.fixture
def home(tmp_path):
    """An empty home of the test's own."""
    return tmp_path / "home"


@pytest.fixture
def ray_session():
    """A local Ray for the tests that need it, started once (about 7 s on 2 cores) and kept for
    the session; started again if a multi-node test shut it down meanwhile."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, namespace="raynas-test",
                 object_store_memory=256 << 20, log_to_driver=False)
    yield


@pytest.fixture(autouse=True)
def _no_leftover_service_actors():
    """Zoo and embedding actors are detached; end them after each test so they do not pile up."""
    yield
    import sys

    if "ray" not in sys.modules:
        return
    import ray

    if not ray.is_initialized():
        return
    from raynas.service.actors import NAMESPACE

    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE:
            try:
                ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE), no_restart=True)
            except ValueError:  # ended between the listing and the look-up (replaced, or killed by a test)
                pass
