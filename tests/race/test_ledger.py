"""The digests of a race's Tune state: recorded in the run directory as Tune writes the state
through the ledger filesystem, checked on every read and before a resume."""

import json
import pickle

import pyarrow.fs as pafs
import pytest

from raynas.errors import RaynasError
from raynas.race.ledger import LEDGER_FILE, ledger_filesystem, read_ledger, verify_ledger, watched
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
    """A Tune experiment written as Tune writes it: through the ledger filesystem."""
    storage = Storage(tmp_path / "tune")
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    fs = ledger_filesystem(storage, "run-1", run_dir)
    root = tmp_path / "tune" / "run-1"
    fs.create_dir(f"{storage.root}/run-1/trial_1/checkpoint_000001", recursive=True)
    for rel, data in (("tuner.pkl", pickle.dumps({"state": 1})), ("experiment_state-a.json", b'{"trial_data": []}'),
                      ("trial_1/error.pkl", pickle.dumps("boom")), ("trial_1/checkpoint_000001/checkpoint.json", b"{}")):
        with fs.open_output_stream(f"{storage.root}/run-1/{rel}") as fh:
            fh.write(data)
    return storage, root, run_dir, fs


def _read(fs, path):
    with fs.open_input_stream(str(path)) as fh:
        return fh.read()


def test_what_tune_writes_is_recorded_and_reads_back(experiment):
    storage, root, run_dir, fs = experiment
    assert set(read_ledger(run_dir)) == {"tuner.pkl", "experiment_state-a.json", "trial_1/error.pkl"}
    verify_ledger(run_dir, storage, "run-1")
    assert pickle.loads(_read(fs, root / "tuner.pkl")) == {"state": 1}
    (root / "trial_1" / "checkpoint_000001" / "checkpoint.json").write_text('{"x": 1}')  # not watched
    assert _read(fs, root / "trial_1" / "checkpoint_000001" / "checkpoint.json") == b'{"x": 1}'
    verify_ledger(run_dir, storage, "run-1")


def test_tunes_sync_up_and_down_go_through_the_record(experiment, tmp_path):
    storage, root, run_dir, fs = experiment
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "searcher-state-b.pkl").write_bytes(pickle.dumps([1, 2]))
    pafs.copy_files(str(staging), str(root), destination_filesystem=fs)  # as Tune's syncer uploads
    assert "searcher-state-b.pkl" in read_ledger(run_dir)
    down = tmp_path / "down"
    down.mkdir()
    pafs.copy_files(str(root / "searcher-state-b.pkl"), str(down / "s.pkl"), source_filesystem=fs)  # sync_down
    assert pickle.loads((down / "s.pkl").read_bytes()) == [1, 2]
    (root / "searcher-state-b.pkl").write_bytes(pickle.dumps([3]))  # swapped in shared storage
    with pytest.raises(RaynasError, match="changed: searcher-state-b.pkl"):
        pafs.copy_files(str(root / "searcher-state-b.pkl"), str(down / "t.pkl"), source_filesystem=fs)


@pytest.mark.parametrize("tamper, message", [
    (lambda root: (root / "tuner.pkl").write_bytes(pickle.dumps({"state": 2})), "changed: tuner.pkl"),
    (lambda root: (root / "experiment_state-b.json").write_text("{}"),
     "not written by this race: experiment_state-b.json"),
    (lambda root: (root / "trial_1" / "params.pkl").write_bytes(b"x"), "not written by this race: trial_1/params.pkl"),
    (lambda root: (root / "experiment_state-a.json").unlink(), "missing: experiment_state-a.json"),
    (lambda root: (root / "experiment_state-a.json").write_text('{"trial_data": [}'), "changed: experiment_state"),
    (lambda root: (root / "searcher-state-z.pkl").mkdir(), "not a file: searcher-state-z.pkl"),
])
def test_a_changed_state_is_refused_by_name(experiment, tamper, message):
    storage, root, run_dir, fs = experiment
    tamper(root)
    with pytest.raises(RaynasError, match="cannot be restored") as err:
        verify_ledger(run_dir, storage, "run-1")
    assert message in str(err.value) and "start the search again" in str(err.value)


@pytest.mark.parametrize("rel, data, message", [
    ("tuner.pkl", b"swapped", "changed: tuner.pkl"),
    ("experiment_state-z.json", b"{}", "not written by this race: experiment_state-z.json"),
    ("trial_1/error.pkl", b"swapped", "changed: trial_1/error.pkl"),
])
def test_every_read_of_a_watched_file_is_checked(experiment, rel, data, message):
    storage, root, run_dir, fs = experiment
    (root / rel).write_bytes(data)  # after any check before the resume: the read itself refuses
    for opener in (fs.open_input_stream, fs.open_input_file):
        with pytest.raises(RaynasError, match=message):
            opener(str(root / rel))


def test_the_filesystem_pickles_and_still_checks(experiment):
    storage, root, run_dir, fs = experiment
    copy = pickle.loads(pickle.dumps(fs))  # Tune pickles it into tuner.pkl and sends it to the trials
    assert copy.equals(fs)
    (root / "tuner.pkl").write_bytes(b"swapped")
    with pytest.raises(RaynasError, match="changed: tuner.pkl"):
        copy.open_input_file(str(root / "tuner.pkl"))


@pytest.mark.parametrize("content, message", [
    (None, "has no record of the Tune state"),
    ("not json", "is damaged"),
    (json.dumps({"files": ["tuner.pkl"]}), "is damaged"),
    (json.dumps({"files": {"tuner.pkl": 1}}), "is damaged"),
])
def test_a_missing_or_damaged_ledger_refuses_the_resume(experiment, content, message):
    storage, _, run_dir, _ = experiment
    (run_dir / LEDGER_FILE).unlink()
    if content is not None:
        (run_dir / LEDGER_FILE).write_text(content)
    with pytest.raises(RaynasError, match=message):
        verify_ledger(run_dir, storage, "run-1")


def test_moves_and_copies_inside_the_storage_keep_the_record(experiment):
    storage, root, run_dir, fs = experiment
    fs.copy_file(str(root / "tuner.pkl"), str(root / "callback-states-a.pkl"))
    fs.move(str(root / "experiment_state-a.json"), str(root / "experiment_state-b.json"))
    files = read_ledger(run_dir)
    assert files["callback-states-a.pkl"] == files["tuner.pkl"]
    assert "experiment_state-b.json" in files and "experiment_state-a.json" not in files
    verify_ledger(run_dir, storage, "run-1")
    (root / "tuner.pkl").write_bytes(b"swapped")
    with pytest.raises(RaynasError, match="changed: tuner.pkl"):  # a swapped source is not laundered by a copy
        fs.copy_file(str(root / "tuner.pkl"), str(root / "searcher-state-x.pkl"))
