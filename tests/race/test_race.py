"""The race end to end on a tiny zoo: Tune trials, ASHA, leaderboard, TensorBoard, crashes, resume."""

import json
import os
import pickle
import signal
import sys
from pathlib import Path

import pytest
import torch
from ray.tune import Callback

from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.race.ledger import verify_ledger
from raynas.race.race import resume_race, run_race
from raynas.search.config import SearchConfig
from raynas.storage import Storage
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs, run_jobs

TARGET = "glyph-digits"
SOURCES = ["glyph-upper", "mnist5k", "textures"]
TINY = dict(preset="tiny", max_steps_per_epoch=2)


@pytest.fixture(scope="module")
def zoo_storage(suite_home, tmp_path_factory):
    """Storage with a zoo of three tiny supernets (the target left out), built once for the module."""
    storage = str(tmp_path_factory.mktemp("race-storage"))
    jobs, _ = plan_jobs(SOURCES, SearchConfig(dataset="x", epochs=1, **TINY), Workspace.open(suite_home, storage))
    run_jobs(jobs, verbose=False)
    return storage


@pytest.fixture
def workspace(ray_session, suite_home, zoo_storage):
    """Opened per test: the zoo and embedding actors do not outlive a test (see conftest)."""
    return Workspace.open(suite_home, zoo_storage)


def race_config(epochs=3, **race) -> ExperimentConfig:
    return ExperimentConfig(SearchConfig(dataset=TARGET, epochs=epochs, **TINY), RaceConfig(**race))


def _pickle_by_value():
    """Trial callbacks defined here travel to the Ray workers by value (tests/ is not installed)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def event_data(trial_dir: Path):
    """Scalars and images of a trial's TensorBoard event files, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars, images = {}, {}
    for events in trial_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [e.step for e in acc.Scalars(tag)]
        for tag in acc.Tags()["images"]:
            images[tag] = [e.step for e in acc.Images(tag)]
    return scalars, images


def test_a_race_of_four_trials(ray_session, workspace, tmp_path):
    result = run_race(race_config(baseline=True, max_concurrent=1), workspace, run_dir=tmp_path / "run",
                      verbose=False)
    board = result.answer["leaderboard"]
    assert sorted(r["source"] for r in board) == sorted(SOURCES + ["scratch"])
    assert [r["rank"] for r in board] == [1, 2, 3, 4]
    assert any(r["stopped_early"] and r["epochs"] < 3 for r in board), board  # ASHA stopped a trailing trial
    win = result.answer["winner"]
    assert win == board[0] and win["status"] == "finished" and win["epochs"] == 3
    assert win["final_val_acc"] == max(r["final_val_acc"] for r in board if r["status"] == "finished")
    ot = [r for r in board if r["strategy"] == "ot"]
    assert [r["distance"] for r in sorted(ot, key=lambda r: r["distance"])] == sorted(r["distance"] for r in ot)
    if win["source"] != "scratch":  # the winner's warm-start record travelled in its checkpoint
        assert result.answer["transfer"]["source"] == win["source"]
        assert result.answer["transfer"]["distance"] == pytest.approx(win["distance"])

    run = tmp_path / "run"
    for name in ("config.json", "race.json", "result.json", "genotype.json", "genotype.png", "alphas.png",
                 "curves.png", "summary.md"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "result.json").read_text())
    assert saved["leaderboard"] == board and saved["genotype_text"] in (run / "summary.md").read_text()
    assert ExperimentConfig.from_json(json.loads((run / "config.json").read_text())) == race_config(
        baseline=True, max_concurrent=1)

    experiment = Path(result.answer["experiment_path"])
    assert result.answer["tensorboard"] == f"tensorboard --logdir {experiment}"
    assert (run / "tune").resolve() == experiment.resolve()  # one place per run: it links its Tune experiment
    import ray

    classes = {a["ActorClassName"].rsplit(".", 1)[-1] for a in ray._private.state.actors().values()}
    assert "SearchTrial" in classes and "ImplicitFunc" not in classes, classes  # named in the dashboard
    for row in board:
        assert Path(row["path"]).name == f"{row['source']}_{row['trial']}"  # folders named after sources
        scalars, images = event_data(experiment / Path(row["path"]).name)
        steps = list(range(1, row["epochs"] + 1))
        assert scalars["ray/tune/val_acc"] == steps and scalars["ray/tune/alpha_entropy"] == steps
        assert images["alphas"] == steps  # every epoch
        assert images["genotype"][0] == 1 and set(images["genotype"]) <= set(steps)  # whenever the cells change


