"""Inputs that used to end in "unexpected error" or run far too long: each is one clear error with
a fix, exit code 1, no traceback, before Ray starts; with --json also one JSON object on stdout;
nothing stored changes."""

import hashlib
import json
import sys
from pathlib import Path

import pytest

from raynas.bench.config import TransferBenchConfig
from raynas.cli import main
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig

SMALL_GRID = ["--per-class", "1", "--max-classes", "2"]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def places(suite_home, tmp_path):
    """A home of its own (two datasets linked from the suite's), a folder and a plain file."""
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    for name in ("digits", "textures"):
        (home / "datasets" / f"{name}.parquet").symlink_to(Path(suite_home) / "datasets" / f"{name}.parquet")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "afile").write_text("x")
    return {"home": home, "tmp": tmp_path}


CASES = {  # name: (argv from places, fragments the message must hold)
    "data show --out /proc": (lambda p: ["data", "show", "digits", "--out", "/proc/x.png", *SMALL_GRID],
                              ["cannot write the figure /proc/x.png"]),
    "data show --out a folder": (lambda p: ["data", "show", "digits", "--out", p["tmp"] / "afolder", *SMALL_GRID],
                                 ["cannot write the figure", "afolder", "Is a directory"]),
    "data show --out below a file": (lambda p: ["data", "show", "digits", "--out", p["tmp"] / "afile" / "x.png",
                                                *SMALL_GRID], ["afile is a file, not a folder"]),
    "search --w-lr-min above --w-lr": (lambda p: ["search", "digits", "--w-lr-min", "1", "--w-lr", "0.1"],
                                       ["w_lr_min (--w-lr-min) 1 is above w_lr (--w-lr) 0.1"]),
    "search --ops ''": (lambda p: ["search", "digits", "--ops", ""],
                        ["ops (--ops) names no operation", "known ops: none, max_pool_3x3"]),
    "search --ops ' , '": (lambda p: ["search", "digits", "--ops", " , "], ["ops (--ops) names no operation"]),
    "search --ops with an empty name": (lambda p: ["search", "digits", "--ops", "none,,skip_connect"],
                                        ["ops (--ops) 'none,,skip_connect' has an empty name", "known ops:"]),
    "search --ops trailing comma": (lambda p: ["search", "digits", "--ops", "skip_connect,"], ["has an empty name"]),
    "search --ops typo": (lambda p: ["search", "digits", "--ops", "none,skip_conect"],
                          ["unknown operation 'skip_conect'", "did you mean 'skip_connect'", "known ops:"]),
    "search --ops only none": (lambda p: ["search", "digits", "--ops", "none"], ["an op other than 'none'"]),
    "zoo build --ops ''": (lambda p: ["zoo", "build", "--datasets", "digits", "--ops", ""],
                           ["ops (--ops) names no operation", "known ops:"]),
    "zoo build --w-lr-min above --w-lr": (lambda p: ["zoo", "build", "--datasets", "digits", "--w-lr-min", "0.5",
                                                     "--w-lr", "0.01"], ["--w-lr-min", "--w-lr"]),
    "zoo build --datasets ''": (lambda p: ["zoo", "build", "--datasets", ""], ["--datasets is empty"]),
    "zoo build --datasets with an empty name": (lambda p: ["zoo", "build", "--datasets", "digits,,textures"],
                                                ["--datasets 'digits,,textures' has an empty name"]),
    "zoo build --exclude ''": (lambda p: ["zoo", "build", "--exclude", ""], ["--exclude is empty"]),
    "zoo build --exclude trailing comma": (lambda p: ["zoo", "build", "--exclude", "digits,"],
                                           ["--exclude 'digits,' has an empty name"]),
    "zoo build --resume with options": (lambda p: ["zoo", "build", "--resume", p["tmp"] / "afolder", "--epochs", "3",
                                                   "--datasets", "digits"],
                                        ["--resume takes the build's own settings", "--datasets, --epochs"]),
    "zoo build --resume of no build": (lambda p: ["zoo", "build", "--resume", p["tmp"] / "afolder"],
                                       ["afolder is not a zoo build's run directory"]),
    "distance --sources ''": (lambda p: ["distance", "digits", "--sources", ""], ["--sources is empty"]),
    "distance --sources with an empty name": (lambda p: ["distance", "digits", "--sources", "textures,,digits"],
                                              ["--sources 'textures,,digits' has an empty name"]),
    "bench --targets ''": (lambda p: ["bench", "transfer", "--targets", ""], ["targets (--targets) is empty"]),
    "bench --targets blank": (lambda p: ["bench", "transfer", "--targets", "  "], ["targets (--targets) is empty"]),
    "bench --quick --targets ''": (lambda p: ["bench", "transfer", "--quick", "--targets", ""],
                                   ["targets (--targets) is empty"]),
    "bench --targets with an empty name": (lambda p: ["bench", "transfer", "--targets", "digits,,textures"],
                                           ["targets (--targets) 'digits,,textures' has an empty name"]),
    "bench --sources ''": (lambda p: ["bench", "transfer", "--sources", ""], ["sources (--sources) is empty"]),
    "bench --arms ''": (lambda p: ["bench", "transfer", "--arms", ""], ["arms (--arms) is empty"]),
    "bench --arms trailing comma": (lambda p: ["bench", "transfer", "--arms", "scratch,ot,"],
                                    ["arms (--arms) 'scratch,ot,' has an empty name"]),
}


