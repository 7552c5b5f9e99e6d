"""A race on a two-node Ray cluster on one machine: trials spread over both nodes, and the zoo
actor keeps serving after the node it ran on is removed."""

import contextlib
import sys
import time
from pathlib import Path

import pytest

from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs, run_jobs

TINY = dict(preset="tiny", max_steps_per_epoch=2)


class RecordNode:
    """A trial callback that writes down the node each trial ran on, then waits until every trial
    has written: tiny trials are so short that a reused trial actor could otherwise run them one
    after the other on one node, and the test would prove nothing about placement."""

    def __init__(self, folder: Path, trials: int, timeout: float = 120.0):
        self.folder, self.trials, self.timeout = folder, trials, timeout

    def on_epoch_end(self, metrics, state):
        import ray

        node = ray.get_runtime_context().get_node_id()
        (self.folder / f"{state.config.transfer}.node").write_text(node)
        deadline = time.time() + self.timeout
        while len(list(self.folder.glob("*.node"))) < self.trials and time.time() < deadline:
            time.sleep(0.2)


@pytest.fixture
def two_nodes():
    """A head and a worker of one CPU each (so two one-CPU trials must use both)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()  # this test needs its own cluster; the session Ray comes back when needed
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "object_store_memory": 150 << 20})
    worker = cluster.add_node(num_cpus=1, object_store_memory=150 << 20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="raynas-test", log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.cluster
def test_trials_spread_over_nodes_and_the_zoo_outlives_its_node(two_nodes, suite_home, tmp_path):
    import cloudpickle
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from raynas.race.race import run_race
    from raynas.service.actors import ACTOR_OPTIONS, NAMESPACE, ZooActor, actor_name, storage_location

    cluster, worker = two_nodes
    storage = str(tmp_path / "storage")
    jobs, _ = plan_jobs(["glyph-upper", "mnist5k"], SearchConfig(dataset="x", epochs=1, **TINY),
                        Workspace.open(suite_home, storage, use_actors=False))
    run_jobs(jobs, verbose=False)

    # the zoo actor happens to start on the worker node (soft affinity: it may move when that node goes)
    location = storage_location(Workspace.open(suite_home, storage, use_actors=False).zoo_storage)
    name = actor_name("zoo", location)
    with contextlib.suppress(ValueError):  # the one pretraining started, wherever it went
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    options = {**ACTOR_OPTIONS, "get_if_exists": False,
               "scheduling_strategy": NodeAffinitySchedulingStrategy(worker.node_id, soft=True)}

    def start_actor():
        for _ in range(50):  # until the killed actor's name is free
            try:
                return ZooActor.options(name=name, **options).remote(location)
            except ValueError:
                time.sleep(0.2)
        raise AssertionError("the zoo actor's name never became free")

    # soft affinity may place it on the head while the new worker is still settling: try again then
    for _ in range(10):
        actor = start_actor()
        if ray.get(actor.node.remote()) == worker.node_id:
            break
        ray.kill(actor, no_restart=True)
        time.sleep(1)
    assert ray.get(actor.node.remote()) == worker.node_id

    ws = Workspace.open(suite_home, storage)  # through the actor just made
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    config = ExperimentConfig(SearchConfig(dataset="glyph-digits", epochs=2, **TINY),
                              RaceConfig(race=2, multi=False, early_stop=False, cpus_per_trial=1))
    race = run_race(config, ws, run_dir=tmp_path / "run", verbose=False, tensorboard=False,
                    trial_callbacks=[RecordNode(tmp_path, trials=2)])
    assert {r["status"] for r in race.answer["leaderboard"]} == {"finished"}
    nodes = {p.read_text() for p in tmp_path.glob("*.node")}
    assert len(nodes) == 2  # one trial on each node: each has one CPU

    cluster.remove_node(worker)
    assert sorted(m.name for m in Workspace.open(suite_home, storage).zoo.list()) == ["glyph-upper", "mnist5k"]
    assert ray.get(actor.node.remote()) != worker.node_id  # restarted on the node that is left