class CrashOnce:
    """A trial callback that fails the trial once, after its second epoch was reported."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_epoch_end(self, metrics, state):
        with open(self.folder / "epochs.log", "a") as fh:
            fh.write(f"{metrics['epoch']}\n")
        marker = self.folder / "crashed"
        if metrics["epoch"] == 2 and not marker.exists():
            marker.touch()
            raise RuntimeError("simulated crash after epoch 2")


def test_a_crashed_trial_is_retried_from_its_checkpoint(ray_session, workspace, tmp_path):
    _pickle_by_value()
    config = race_config(epochs=3, early_stop=False)
    config = ExperimentConfig(config.search.replace(transfer="glyph-upper"), config.race)
    result = run_race(config, workspace, run_dir=tmp_path / "run", verbose=False,
                      trial_callbacks=[CrashOnce(tmp_path)], tensorboard=False)
    [row] = result.answer["leaderboard"]
    assert row["status"] == "finished" and row["epochs"] == 3 and (tmp_path / "crashed").exists()
    # epochs 1 and 2 ran once: the retry resumed after epoch 2 from the reported checkpoint
    assert (tmp_path / "epochs.log").read_text().split() == ["1", "2", "3"]
    assert result.answer["transfer"]["source"] == "glyph-upper"  # still known after the restart


class InterruptOnce(Callback):
    """A driver callback that interrupts the race (as Ctrl+C does) when its first trial ends."""

    def __init__(self, marker: Path):
        self.marker = marker

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_an_interrupted_race_resumes_to_the_same_leaderboard(ray_session, workspace, tmp_path):
    config = race_config(epochs=2, race=2, multi=False, early_stop=False, max_concurrent=1)
    reference = run_race(config, workspace, run_dir=tmp_path / "reference", verbose=False, tensorboard=False)
    with pytest.raises(RaynasError, match="the race was interrupted") as err:
        run_race(config, workspace, run_dir=tmp_path / "resumed", verbose=False, tensorboard=False,
                 tune_callbacks=[InterruptOnce(tmp_path / "interrupted")])
    assert f"raynas search --resume {tmp_path / 'resumed'}" in str(err.value)
    resumed = resume_race(tmp_path / "resumed", workspace, verbose=False, tensorboard=False)

    def comparable(board):
        return [(r["source"], r["epochs"], r["status"], r["val_acc_curve"]) for r in board]

    assert comparable(resumed.answer["leaderboard"]) == comparable(reference.answer["leaderboard"])
    assert resumed.answer["genotype"] == reference.answer["genotype"]


class RunsCode:
    """A pickle that runs a shell command when it is loaded, as a hostile tuner.pkl would."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_poisoned_resume_is_refused_and_the_right_one_finishes(ray_session, workspace, suite_home, zoo_storage,
                                                                   tmp_path):
    run = tmp_path / "poisoned"  # the experiment's name in the module's shared Tune storage
    with pytest.raises(RaynasError, match="the race was interrupted"):
        run_race(race_config(epochs=2, race=2, multi=False, early_stop=False, max_concurrent=1), workspace,
                 run_dir=run, verbose=False, tensorboard=False, tune_callbacks=[InterruptOnce(tmp_path / "stop")])
    experiment = Path(zoo_storage) / "tune" / "poisoned"
    race_file, tuner_pkl = run / "race.json", experiment / "tuner.pkl"
    race_json, tuner_state = race_file.read_text(), tuner_pkl.read_bytes()

    def refused(message, ws=workspace):
        with pytest.raises(RaynasError, match=message):
            resume_race(run, ws, verbose=False, tensorboard=False)

    marker = tmp_path / "code-ran"
    tuner_pkl.write_bytes(pickle.dumps(RunsCode(f"touch {marker}")))  # shared storage tampered with
    refused("changed: tuner.pkl")
    assert not marker.exists()  # refused before anything was unpickled
    tuner_pkl.write_bytes(tuner_state)

    edited = json.loads(race_json)
    edited["tune_storage"] = str(tmp_path / "elsewhere")  # a stored path that leaves the workspace
    race_file.write_text(json.dumps(edited))
    refused("resume with the home and storage the search was started with")
    assert not (tmp_path / "elsewhere").exists()

    edited = json.loads(race_json)
    edited["datasets"][TARGET] = "0" * 16  # the target changed since the race started
    race_file.write_text(json.dumps(edited))
    refused(f"dataset '{TARGET}' changed since the race started")
    race_file.write_text(race_json)

    refused(f"--home {suite_home}", Workspace.open(tmp_path / "other-home", zoo_storage))  # --resume RUN --home OTHER

    resumed = resume_race(run, workspace, verbose=False, tensorboard=False)  # refusals left nothing behind
    board = resumed.answer["leaderboard"]
    assert len(board) == 2 and all(r["status"] == "finished" and r["epochs"] == 2 for r in board), board
    verify_ledger(run, Storage(Path(zoo_storage) / "tune"), "poisoned")  # the record follows the resumed state


