"""The zoo, distance and warm-started search commands, end to end on a tiny zoo."""

import json
from pathlib import Path

import numpy as np
import pytest

from raynas.cli import main

TARGET = "mnist5k-rot"
SOURCES = ["digits", "glyph-digits", "mnist5k", "textures"]
QUICK = ["--preset", "tiny", "--epochs", "1", "--max-steps", "2"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def zoo_args(suite_home, tmp_path_factory):
    """A zoo of four tiny supernets (the target left out), built once for this module."""
    storage = tmp_path_factory.mktemp("shared")
    args = ["--home", suite_home, "--storage", storage]
    assert main(["zoo", "build", "--datasets", ",".join(SOURCES + [TARGET]), "--exclude", TARGET, *QUICK,
                 "--sequential", "--json", *map(str, args)]) == 0
    return args


def test_zoo_list(capsys, zoo_args):
    rows = run_json(capsys, "zoo", "list", *zoo_args)
    assert [r["name"] for r in rows] == SOURCES
    for r in rows:
        assert r["kind"] == "single" and r["source"] == r["name"] and 0 <= r["accuracy"] <= 1
        assert (r["channels"], r["cells"], r["nodes"]) == (4, 3, 3)  # the tiny preset
    code, out, _ = run(capsys, "zoo", "list", *zoo_args)
    assert code == 0 and "glyph-digits" in out and "val acc" in out


def test_a_damaged_zoo_entry_is_listed_as_such_and_the_others_still_serve(capsys, zoo_args, tmp_path):
    import shutil

    zoo = Path(zoo_args[3]) / "zoo"
    shutil.copytree(zoo / "textures", zoo / "broken")
    manifest = next((zoo / "broken").glob("*/manifest.json"))
    manifest.write_text(manifest.read_text().replace('"format"', '"sources": 7, "format"', 1))
    try:
        rows = run_json(capsys, "zoo", "list", *zoo_args)
        assert [r["name"] for r in rows if not r["damaged"]] == SOURCES
        [bad] = [r for r in rows if r["damaged"]]
        assert bad["name"] == "broken" and "unreadable manifest" in bad["error"] and "zoo remove broken" in bad["fix"]
        code, out, _ = run(capsys, "zoo", "list", *zoo_args)
        assert code == 0 and "DAMAGED" in out and "1 damaged" in out
        assert run_json(capsys, "distance", TARGET, *zoo_args)["ranking"]  # ranking skips it
    finally:
        shutil.rmtree(zoo / "broken")


def test_distance_ranks_the_zoo_for_a_left_out_target(capsys, zoo_args):
    d = run_json(capsys, "distance", TARGET, *zoo_args)
    ranking = d["ranking"]
    assert sorted(r["dataset"] for r in ranking) == SOURCES and [r["rank"] for r in ranking] == [1, 2, 3, 4]
    assert ranking[0]["dataset"] == "mnist5k"  # the unrotated digits are nearest
    assert [r["distance"] for r in ranking] == sorted(r["distance"] for r in ranking)
    assert d["encoder"].startswith("pixels-") and d["embed_s"] >= 0 and d["query_s"] < 5
    assert run_json(capsys, "distance", TARGET, "--top", "2", *zoo_args)["ranking"] == ranking[:2]
    for method in ("otdd", "hot", "sliced"):
        other = run_json(capsys, "distance", TARGET, "--method", method, *zoo_args)["ranking"]
        assert {r["method"] for r in other} == {method} and len(other) == 4
    code, out, _ = run(capsys, "distance", TARGET, *zoo_args)
    assert code == 0 and "query" in out and "mnist5k" in out


def test_distance_leaves_out_entries_trained_on_the_target(capsys, zoo_args):
    d = run_json(capsys, "distance", "mnist5k", *zoo_args)
    assert d["left_out"] == ["mnist5k"] and "mnist5k" not in {r["dataset"] for r in d["ranking"]}


def test_distance_against_datasets_needs_no_zoo(capsys, suite_home, tmp_path):
    d = run_json(capsys, "distance", "glyph-upper", "--sources", "glyph-lower,photo-patches",
                 "--home", suite_home, "--storage", tmp_path)
    assert [r["dataset"] for r in d["ranking"]] == ["glyph-lower", "photo-patches"]


@pytest.mark.parametrize("argv, message", [(["--method", "euclid"], "unknown dataset distance 'euclid'"),
                                           (["--top", "0"], "--top 0 keeps nothing"),
                                           (["--encoder", "vgg"], "unknown encoder 'vgg'")])
def test_distance_errors(capsys, zoo_args, argv, message):
    code, _, err = run(capsys, "distance", TARGET, *argv, *zoo_args)
    assert code == 1 and message in err


def test_search_transfer_ot_warm_starts_from_the_nearest_source(capsys, zoo_args):
    nearest = run_json(capsys, "distance", TARGET, *zoo_args)["ranking"][0]
    d = run_json(capsys, "search", TARGET, "--transfer", "ot", *QUICK, *zoo_args)
    t = d["transfer"]
    assert t["strategy"] == "ot" and t["source"] == nearest["source"] and t["method"] == "otdd"
    assert t["distance"] == pytest.approx(nearest["distance"])
    assert t["mode"] == "weights+alphas" and t["tensors"]["copied"] > 100 and t["tensors"]["adapted"] == []
    [row] = d["leaderboard"]
    assert row["source"] == nearest["source"] and row["status"] == "finished" and d["winner"] == row
    saved = json.loads((Path(d["run_dir"]) / "result.json").read_text())
    assert saved["transfer"] == t and saved["config"]["search"]["transfer"] == "ot"


def _workspace(zoo_args):
    from raynas.workspace import Workspace

    return Workspace.open(zoo_args[1], str(zoo_args[3]))


def _warm_start(zoo_args, **changes):
    """The warm start a search with these settings gets (no training: the record is the point)."""
    from raynas.search.config import SearchConfig
    from raynas.transfer.warm_start import warm_start

    ws = _workspace(zoo_args)
    config = SearchConfig(dataset=TARGET, preset="tiny", **changes)
    return warm_start(config, ws.store, ws.zoo, ws.embeddings, ws.embedding_storage)[1]


def test_search_head_probe_fits_the_classifier_to_the_target_before_the_search(capsys, zoo_args):
    """mnist5k has mnist5k-rot's 10 classes, so `copy` keeps its head; `probe` refits it."""
    import torch

    from raynas.search.config import SearchConfig
    from raynas.search.loop import create_search_data
    from raynas.transfer.warm_start import warm_start

    ws = _workspace(zoo_args)
    val_acc = {}
    for head in ("copy", "probe"):
        config = SearchConfig(dataset=TARGET, preset="tiny", transfer="mnist5k", head=head)
        model, record = warm_start(config, ws.store, ws.zoo, ws.embeddings, ws.embedding_storage)
        data = create_search_data(config, ws.store, model.space.image_size, model.space.in_channels,
                                  torch.device("cpu"))
        val_acc[head] = data.evaluate(model)["val_acc"]
    assert record["head"]["method"] == "probe" and record["head"]["images"] == 1000 and record["head"]["seconds"] > 0
    assert record["head"]["train_acc"] > 0.3  # 10 classes: chance is 0.1
    assert val_acc["probe"] > max(val_acc["copy"] + 0.1, 0.25)  # a head start before the first step
    d = run_json(capsys, "search", TARGET, "--transfer", "mnist5k", "--head", "probe", *QUICK, *zoo_args)
    assert d["transfer"]["head"]["method"] == "probe" and d["winner"]["status"] == "finished"
    code, _, err = run(capsys, "search", TARGET, "--transfer", "mnist5k", "--head", "lp", *QUICK, *zoo_args)
    assert code == 1 and "unknown head initialisation 'lp'" in err and "copy, probe" in err


@pytest.mark.parametrize("mode, copied", [("weights", lambda n: n > 100), ("alphas", lambda n: n == 2)])
def test_search_transfer_modes(zoo_args, mode, copied):
    t = _warm_start(zoo_args, transfer="glyph-digits", transfer_mode=mode, alpha_temperature=2.0)
    assert t["strategy"] == "named" and t["source"] == "glyph-digits" and t["mode"] == mode
    assert copied(t["tensors"]["copied"]) and t["alpha_temperature"] == 2.0


def test_search_transfer_random_is_seeded(zoo_args):
    picks = {_warm_start(zoo_args, transfer="random", seed=3)["source"] for _ in range(2)}
    assert len(picks) == 1 and picks <= set(SOURCES)


def test_search_transfer_probe_takes_the_source_its_linear_probe_scores_best(zoo_args):
    from raynas.ot.encoders import create_encoder
    from raynas.transfer.probe import PROBE_SEED, probe_accuracy

    t = _warm_start(zoo_args, transfer="probe", probe_min_cut=0.0)  # 0: the best source, however weak
    ranking = t["ranking"]
    scores = [s for s in ranking if s["source"] != "scratch"]
    assert t["strategy"] == "probe" and t["source"] == scores[0]["source"] and t["method"] == "linear probe"
    assert {s["source"] for s in ranking} == {*SOURCES, "scratch"}  # every source, never the target; and random
    assert [s["accuracy"] for s in ranking] == sorted((s["accuracy"] for s in ranking), reverse=True)
    # the best score is what a probe on that source's features gives, by hand
    from raynas.ot.sampling import stratified_indices

    ws = _workspace(zoo_args)
    ds = ws.store.load(TARGET)
    (xt, yt), (xv, yv) = ds.split("train"), ds.split("val")
    kt, kv = stratified_indices(yt, 1000, PROBE_SEED), stratified_indices(yv, 1000, PROBE_SEED)
    f = create_encoder("supernet", storage=None, zoo=ws.zoo, source=scores[0]["source"]).encode(
        np.concatenate([xt[kt], xv[kv]]))
    assert probe_accuracy(f[:len(kt)], yt[kt], f[len(kt):], yv[kv]) == pytest.approx(scores[0]["accuracy"])
    assert scores[0]["accuracy"] > 1.5 / ds.info.num_classes  # well above chance


def test_search_transfer_probe_starts_from_scratch_when_sources_beat_random_features_by_too_little(capsys,
                                                                                                   zoo_args):
    # no source removes all of the random features' probe error: --probe-min-cut 1 always says scratch
    d = run_json(capsys, "search", TARGET, "--transfer", "probe", "--probe-min-cut", "1", *QUICK, *zoo_args)
    assert [n for n in d["notes"] if "removes" in n and "under --probe-min-cut 1" in n]  # says why
    assert d["transfer"]["strategy"] == "scratch" and d["transfer"].get("source") is None
    assert d["winner"]["source"] == "scratch" and d["winner"]["status"] == "finished"
    t = _warm_start(zoo_args, transfer="probe", probe_min_cut=1.0)  # the library's record, without the race
    assert t["strategy"] == "probe" and t["source"] is None and "under --probe-min-cut 1" in t["note"]


def test_search_transfer_errors(capsys, zoo_args):
    code, _, err = run(capsys, "search", TARGET, "--transfer", "nope", *QUICK, *zoo_args)
    assert code == 1 and "zoo entry 'nope' not found" in err and "glyph-digits" in err
    code, _, err = run(capsys, "search", TARGET, "--transfer", "digits", "--preset", "cpu", "--epochs", "1",
                       *zoo_args)
    assert code == 1 and "another search space" in err and "channels 4 vs 8" in err
    code, _, err = run(capsys, "search", TARGET, "--transfer", "ot", "--preset", "cpu", *zoo_args)
    assert code == 1 and "no single-dataset supernet that fits" in err and "--exclude" in err
    code, _, err = run(capsys, "search", TARGET, "--transfer", "multi", *QUICK, *zoo_args)
    assert code == 1 and "no multi-dataset supernet" in err and "--multi NAME" in err
    code, _, err = run(capsys, "search", TARGET, "--transfer", "digits", "--transfer-mode", "all", *QUICK, *zoo_args)
    assert code == 1 and "unknown transfer mode 'all'" in err


def test_multi_dataset_supernet_builds_and_transfers(capsys, zoo_args):
    rows = run_json(capsys, "zoo", "build", "--multi", "mix", "--datasets", "digits,photo-patches", *QUICK,
                    "--sequential", *zoo_args)
    assert [(r["name"], r["kind"], r["source"]) for r in rows] == [("mix", "multi", "digits+photo-patches")]
    t = _warm_start(zoo_args, transfer="multi")
    assert t["strategy"] == "multi" and t["source"] == "mix" and t["source_kind"] == "multi"
    assert t["tensors"]["adapted"] == ["stem.0.weight"]  # RGB multi supernet -> gray target
    assert t["tensors"]["kept"] == 2  # the target's own fresh classifier
    # the race's candidates: the nearest sources, then the multi-dataset supernet
    from raynas.race.candidates import race_candidates
    from raynas.search.config import SearchConfig
    from raynas.search.loop import check_config

    ws = _workspace(zoo_args)
    search = SearchConfig(dataset=TARGET, preset="tiny")
    found, notes = race_candidates(search, 3, True, True, check_config(search, ws.store), ws)
    assert [c.strategy for c in found] == ["ot", "ot", "ot", "multi", "scratch"] and found[0].key == "mnist5k"
    assert [c.rank for c in found[:3]] == [1, 2, 3] and found[3].key == "mix" and notes == []
    # a multi supernet that saw the target is never chosen for it
    code, _, err = run(capsys, "search", "digits", "--transfer", "multi", *QUICK, *zoo_args)
    assert code == 1 and "not trained on 'digits'" in err
    # the multi supernet also serves as an encoder of its own feature space
    d = run_json(capsys, "distance", TARGET, "--encoder", "supernet", *zoo_args)
    assert d["encoder"].startswith("supernet-mix-") and sorted(r["dataset"] for r in d["ranking"]) == SOURCES
    run(capsys, "zoo", "remove", "mix", *zoo_args)


def test_publish_grows_the_zoo_and_a_tampered_entry_is_refused(capsys, zoo_args, tmp_path):
    d = run_json(capsys, "search", "glyph-greek", "--transfer", "ot", "--publish", *QUICK, *zoo_args)
    assert d["published"]["name"] == "glyph-greek" and d["published"]["warm_started_from"] == d["transfer"]["source"]
    names = [r["name"] for r in run_json(capsys, "zoo", "list", *zoo_args)]
    assert "glyph-greek" in names
    # publishing the same result again writes no new version
    from raynas.experiment import finish_checkpoint, read_config

    ws = _workspace(zoo_args)
    trial = Path(json.loads((Path(d["run_dir"]) / "result.json").read_text())["leaderboard"][0]["path"])
    checkpoint = sorted(trial.glob("checkpoint_*"))[-1]
    again = finish_checkpoint(checkpoint, read_config(d["run_dir"]), ws, Path(d["run_dir"]), verbose=False)
    assert again.published.version == d["published"]["version"]
    ranking = run_json(capsys, "distance", "glyph-upper", *zoo_args)["ranking"]
    assert "glyph-greek" in {r["dataset"] for r in ranking}  # its embedding was stored with it

    storage = Path(zoo_args[3]) / "zoo" / "glyph-greek"
    weights = next(storage.glob("*/weights.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    code, _, err = run(capsys, "search", TARGET, "--transfer", "glyph-greek", *QUICK, *zoo_args)
    assert code == 1 and "does not match the sha256" in err and "zoo remove glyph-greek" in err
    assert run(capsys, "zoo", "remove", "glyph-greek", *zoo_args)[0] == 0
    assert "glyph-greek" not in [r["name"] for r in run_json(capsys, "zoo", "list", *zoo_args)]


def test_problems_that_would_end_a_search_are_found_before_it_trains(capsys, zoo_args, suite_home):
    runs = set((Path(suite_home) / "runs").iterdir())
    code, _, err = run(capsys, "search", TARGET, "--publish", "--encoder", "nope", *QUICK, *zoo_args)
    assert code == 1 and "unknown encoder 'nope'" in err
    code, _, err = run(capsys, "search", "digits", "--publish", "--preset", "cpu", "--epochs", "1", *zoo_args)
    assert code == 1 and "zoo entry 'digits' already holds a supernet of another space" in err
    assert "raynas zoo remove digits" in err
    code, _, err = run(capsys, "zoo", "build", "--datasets", "digits", "--preset", "cpu", *QUICK[2:], *zoo_args)
    assert code == 1 and "already holds a supernet of another space" in err
    code, _, err = run(capsys, "zoo", "build", "--multi", "digits", "--datasets", "textures,mnist5k", *QUICK,
                       *zoo_args)
    assert code == 1 and "'digits' is a dataset" in err
    code, _, err = run(capsys, "zoo", "build", "--multi", "Bad/Name", "--datasets", "textures,mnist5k", *QUICK,
                       *zoo_args)
    assert code == 1 and "not valid" in err
    code, _, err = run(capsys, "zoo", "build", "--datasets", "textures", "--encoder", "nope", *QUICK, *zoo_args)
    assert code == 1 and "unknown encoder 'nope'" in err
    assert set((Path(suite_home) / "runs").iterdir()) == runs  # nothing was trained


def test_auto_races_scratch_only_when_no_source_fits(capsys, zoo_args, suite_home, tmp_path):
    empty = ["--home", suite_home, "--storage", tmp_path]
    code, out, err = run(capsys, "search", TARGET, *QUICK, *empty)  # --transfer auto is the default
    assert code == 0 and "nothing in the zoo fits this target" in err and "ot:" in err and "multi:" in err
    assert "candidate scratch" in err and "leaderboard" in out
    code, _, err = run(capsys, "search", TARGET, "--encoder", "nope", *QUICK, *zoo_args)
    assert code == 1 and "unknown encoder 'nope'" in err  # a real error is not papered over


def test_zoo_build_errors(capsys, suite_home, tmp_path):
    args = ["--home", suite_home, "--storage", tmp_path, *QUICK]
    code, _, err = run(capsys, "zoo", "build", "--datasets", "digits,nope", "--sequential", *args)
    assert code == 1 and "dataset 'nope' not found" in err
    code, _, err = run(capsys, "zoo", "build", "--datasets", "digits", "--exclude", "mnist5k", *args)
    assert code == 1 and "--exclude names datasets that are not being built: mnist5k" in err
    code, _, err = run(capsys, "zoo", "build", "--datasets", "digits", "--algo", "enas", *args)
    assert code == 1 and "unknown search algorithm 'enas'" in err
    assert not (tmp_path / "zoo").exists() or not list((tmp_path / "zoo").iterdir())  # nothing was published


def test_zoo_build_runs_sources_in_parallel_ray_tasks(capsys, ray_session, suite_home, tmp_path):
    rows = run_json(capsys, "zoo", "build", "--datasets", "digits,textures", *QUICK, "--home", suite_home,
                    "--storage", tmp_path)
    assert sorted(r["name"] for r in rows) == ["digits", "textures"]
    assert [r["name"] for r in run_json(capsys, "zoo", "list", "--home", suite_home, "--storage", tmp_path)] == \
        ["digits", "textures"]
