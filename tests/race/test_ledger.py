"""The digests of a race's Tune state: recorded in the run directory, checked before a resume."""

import json
import pickle

import pytest

from raynas.errors import RaynasError
from raynas.race.ledger import LEDGER_FILE, LedgerCallback, read_ledger, record_ledger, verify_ledger, watched
from raynas.storage import Storage


@pytest.mark.parametrize("relpath, expected", [
    ("tuner.pkl", True), ("experiment_state-2026-12-06.json", True), ("searcher-state-x.pkl", True),
    ("trial_1/error.pkl", True), ("trial_1/params.pkl", True),
    ("trial_1/result.json", False), ("trial_1/checkpoint_000001/checkpoint.json", False),
    ("trial_1/checkpoint_000001/evil.pkl", False), ("events.out.tfevents.1", False),
])
def test_watched_files_are_what_tune_deserialises(relpath, expected):
    assert watched(relpath) is expected


@pytest.fixture
def experiment(tmp_path):
    storage = Storage(tmp_path / "tune")
    root = tmp_path / "tune" / "run-1"
    (root / "trial_1" / "checkpoint_000001").mkdir(parents=True)
    (root / "tuner.pkl").write_bytes(pickle.dumps({"state": 1}))
    (root / "experiment_state-a.json").write_text('{"trial_data": []}')
    (root / "trial_1" / "error.pkl").write_bytes(pickle.dumps("boom"))
    (root / "trial_1" / "checkpoint_000001" / "checkpoint.json").write_text("{}")
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    return storage, root, run_dir


def test_recorded_state_verifies(experiment):
    storage, root, run_dir = experiment
    files = record_ledger(run_dir, storage, "run-1")
    assert set(files) == {"tuner.pkl", "experiment_state-a.json", "trial_1/error.pkl"}
    assert read_ledger(run_dir) == files
    verify_ledger(run_dir, storage, "run-1")  # unchanged: no error
    (root / "trial_1" / "checkpoint_000001" / "checkpoint.json").write_text('{"x": 1}')  # not watched
    verify_ledger(run_dir, storage, "run-1")


@pytest.mark.parametrize("tamper, message", [
    (lambda root: (root / "tuner.pkl").write_bytes(pickle.dumps({"state": 2})), "changed: tuner.pkl"),
    (lambda root: (root / "experiment_state-b.json").write_text("{}"),
     "not written by this race: experiment_state-b.json"),
    (lambda root: (root / "trial_1" / "params.pkl").write_bytes(b"x"), "not written by this race: trial_1/params.pkl"),
    (lambda root: (root / "experiment_state-a.json").unlink(), "missing: experiment_state-a.json"),
    (lambda root: (root / "experiment_state-a.json").write_text('{"trial_data": [}'), "changed: experiment_state"),
])
def test_a_changed_state_is_refused_by_name(experiment, tamper, message):
    storage, root, run_dir = experiment
    record_ledger(run_dir, storage, "run-1")
    tamper(root)
    with pytest.raises(RaynasError, match="cannot be restored") as err:
        verify_ledger(run_dir, storage, "run-1")
    assert message in str(err.value) and "start the search again" in str(err.value)


@pytest.mark.parametrize("content, message", [
    (None, "has no record of the Tune state"),
    ("not json", "is damaged"),
    (json.dumps({"files": ["tuner.pkl"]}), "is damaged"),
    (json.dumps({"files": {"tuner.pkl": 1}}), "is damaged"),
])
def test_a_missing_or_damaged_ledger_refuses_the_resume(experiment, content, message):
    storage, _, run_dir = experiment
    if content is not None:
        (run_dir / LEDGER_FILE).write_text(content)
    with pytest.raises(RaynasError, match=message):
        verify_ledger(run_dir, storage, "run-1")


def test_the_callback_pickles_as_plain_strings_and_follows_the_storage(experiment):
    storage, root, run_dir = experiment
    callback = LedgerCallback(run_dir, storage.uri, "run-1", period_s=0.0)
    callback.on_step_end(iteration=1, trials=[])
    verify_ledger(run_dir, storage, "run-1")
    restored = pickle.loads(pickle.dumps(callback))  # Tune pickles its callbacks into tuner.pkl
    assert vars(restored)["storage_uri"] == storage.uri and restored._digests is None
    (root / "experiment_state-b.json").write_text('{"trial_data": [1]}')  # Tune saved its state again
    restored.on_step_end(iteration=2, trials=[])
    verify_ledger(run_dir, storage, "run-1")
    assert "experiment_state-b.json" in read_ledger(run_dir)
