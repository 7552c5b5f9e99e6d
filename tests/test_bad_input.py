"""Bad input to search, retrain, resume and zoo commands: a clear error, exit code 1, no traceback,
nothing stored changed (the data layer's cases are in tests/data/test_bad_input.py)."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from raynas.cli import main
from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig, run_experiment
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch
from raynas.workspace import Workspace

TINY = ["--preset", "tiny", "--epochs", "1", "--max-steps", "2"]
GENOTYPE = {"nodes": 2, "normal": [["skip_connect", 0], ["sep_conv_3x3", 1]] * 2,
            "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]] * 2}


def snapshot(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def places(suite_home, tmp_path):
    """A home of its own (datasets linked from the suite's) and a storage, with a tiny zoo entry,
    a run directory with a genotype, and a genotype file."""
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    for name in ("digits", "textures"):
        (home / "datasets" / f"{name}.parquet").symlink_to(Path(suite_home) / "datasets" / f"{name}.parquet")
    storage = tmp_path / "storage"
    run = tmp_path / "run"
    run.mkdir()
    (run / "genotype.json").write_text(json.dumps(GENOTYPE))
    (run / "result.json").write_text(json.dumps({"config": {"search": {"dataset": "digits"}},
                                                 "space": {"image_size": 8}}))
    return {"home": home, "storage": storage, "run": run, "tmp": tmp_path}


def _write(path: Path, content) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


CASES = {
    "search --device bogus": (lambda p: ["search", "digits", *TINY, "--device", "bogus"], "unknown device 'bogus'"),
    "search --device cuda:3": (lambda p: ["search", "digits", *TINY, "--device", "cuda:3"], "CUDA is not available"),
    "zoo build --device bogus": (lambda p: ["zoo", "build", "--datasets", "digits", *TINY, "--device", "bogus"],
                                 "unknown device 'bogus'"),
    "retrain --device bogus": (lambda p: ["retrain", p["run"], "--epochs", "1", "--device", "bogus"],
                               "unknown device 'bogus'"),
    "retrain --lr -1": (lambda p: ["retrain", p["run"], "--lr", "-1"], "lr (--lr) must be > 0"),
    "retrain --lr nan": (lambda p: ["retrain", p["run"], "--lr", "nan"], "lr (--lr) must be a finite number"),
    "retrain --drop-path 2": (lambda p: ["retrain", p["run"], "--drop-path", "2"], "drop_path (--drop-path) must be"),
    "genotype not JSON": (lambda p: (_write(p["run"] / "genotype.json", "{nope"), ["retrain", p["run"]])[1],
                          "is not valid JSON"),
    "genotype not UTF-8": (lambda p: (_write(p["run"] / "genotype.json", b"\xff\xfe{"), ["retrain", p["run"]])[1],
                           "cannot read the genotype"),
    "genotype a list": (lambda p: (_write(p["run"] / "genotype.json", "[1, 2]"), ["retrain", p["run"]])[1],
                        "is not a genotype: it holds a list"),
    "genotype wrong edges": (lambda p: (_write(p["run"] / "genotype.json", json.dumps({**GENOTYPE, "nodes": 3})),
                                        ["retrain", p["run"]])[1], "normal cell has 4 edges, expected 6"),
    "genotype unknown op": (lambda p: (_write(p["run"] / "genotype.json", json.dumps(
        {**GENOTYPE, "normal": [["conv_99", 0]] * 4})), ["retrain", p["run"]])[1], "unknown operation 'conv_99'"),
    "result.json damaged": (lambda p: (_write(p["run"] / "result.json", "{"), ["retrain", p["run"]])[1],
                            "cannot read the run's result"),
    "result.json without dataset": (lambda p: (_write(p["run"] / "result.json", "{}"), ["retrain", p["run"]])[1],
                                    "lacks the run's dataset or space"),
    "resume config.json damaged": (lambda p: (_write(p["run"] / "config.json", "{"),
                                              ["search", "--resume", p["run"]])[1], "config.json is damaged"),
    "resume without race.json": (lambda p: (_write(p["run"] / "config.json", json.dumps(
        {"search": {"dataset": "digits"}})), ["search", "--resume", p["run"]])[1], "is not a race run directory"),
    "home is a file": (lambda p: (_write(p["tmp"] / "afile", "x"), ["search", "digits", *TINY, "--home",
                                                                    p["tmp"] / "afile"])[1], "is a file, not a folder"),
    "runs is a file": (lambda p: (_write(p["home"] / "runs", "x"), ["search", "digits", *TINY, "--transfer",
                                                                    "scratch"])[1], "is a file, not a folder"),
    "zoo storage not writable": (lambda p: (p["storage"].mkdir(), _write(p["storage"] / "zoo", "x"),
                                            ["search", "digits", *TINY, "--transfer", "scratch", "--publish"])[2],
                                 "is not writable"),
    "unknown zoo entry": (lambda p: ["zoo", "remove", "nope"], "zoo entry 'nope' not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_and_changes_nothing(places, capsys, case):
    make_argv, message = CASES[case]
    argv = [str(a) for a in make_argv(places)]
    if "--home" not in argv:
        argv += ["--home", str(places["home"])]
    if argv[0] in ("search", "zoo") and "--storage" not in argv:
        argv += ["--storage", str(places["storage"])]
    before = snapshot(places["home"], places["storage"], places["run"])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("error: ")
    after = snapshot(places["home"], places["storage"], places["run"])
    assert after == before  # nothing stored changed (no run directory, no zoo entry)
    assert not (places["home"] / "runs").is_dir() or not list((places["home"] / "runs").iterdir())


class StopAfterFirstEpoch:
    def on_epoch_end(self, metrics, state):
        raise StopSearch


def _damage(checkpoint: Path, how: str) -> None:
    meta_path = checkpoint / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    tensors = checkpoint / meta["tensors"]
    if how == "not JSON":
        meta_path.write_text("{")
    elif how == "names a file outside":
        meta["tensors"] = "../../elsewhere.safetensors"
        meta_path.write_text(json.dumps(meta))
    elif how == "truncated tensors":
        tensors.write_bytes(tensors.read_bytes()[:100])
    elif how == "another supernet's tensors":
        from safetensors.torch import load_file, save_file

        from raynas.search.checkpoint import sha256_file

        state = load_file(str(tensors))
        key = next(k for k in state if k.startswith("/model/") and state[k].ndim == 4)
        state[key] = state[key][:, :1].contiguous()
        save_file(state, str(tensors))
        meta["sha256"] = sha256_file(tensors)
        meta_path.write_text(json.dumps(meta))
    elif how == "no info":
        meta["info"] = []
        meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("how, message", [("not JSON", "is damaged: not JSON"),
                                          ("names a file outside", "not a checkpoint file of its folder"),
                                          ("truncated tensors", "does not match its checksum"),
                                          ("another supernet's tensors", "does not fit its search's supernet"),
                                          ("no info", "its info is not an object")])
def test_a_damaged_checkpoint_is_refused_on_resume(suite_home, tmp_path, how, message):
    ws = Workspace.open(suite_home, str(tmp_path / "storage"))
    config = ExperimentConfig(SearchConfig(dataset="digits", preset="tiny", epochs=2, max_steps_per_epoch=2,
                                           transfer="scratch"))
    run_experiment(config, ws, run_dir=tmp_path / "run", callbacks=[StopAfterFirstEpoch()], verbose=False)
    checkpoint = tmp_path / "run" / "checkpoint"
    _damage(checkpoint, how)
    before = snapshot(checkpoint)
    with pytest.raises(RaynasError, match=message):
        run_experiment(None, ws, checkpoint=checkpoint, verbose=False)
    assert snapshot(checkpoint) == before


def test_a_zoo_manifest_with_fields_of_the_wrong_type_is_refused(suite_home, tmp_path):
    ws = Workspace.open(suite_home, str(tmp_path))
    run_experiment(ExperimentConfig(SearchConfig(dataset="digits", preset="tiny", epochs=1, max_steps_per_epoch=1,
                                                 transfer="scratch"), publish=True), ws, run_dir=tmp_path / "run",
                   verbose=False)
    manifest = next((tmp_path / "zoo" / "digits").glob("*/manifest.json"))
    for field, value in [("sources", 7), ("space", "big"), ("kind", ["single"])]:
        data = json.loads(manifest.read_text())
        original = manifest.read_text()
        data[field] = value
        manifest.write_text(json.dumps(data))
        with pytest.raises(RaynasError):
            config = SearchConfig(dataset="textures", preset="tiny", transfer="digits")
            from raynas.transfer.warm_start import warm_start

            warm_start(config, ws.store, ws.zoo, ws.embeddings, ws.embedding_storage)
        good, damaged = ws.zoo.scan()
        assert "digits" in damaged
        manifest.write_text(original)
    shutil.rmtree(tmp_path / "run")


def test_an_unreachable_cluster_is_named_quickly(tmp_path):
    """In a process of its own: this one may already be connected to the tests' Ray."""
    import subprocess
    import sys
    import time

    code = ("import sys; from raynas.cli import main; "
            f"sys.exit(main(['zoo', 'list', '--address', '127.0.0.1:1', '--home', {str(tmp_path)!r}]))")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "cannot connect to the Ray cluster at '127.0.0.1:1'" in done.stderr
    assert "Traceback" not in done.stderr and time.perf_counter() - t0 < 60