def test_a_dataset_changed_before_the_first_checkpoint_fails_the_trials(ray_session, workspace, tmp_path,
                                                                          monkeypatch, capsys):
    import raynas.race.race as race_module

    monkeypatch.setattr(race_module, "race_datasets", lambda config, ws: {TARGET: "0" * 16})
    config = race_config(epochs=2, race=1, multi=False, max_failures=1)
    with pytest.raises(RaynasError, match=f"failed on bad input .*dataset '{TARGET}' changed since the race "
                                          "started") as err:
        run_race(config, workspace, run_dir=tmp_path / "changed-data", verbose=True, tensorboard=False)
    assert f"raynas search --resume {tmp_path / 'changed-data'}" in str(err.value)
    progress = capsys.readouterr().err
    # shown as a failure with its reason, retried once, never as an epoch that leads
    assert f"crashed (dataset '{TARGET}' changed since the race started" in progress, progress
    assert f"FAILED: dataset '{TARGET}' changed since the race started" in progress
    assert "fix: restore" in progress and "(leads)" not in progress and "stopped early by ASHA" not in progress
    assert not (tmp_path / "changed-data" / "result.json").exists()  # not concluded: no winner without that trial

    # the data is as recorded again: the resume runs the failed trial, which was never finally failed
    run = tmp_path / "changed-data"
    race = json.loads((run / "race.json").read_text())
    race["datasets"][TARGET] = workspace.store.info(TARGET).content_hash
    (run / "race.json").write_text(json.dumps(race))
    monkeypatch.undo()
    resumed = resume_race(run, workspace, verbose=False, tensorboard=False)
    [row] = resumed.answer["leaderboard"]
    assert row["status"] == "finished" and row["epochs"] == 2


@pytest.mark.parametrize("changes, message", [
    (dict(transfer="nope"), "zoo entry 'nope' not found"),
    (dict(race=0), "race (--race) must be >= 1"),
    (dict(gpus_per_trial=4), "a trial needs 2 CPUs and 4 GPUs on one node, but no node of the Ray cluster"),
    (dict(cpus_per_trial=64), "a trial needs 64 CPUs on one node, but no node of the Ray cluster has that much"),
    (dict(trials=1, baseline=True), "--trials 1 is fewer than the 4 candidates"),
    (dict(device="cuda"), "CUDA is not available"),
])
def test_bad_race_options_fail_before_any_trial_starts(workspace, tmp_path, changes, message):
    race_fields = set(RaceConfig.__dataclass_fields__)
    search = {k: v for k, v in changes.items() if k not in race_fields}
    race = {k: v for k, v in changes.items() if k in race_fields}
    run_dir = tmp_path / "bad-race"
    with pytest.raises(RaynasError) as err:
        config = ExperimentConfig(SearchConfig(dataset=TARGET, epochs=2, **TINY, **search), RaceConfig(**race))
        run_race(config, workspace, run_dir=run_dir, verbose=False)
    assert message in str(err.value)
    assert not (Path(workspace.storage) / "tune" / run_dir.name).exists()  # no trial started


def test_a_race_that_cannot_start_leaves_no_run_folder(ray_session, workspace, monkeypatch):
    import raynas.race.race as race_module

    def storage_refuses(*args, **kwargs):
        raise RaynasError("cannot access the Tune storage", "check it")

    monkeypatch.setattr(race_module, "_tuner", storage_refuses)
    runs = workspace.store.home.runs
    before = set(runs.iterdir())
    with pytest.raises(RaynasError, match="cannot access the Tune storage"):
        run_race(race_config(epochs=1, race=1, multi=False), workspace, verbose=False, tensorboard=False)
    assert set(runs.iterdir()) == before


@pytest.mark.slow  # ~10-20 s; the default run keeps the same path's cheaper tests
def test_a_race_with_retrain_ends_with_a_model_in_its_run_directory(ray_session, workspace, tmp_path):
    import raynas
    from raynas.search.retrain import RetrainConfig

    config = ExperimentConfig(SearchConfig(dataset=TARGET, epochs=1, **TINY), RaceConfig(race=1),
                              RetrainConfig(epochs=1, channels=4, cells=3, max_steps_per_epoch=2, threads=1))
    result = run_race(config, workspace, run_dir=tmp_path / "run-model", verbose=False)
    retrained = result.answer["retrain"]
    assert retrained["model"]["path"] == str(tmp_path / "run-model" / "model")
    model, preprocess = raynas.load_model(tmp_path / "run-model")  # written back by the driver, checked on load
    assert model.card.network["genotype"] == result.answer["genotype"]
    x, y = workspace.store.load(TARGET).split("test")
    with torch.no_grad():
        acc = float((model(preprocess.batch(x)).argmax(1).numpy() == y).mean())
    assert acc == pytest.approx(retrained["test_acc"], abs=1e-9)


@pytest.mark.parametrize("device, refused", [("auto", True), ("cuda", True), ("cpu", False)])
def test_a_trial_given_a_gpu_that_torch_cannot_use_fails_unless_the_cpu_was_asked_for(monkeypatch, device, refused):
    import ray

    from raynas.race.trial import check_assigned_gpu

    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "10.0.0.7")
    if refused:
        with pytest.raises(RaynasError, match="Ray gave this trial GPU 0 on node 10.0.0.7, but torch") as err:
            check_assigned_gpu(device)
        assert "--device cpu" in err.value.fix
    else:
        check_assigned_gpu(device)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    check_assigned_gpu(device)  # no GPU given: nothing to check
