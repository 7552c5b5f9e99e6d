"""Sizing work for clusters that autoscale: run now, wait for the autoscaler, or refuse at once."""

from __future__ import annotations

import itertools

import pytest

import raynas.capacity as capacity_module
from raynas.capacity import Capacity, NodeType, autoscaler_node_types, ensure_capacity
from raynas.errors import RaynasError

HEAD = {"CPU": 0.0, "memory": 8e9}
GPU_NODE = {"CPU": 8.0, "GPU": 1.0}
GPU_TYPE = NodeType("gpu-workers", {"CPU": 8.0, "GPU": 1.0}, max_count=4)


def _run(snapshots, request, timeout_s=600.0):
    """ensure_capacity against a scripted cluster; returns its answer and the autoscaler requests."""
    seen = iter(snapshots)
    last = [None]

    def snapshot():
        last[0] = next(seen, last[0])
        return last[0]

    requests = []
    answer = ensure_capacity(request, "a trial", timeout_s=timeout_s, capacity=snapshot, verbose=False,
                             request_nodes=requests.append)
    return answer, requests


def test_a_live_node_that_fits_runs_at_once():
    assert _run([Capacity([HEAD, GPU_NODE])], {"CPU": 2, "GPU": 1}) == ("now", [])


def test_a_head_only_cluster_whose_autoscaler_has_a_fitting_node_type_is_not_refused():
    cluster = Capacity([HEAD], [GPU_TYPE], autoscaling=True)
    assert _run([cluster], {"CPU": 2, "GPU": 1}) == ("autoscaler", [])
    assert cluster.has_gpus()


@pytest.mark.parametrize("request_, shown", [({"CPU": 2, "GPU": 2}, "2 CPUs and 2 GPUs"),
                                             ({"CPU": 16, "GPU": 0}, "16 CPUs")])
def test_a_request_no_node_type_can_meet_is_refused_at_once(request_, shown):
    with pytest.raises(RaynasError, match=f"needs {shown} on one node, but neither") as err:
        _run([Capacity([HEAD], [GPU_TYPE], autoscaling=True)], request_)
    assert "gpu-workers: 8 CPUs and 1 GPU" in err.value.problem and "--gpus-per-trial" in err.value.fix


def test_a_node_type_with_max_count_zero_counts_for_nothing():
    off = NodeType("gpu-off", {"CPU": 8.0, "GPU": 1.0}, max_count=0)
    assert not Capacity([HEAD], [off], autoscaling=True).has_gpus()
    with pytest.raises(RaynasError, match="neither"):
        _run([Capacity([HEAD], [off], autoscaling=True)], {"CPU": 1, "GPU": 1})


def test_without_an_autoscaler_too_big_is_refused_at_once():
    with pytest.raises(RaynasError, match="no autoscaler runs"):
        _run([Capacity([{"CPU": 2.0}])], {"CPU": 1, "GPU": 1})


def test_an_autoscaler_that_does_not_publish_its_node_types_is_waited_for(monkeypatch):
    monkeypatch.setattr(capacity_module, "POLL_S", 0.0)
    joined = [Capacity([HEAD], None, autoscaling=True)] * 3 + [Capacity([HEAD, GPU_NODE], None, autoscaling=True)]
    answer, requests = _run(joined, {"CPU": 2, "GPU": 1})
    assert answer == "joined"
    assert requests == [[{"CPU": 2, "GPU": 1}], []]  # asked the autoscaler, then withdrew the standing request


def test_waiting_is_bounded_and_says_what_it_waited_for(monkeypatch, capsys):
    monkeypatch.setattr(capacity_module, "POLL_S", 0.0)
    clock = itertools.count(0.0, 3.0)
    monkeypatch.setattr(capacity_module.time, "monotonic", lambda: next(clock))
    requests = []
    with pytest.raises(RaynasError, match="none joined the Ray cluster within 30 s") as err:
        ensure_capacity({"CPU": 2, "GPU": 1}, "a trial", timeout_s=30, verbose=True,
                        capacity=lambda: Capacity([HEAD], None, autoscaling=True), request_nodes=requests.append)
    assert "--node-wait-s" in err.value.fix and requests[-1] == []
    assert "waiting for a node with 2 CPUs and 1 GPU: 0 of 1 there" in capsys.readouterr().err


def test_node_types_are_read_from_the_cluster_config_autoscaler_v2_publishes(monkeypatch):
    from ray._private.state import state
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    group = config.node_group_configs.add()
    group.name, group.max_count = "gpu-workers", 3
    group.resources["CPU"], group.resources["GPU"] = 8, 1
    monkeypatch.setattr(state, "get_cluster_config", lambda: config)
    assert autoscaler_node_types() == [NodeType("gpu-workers", {"CPU": 8.0, "GPU": 1.0}, 3)]
    monkeypatch.setattr(state, "get_cluster_config", lambda: None)
    assert autoscaler_node_types() is None


