"""A race on a cluster that starts with no worker: the autoscaler adds a (fake) GPU node for it.

Ray's fake multi-node provider runs "nodes" as processes on this machine; its GPU is a resource
only, so the trials compute on the CPU (``--device cpu``). The cluster is started with its own
temp dir and port and stopped by killing only its own processes (``ray stop`` would end every
Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig

TINY = dict(preset="tiny", max_steps_per_epoch=2)
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _config(gcs_address: str) -> dict:
    """An autoscaling config for the fake provider: a head without resources, GPU workers from zero."""
    return {"cluster_name": "raynas-fake", "max_workers": 1, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
            "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "disable_launch_config_check": True,
                         "disable_node_updaters": True},
            "auth": {"ssh_user": "ubuntu"}, "docker": {},
            "available_node_types": {
                "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
                "gpu_worker": {"resources": {"CPU": 2, "GPU": 1}, "node_config": {}, "min_workers": 0,
                               "max_workers": 1}},
            "head_node_type": "ray.head.default",
            **{key: [] for key in ("cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
                                   "setup_commands", "head_setup_commands", "worker_setup_commands",
                                   "head_start_ray_commands", "worker_start_ray_commands")},
            "file_mounts": {}, "file_mounts_sync_continuously": False}


def _own_processes(marks: tuple[str, ...]) -> list[int]:
    """PIDs whose command line names this cluster's temp dir or GCS address."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout  # full lines
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if any(m in line for m in marks) and int(line.split(None, 1)[0]) != os.getpid()]


@contextlib.contextmanager
def _cluster(tmp_path, v2: bool = False):
    """A head without resources and an autoscaler (v1 by default) that adds fake GPU workers.

    Autoscaler v2 fills in a provider's defaults from an example YAML that the wheel does not ship
    for ``fake_multinode``; as an ``external`` provider the same class starts (v2 then reports
    requests and infeasible ones, but does not launch its fake workers)."""
    import ray
    from ray._private.services import get_node_ip_address

    if ray.is_initialized():
        ray.shutdown()  # this test needs its own cluster; the session Ray comes back when needed
    port, temp = _free_port(), Path("/tmp") / f"raynas-fake-{os.getpid()}-{_free_port()}"  # short: socket paths
    address = f"{get_node_ip_address()}:{port}"
    config = _config(address)
    if v2:
        config["provider"].update(type="external", module=FAKE_PROVIDER)
    config_file = tmp_path / "autoscaling.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "RAY_AUTH_MODE": "disabled", "RAY_enable_autoscaler_v2": str(int(v2))}
    marks = (str(temp), address)
    try:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head", "--num-cpus=0",
                        f"--port={port}", f"--temp-dir={temp}", f"--autoscaling-config={config_file}",
                        "--include-dashboard=false", f"--ray-client-server-port={_free_port()}",
                        f"--dashboard-agent-listen-port={_free_port()}"],
                       env=env, check=True, capture_output=True, timeout=120)
        ray.init(address=address, namespace="raynas-test", log_to_driver=False)
        from raynas.capacity import autoscaler_running, autoscaler_v2_status

        deadline = time.monotonic() + 60
        while not (autoscaler_v2_status() if v2 else autoscaler_running()):  # it reports seconds after the head
            assert time.monotonic() < deadline, "the fake autoscaler never reported"
            time.sleep(1)
        yield address
    finally:
        ray.shutdown()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _own_processes(marks):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


@pytest.fixture
def autoscaling_cluster(tmp_path):
    with _cluster(tmp_path) as address:
        yield address


@pytest.fixture
def autoscaling_cluster_v2(tmp_path):
    with _cluster(tmp_path, v2=True) as address:
        yield address


