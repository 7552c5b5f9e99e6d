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


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto) with one bucket, started once per session: the object-store
    paths are tested through pyarrow's real S3 client, offline. Yields the ``s3://`` URI prefix
    (credentials included, so Ray workers need no environment) and the query that points it at
    the server."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="raynas")
    yield "s3://testing:testing@raynas", f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    server.stop()


@pytest.fixture
def s3_uri(s3_server, request):
    """An ``s3://`` root of the test's own in the session's bucket."""
    import re

    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:80]
    return f"{s3_server[0]}/{prefix}?{s3_server[1]}"