def _ray_up() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_and_changes_nothing(places, capsys, monkeypatch, case, as_json):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    make_argv, fragments = CASES[case]
    argv = [*map(str, make_argv(places)), "--home", str(places["home"]), *(["--json"] if as_json else [])]
    ray_before, before = _ray_up(), snapshot(places["tmp"])
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and "\n  fix: " in err and "Traceback" not in err
    assert all(f in err for f in fragments), err
    if as_json:
        answer = json.loads(out)  # exactly one JSON document
        assert set(answer) == {"error", "fix", "exit_code"} and answer["exit_code"] == 1
        assert answer["fix"] and answer["error"] in err and answer["fix"] in err
        assert all(f in f"{answer['error']} {answer['fix']}" for f in fragments)
    else:
        assert out == ""
    assert snapshot(places["tmp"]) == before  # nothing written or changed, no temporary file left
    assert sorted(p.name for p in places["tmp"].iterdir()) == ["afile", "afolder", "home"]
    assert ray_before or not _ray_up()  # refused before Ray starts


def test_a_json_answer_already_printed_is_not_followed_by_a_second(places, capsys, monkeypatch):
    from raynas.cli import data
    from raynas.cli.output import print_json

    def answer_then_fail(args):
        print_json({"datasets": []})
        raise RaynasError("failed after answering", "nothing to do")

    monkeypatch.setattr(data, "run_list", answer_then_fail)
    assert main(["data", "list", "--json", "--home", str(places["home"])]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"datasets": []} and "failed after answering" in err


def test_an_unexpected_error_with_json_is_one_object_with_exit_code_2(places, capsys, monkeypatch):
    from raynas.cli import data

    def crash(args):
        raise ZeroDivisionError("boom")

    monkeypatch.delenv("RAYNAS_DEBUG", raising=False)
    monkeypatch.setattr(data, "run_list", crash)
    assert main(["data", "list", "--json", "--home", str(places["home"])]) == 2
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["exit_code"] == 2 and answer["error"] == "unexpected ZeroDivisionError: boom"
    assert "this is a bug in raynas" in answer["fix"] and "this is a bug in raynas" in err
    assert "Traceback" not in err
    # the next command in the same process starts afresh: its failure is answered again
    assert main(["data", "show", "nope", "--json", "--home", str(places["home"])]) == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("dataset 'nope' not found")


def test_the_configs_refuse_empty_names_but_keep_their_defaults():
    assert TransferBenchConfig(targets=()).targets == ()  # a config file's [] still means every source
    for field in ("sources", "targets", "arms"):
        with pytest.raises(RaynasError, match=f"{field} \\(--{field}\\) is empty"):
            TransferBenchConfig(**{field: ("",)})
    with pytest.raises(RaynasError, match="must be a list of names"):
        TransferBenchConfig(targets=(1, 2))
    with pytest.raises(RaynasError, match="names no operation"):
        SearchConfig("digits", ops=())
    assert SearchConfig("digits").ops is None


def test_a_low_lr_floor_is_checked_where_people_give_it_not_in_every_config():
    """A race's HyperOpt samples trial LRs below the floor: those configs still build."""
    trial = SearchConfig("digits", w_lr=0.0005)
    assert trial.w_lr_min == 0.001
    with pytest.raises(RaynasError, match="is above w_lr"):
        SearchConfig("digits", w_lr=0.1, w_lr_min=1.0).check_schedule()
    SearchConfig("digits", w_lr=0.1, w_lr_min=0.1).check_schedule()  # a constant LR is fine