def test_the_race_defaults_follow_the_device_and_the_autoscaler(monkeypatch):
    from raynas.race.config import RaceConfig
    from raynas.race.race import trial_resources
    from raynas.search.config import SearchConfig

    head_only = Capacity([HEAD], [GPU_TYPE], autoscaling=True)
    monkeypatch.setattr(Capacity, "of_cluster", classmethod(lambda cls: head_only))
    search = SearchConfig(dataset="digits")
    assert trial_resources(RaceConfig(), search, verbose=False) == {"cpu": 2.0, "gpu": 1.0}
    assert trial_resources(RaceConfig(), search.replace(device="cpu"), verbose=False) == {"cpu": 1.0, "gpu": 0.0}
    with pytest.raises(RaynasError, match="needs 2 CPUs and 2 GPUs on one node"):
        trial_resources(RaceConfig(gpus_per_trial=2), search, verbose=False)


def test_auto_device_says_when_an_autoscaler_hides_whether_it_has_gpus(monkeypatch, capsys):
    from raynas.race.config import RaceConfig
    from raynas.race.race import trial_resources
    from raynas.search.config import SearchConfig

    unknown = Capacity([HEAD, {"CPU": 4.0}], None, autoscaling=True)  # v2 reports its state, not its node types
    monkeypatch.setattr(Capacity, "of_cluster", classmethod(lambda cls: unknown))
    search = SearchConfig(dataset="digits")
    assert trial_resources(RaceConfig(), search) == {"cpu": 1.0, "gpu": 0.0}
    assert "pass --device cuda (or --gpus-per-trial 1) to give each trial a GPU" in capsys.readouterr().err
    monkeypatch.setattr(Capacity, "of_cluster", classmethod(lambda cls: Capacity([HEAD, {"CPU": 4.0}])))
    assert trial_resources(RaceConfig(), search) == {"cpu": 1.0, "gpu": 0.0}  # a fixed CPU cluster: nothing to say
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("loader, device, cpus_per_trial, cpus", [
    ("stream", "auto", None, 2.0 + 3), ("auto", "auto", None, 2.0), ("stream", "cpu", None, 1.0),
    ("stream", "auto", 4.0, 4.0)])
def test_gpu_trials_that_stream_get_cpus_for_the_loader_threads(monkeypatch, suite_home, loader, device,
                                                                 cpus_per_trial, cpus):
    from raynas.data import DatasetStore
    from raynas.race.config import RaceConfig
    from raynas.race.race import trial_resources
    from raynas.search.config import SearchConfig

    monkeypatch.setattr(Capacity, "of_cluster", classmethod(lambda cls: Capacity([HEAD], [GPU_TYPE],
                                                                                 autoscaling=True)))
    search = SearchConfig(dataset="digits", preset="tiny", loader_backend=loader, loader_workers=3, device=device)
    got = trial_resources(RaceConfig(cpus_per_trial=cpus_per_trial), search, DatasetStore(suite_home), verbose=False)
    assert got["cpu"] == cpus


def test_a_local_ray_has_no_autoscaler_that_could_add_nodes(ray_session):
    import json

    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_put

    from raynas.capacity import AUTOSCALER_STATUS_KEY, Capacity, autoscaler_running, autoscaler_v2_status

    assert not autoscaler_running()  # its monitor is read-only: node types named after the nodes
    assert autoscaler_v2_status() is None and not Capacity.of_cluster().autoscaling  # and no v2 reports
    before = _internal_kv_get(AUTOSCALER_STATUS_KEY)
    try:
        _internal_kv_put(AUTOSCALER_STATUS_KEY, json.dumps(
            {"autoscaler_report": {"node_type_mapping": {"abc": "ray.head.default"}}}), overwrite=True)
        assert autoscaler_running()  # what a configured autoscaler reports
    finally:
        if before is not None:
            _internal_kv_put(AUTOSCALER_STATUS_KEY, before, overwrite=True)


def test_a_request_autoscaler_v2_reports_infeasible_is_refused_without_waiting_out_the_timeout(monkeypatch):
    monkeypatch.setattr(capacity_module, "POLL_S", 0.0)
    asked = Capacity([HEAD], None, autoscaling=True)
    said_no = Capacity([HEAD], None, autoscaling=True, infeasible=[{"GPU": 1.0}, {"CPU": 2.0, "GPU": 2.0}])
    requests = []
    with pytest.raises(RaynasError, match="autoscaler reports that no node type it can add has that much") as err:
        ensure_capacity({"CPU": 2, "GPU": 2, "memory": 0}, "a trial", capacity=iter([asked, asked, said_no]).__next__,
                        verbose=False, request_nodes=requests.append)
    assert requests == [[{"CPU": 2.0, "GPU": 2.0}], []]  # asked without the zeros, then withdrawn
    assert "--gpus-per-trial" in err.value.fix
    # another request's infeasibility is not this one's; zeros ask for nothing, on either side
    assert not said_no.is_infeasible({"CPU": 1, "GPU": 1}) and said_no.is_infeasible({"GPU": 1, "CPU": 0})
    cpu_only = Capacity([HEAD], None, autoscaling=True, infeasible=[{"CPU": 64.0, "GPU": 0.0}])
    assert cpu_only.is_infeasible({"CPU": 64, "GPU": 0})
    with pytest.raises(RaynasError, match="autoscaler reports"):
        _run([asked, cpu_only], {"CPU": 64, "GPU": 0})
