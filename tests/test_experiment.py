"""One search experiment end to end: run directory, resume from a (moved) checkpoint, retrain,
publish from a checkpoint, divergence, and checks that come before any training."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from raynas.errors import RaynasError
from raynas.experiment import (ExperimentConfig, SearchDiverged, check_experiment, finish_checkpoint, read_config,
                               run_experiment)
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch
from raynas.search.results import RUNNING_MARK, abandoned_runs
from raynas.search.retrain import RetrainConfig
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs

TINY = dict(dataset="digits", preset="tiny", epochs=2, max_steps_per_epoch=2, transfer="scratch",
            threads=1)  # a fixed thread count: runs are bit-exact


@pytest.fixture
def workspace(suite_home, tmp_path):
    return Workspace.open(suite_home, str(tmp_path / "storage"))


class StopAfterFirstEpoch:
    def on_epoch_end(self, metrics, state):
        raise StopSearch


def test_the_run_directory_holds_the_whole_experiment(workspace, tmp_path):
    config = ExperimentConfig(SearchConfig(**TINY), retrain=RetrainConfig(epochs=1, channels=4, cells=3))
    out = run_experiment(config, workspace, run_dir=tmp_path / "run", verbose=False)
    run = tmp_path / "run"
    assert read_config(run) == config  # config.json is the full experiment config, written by the experiment
    assert json.loads((run / "transfer.json").read_text())["strategy"] == "scratch"
    assert json.loads((run / "result.json").read_text())["status"] == "finished"
    retrained = json.loads((run / "retrain.json").read_text())
    assert retrained["config"]["dataset"] == "digits" and retrained["config"]["image_size"] == 8  # from the space
    assert out.retrain["test_acc"] == retrained["test_acc"] and out.published is None
    assert {"run_dir", "status", "genotype", "transfer", "retrain"} <= set(out.to_json())
    assert not (run / RUNNING_MARK).exists()  # a finished run is not mistaken for a killed one


def test_a_killed_run_leaves_its_mark_and_the_next_zoo_build_removes_its_folder(workspace, tmp_path):
    runs = workspace.store.home.runs
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {}
    for name, mark, result in (("killed", {"pid": dead.pid, "host": socket.gethostname()}, False),
                               ("running", {"pid": os.getpid(), "host": socket.gethostname()}, False),
                               ("elsewhere", {"pid": dead.pid, "host": "another-host"}, False),
                               ("finished", {"pid": dead.pid, "host": socket.gethostname()}, True),
                               ("unreadable", None, False)):
        folder = runs / f"test-abandoned-{name}"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / RUNNING_MARK).write_text(json.dumps(mark) if mark else "{oops")
        if result:
            (folder / "result.json").write_text("{}")
        folders[name] = folder
    try:
        assert abandoned_runs(runs) == [folders["killed"]]
        plan_jobs(["digits"], SearchConfig(**TINY), workspace)  # a zoo build removes them first
        assert not folders["killed"].exists()
        assert all(folders[n].exists() for n in ("running", "elsewhere", "finished", "unreadable"))
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def test_a_moved_checkpoint_resumes_with_its_config_and_warm_start_record(workspace, tmp_path):
    config = ExperimentConfig(SearchConfig(**TINY))
    first = run_experiment(config, workspace, run_dir=tmp_path / "run", callbacks=[StopAfterFirstEpoch()],
                           transfer_note={"race_rank": 7}, verbose=False)
    assert first.search.status == "stopped"
    moved = shutil.copytree(tmp_path / "run" / "checkpoint", tmp_path / "elsewhere")
    done = run_experiment(None, workspace, checkpoint=moved, verbose=False)
    assert done.search.status == "finished" and len(done.search.history) == 2
    assert done.search.config == config.search and done.search.transfer["race_rank"] == 7
    straight = run_experiment(config, workspace, run_dir=tmp_path / "straight", verbose=False)
    assert [h["val_loss"] for h in straight.search.history] == [h["val_loss"] for h in done.search.history]


def test_publishing_from_a_checkpoint(workspace, tmp_path):
    config = ExperimentConfig(SearchConfig(**TINY))
    run_experiment(config, workspace, run_dir=tmp_path / "run", verbose=False)
    out = finish_checkpoint(tmp_path / "run" / "checkpoint", ExperimentConfig(config.search, publish=True),
                            workspace, tmp_path / "run", verbose=False)
    manifest = workspace.zoo.manifest("digits")
    assert out.published == manifest and manifest.search == config.search.to_json()
    assert manifest.run == str(tmp_path / "run") and manifest.epochs == 2


class Explode:
    def on_epoch_end(self, metrics, state):
        with torch.no_grad():
            for p in state.model.parameters():
                p.fill_(float("nan"))


def test_a_diverged_search_is_an_error_and_publishes_nothing(workspace, tmp_path):
    config = ExperimentConfig(SearchConfig(**TINY), publish=True)
    with pytest.raises(SearchDiverged, match="the search diverged in epoch 2") as err:
        run_experiment(config, workspace, run_dir=tmp_path / "run", callbacks=[Explode()], verbose=False)
    assert "--w-lr" in str(err.value) and str(tmp_path / "run") in str(err.value)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "diverged"
    assert workspace.zoo.names() == []


@pytest.mark.parametrize("config, message", [
    (ExperimentConfig(SearchConfig(**{**TINY, "encoder": "vgg"}), publish=True), "unknown encoder 'vgg'"),
    (ExperimentConfig(SearchConfig(**TINY), retrain=RetrainConfig(dataset="nope")), "dataset 'nope' not found"),
    (ExperimentConfig(SearchConfig(**{**TINY, "device": "cuda:7"})), "CUDA is not available"),
])
def test_problems_after_training_are_found_before_it(workspace, tmp_path, config, message):
    with pytest.raises(RaynasError, match=message):
        check_experiment(config, workspace)
    with pytest.raises(RaynasError, match=message):
        run_experiment(config, workspace, run_dir=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_experiment_configs_round_trip_and_refuse_bad_values():
    config = ExperimentConfig(SearchConfig(**TINY), retrain=RetrainConfig(epochs=3), publish=True)
    assert ExperimentConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    for bad, message in [({"search": {**TINY, "w_lr": float("nan")}}, "must be a finite number"),
                         ({"search": {**TINY, "epochs": "3"}}, "must be an integer"),
                         ({"search": TINY, "colour": 1}, "unknown experiment config field"),
                         ({"search": TINY, "race": {"race": 0}}, r"race \(--race\) must be >= 1")]:
        with pytest.raises(RaynasError, match=message):
            ExperimentConfig.from_json(bad)