@pytest.mark.cluster
def test_a_race_scales_a_gpu_node_up_from_zero_and_finishes(autoscaling_cluster, suite_home, tmp_path, capsys):
    import ray

    from raynas.race.race import run_race
    from raynas.workspace import Workspace

    assert not any(n["Resources"].get("GPU") for n in ray.nodes() if n["Alive"])  # head only, no GPU
    workspace = Workspace.open(suite_home, str(tmp_path / "storage"))
    config = ExperimentConfig(SearchConfig(dataset="glyph-digits", epochs=1, transfer="scratch", device="cpu",
                                           threads=1, **TINY), RaceConfig(gpus_per_trial=1, cpus_per_trial=1))
    result = run_race(config, workspace, run_dir=tmp_path / "scaled", verbose=True)
    assert result.answer["winner"]["status"] == "finished"
    assert result.answer["trial_resources"] == {"cpu": 1.0, "gpu": 1.0}
    assert "waiting for a node with 1 CPU and 1 GPU" in capsys.readouterr().err
    assert any(n["Resources"].get("GPU") for n in ray.nodes() if n["Alive"])  # the autoscaler added it

    # no node type has two GPUs: this autoscaler (v1) does not say so, so the wait is bounded
    config = ExperimentConfig(config.search, RaceConfig(gpus_per_trial=2, node_wait_s=4))
    t0 = time.monotonic()
    with pytest.raises(RaynasError, match="needs 2 CPUs and 2 GPUs on one node; none joined .* within 4 s"):
        run_race(config, workspace, run_dir=tmp_path / "too-big", verbose=False)
    assert time.monotonic() - t0 < 30 and not (tmp_path / "too-big").exists()
    assert json.loads((tmp_path / "scaled" / "race.json").read_text())["trial_resources"]["gpu"] == 1.0


@pytest.mark.cluster
def test_a_zoo_build_scales_a_gpu_node_up_from_zero_and_publishes(autoscaling_cluster, suite_home, tmp_path, capsys):
    import ray

    from raynas.workspace import Workspace
    from raynas.zoo.build import plan_jobs
    from raynas.zoo.tune_build import build_zoo

    assert not any(n["Resources"].get("GPU") for n in ray.nodes() if n["Alive"])  # head only, no GPU
    workspace = Workspace.open(suite_home, str(tmp_path / "storage"))
    template = SearchConfig(dataset="x", epochs=1, device="cpu", threads=1, **TINY)
    jobs, _ = plan_jobs(["digits", "textures"], template, workspace)
    result = build_zoo(jobs, workspace, trials=RaceConfig(gpus_per_trial=1, cpus_per_trial=1),
                       run_dir=tmp_path / "build", verbose=True)
    assert sorted(r["name"] for r in result.rows) == ["digits", "textures"] == workspace.zoo.names()
    err = capsys.readouterr().err
    assert "waiting for a node with 1 CPU and 1 GPU" in err and "digits" in err and "finished; published" in err
    assert any(n["Resources"].get("GPU") for n in ray.nodes() if n["Alive"])  # the autoscaler added it
    assert json.loads((tmp_path / "build" / "build.json").read_text())["trial_resources"] == {"cpu": 1.0, "gpu": 1.0}


@pytest.mark.cluster
def test_autoscaler_v2_refuses_a_request_no_node_type_can_meet_before_any_trial(autoscaling_cluster_v2, suite_home,
                                                                                 tmp_path):
    from raynas.capacity import Capacity
    from raynas.race.race import run_race
    from raynas.workspace import Workspace

    assert Capacity.of_cluster().autoscaling  # v2 reports its state, not the status v1 writes
    workspace = Workspace.open(suite_home, str(tmp_path / "storage"))
    config = ExperimentConfig(SearchConfig(dataset="glyph-digits", epochs=1, transfer="scratch", device="cpu",
                                           threads=1, **TINY), RaceConfig(gpus_per_trial=2, node_wait_s=120))
    t0 = time.monotonic()
    with pytest.raises(RaynasError, match="needs 2 CPUs and 2 GPUs on one node, but the cluster's autoscaler "
                                          "reports that no node type it can add has that much"):
        run_race(config, workspace, run_dir=tmp_path / "too-big", verbose=False)
    assert time.monotonic() - t0 < 60 and not (tmp_path / "too-big").exists()  # well before --node-wait-s
