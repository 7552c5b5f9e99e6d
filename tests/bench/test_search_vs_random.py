"""benchmarks/search_vs_random.py: its settings, random genotypes per space, and searched minus random."""

import importlib.util
import random
from pathlib import Path

import pytest

from raynas.data import DatasetStore
from raynas.space.genotype import sample_genotype

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_vs_random.py"
spec = importlib.util.spec_from_file_location("search_vs_random", SCRIPT)
svr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(svr)


@pytest.mark.parametrize("setting", sorted(svr.SETTINGS))
def test_every_setting_is_a_valid_one_thread_search(setting):
    config = svr.search_config(setting, "glyph-digits", 3)
    assert config.threads == 1 and config.seed == 3 and config.transfer == "scratch"
    for field, value in svr.SETTINGS[setting][0].items():
        assert getattr(config, field) == value


def test_random_genotypes_are_the_benchmark_arms_draws_from_each_settings_space(suite_home, tmp_path,
                                                                               monkeypatch):
    import raynas.search.retrain
    from raynas.bench.config import TransferBenchConfig
    from raynas.bench.trial import random_genotype
    from raynas.workspace import Workspace

    store = DatasetStore(suite_home)
    tiny = svr.random_genotypes("bench", "glyph-digits", 2, store)
    drawn = []  # what the benchmark's random-genotype arm retrains for its sample 1
    monkeypatch.setattr(raynas.search.retrain, "retrain",
                        lambda genotype, *a, **k: drawn.append(genotype) or {"test_acc": 0.5, "total_s": 1.0})
    random_genotype(TransferBenchConfig(), {"target": "glyph-digits", "seed": 1, "arm": "random-genotype"},
                    Workspace.open(suite_home, tmp_path))
    assert tiny[1] == drawn[0].to_json() != tiny[0]
    assert [g["nodes"] for g in tiny] == [3, 3]
    assert [g["nodes"] for g in svr.random_genotypes("cpu", "glyph-digits", 2, store)] == [4, 4]
    assert svr.space_key("long") == svr.space_key("bench") != svr.space_key("cpu")


def test_summary_compares_each_setting_with_the_random_genotypes_of_its_space():
    skip = {"nodes": 1, "normal": [["skip_connect", 0], ["sep_conv_3x3", 1]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]]}
    searches = [{"setting": s, "target": t, "seed": 0, "genotype": skip, "entropy": [2.0, 1.0],
                 "max_entropy": 2.0, "search_s": 10.0} for s in ("bench", "cpu") for t in ("a", "b")]
    searches.append({"setting": "bench", "target": "c", "seed": 0, "error": "SearchDiverged: loss is nan"})

    def row(group, target, kind, acc, **key):
        return {"group": group, "target": target, "kind": kind, "test_acc": acc, **key}

    retrains = [row("bench", "a", "searched", 0.90, search_seed=0), row("bench", "a", "searched", 0.92, search_seed=0),
                row("bench", "b", "searched", 0.60, search_seed=0), row("bench", "b", "searched", 0.60, search_seed=0),
                row("tiny", "a", "random", 0.88, sample=0), row("tiny", "a", "random", 0.88, sample=0),
                row("tiny", "b", "random", 0.70, sample=0), row("tiny", "b", "random", 0.80, sample=1),
                row("cpu", "a", "searched", 0.95, search_seed=0), row("cpu", "a", "random", 0.90, sample=0),
                {"group": "cpu", "target": "b", "kind": "random", "sample": 0, "error": "RuntimeError: out of memory"}]
    out = svr.summarise(searches, retrains, ["bench", "cpu"], ["a", "b"])
    bench, cpu = out["settings"]["bench"], out["settings"]["cpu"]
    assert bench["targets"]["a"]["diff"] == pytest.approx(3.0) and bench["targets"]["b"]["diff"] == pytest.approx(-15)
    assert bench["median_diff"] == pytest.approx(-6.0) and (bench["higher"], bench["of"]) == (1, 2)
    assert cpu["median_diff"] == pytest.approx(5.0) and (cpu["higher"], cpu["of"]) == (1, 1)  # b: no cpu retrains
    assert bench["parameter_free"] == pytest.approx(0.75) and bench["entropy_last_over_max"] == pytest.approx(0.5)
    # one genotype's sd over its retrain seeds: 0.0141 (bench/a), 0 (bench/b), 0 (tiny/a sample 0); tiny/b's two
    # samples are one retrain each, not one genotype twice (merged, their sd 0.07 would be the median)
    assert out["retrain_sd_median"] == pytest.approx(0.0)


@pytest.mark.parametrize("argv, message", [
    (["--settings", "bench,fast"], "unknown setting"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--targets", ","], "--targets is empty"),
    (["--out", "no-such-folder/result.json"], "its folder does not exist"),
])
def test_bad_options_exit_2_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        svr.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_an_unknown_target_is_refused_before_any_search(suite_home, capsys):
    assert svr.main(["--targets", "no-such-set", "--home", str(suite_home)]) == 2
    assert "no-such-set" in capsys.readouterr().err


def test_a_failed_job_is_recorded_not_fatal(suite_home):
    out = svr.run_search_job({"home": str(suite_home), "setting": "bench", "target": "no-such-set", "seed": 0})
    assert "no-such-set" in out["error"] and "home" not in out and out["setting"] == "bench"


def test_reuse_takes_an_earlier_runs_jobs_instead_of_running_them_again(suite_home, tmp_path, capsys):
    import json

    store = DatasetStore(suite_home)
    rand, searched = svr.random_genotypes("bench", "glyph-digits", 2, store)  # any genotype of the space will do
    earlier = {"searches": [{"setting": "bench", "target": "glyph-digits", "seed": 0, "genotype": searched,
                             "val_acc": 0.5, "entropy": [2.0, 1.5], "max_entropy": 2.0, "search_s": 1.0}],
               "retrains": [{"group": g, "setting": "bench", "target": "glyph-digits", "kind": kind, "genotype": geno,
                             "seed": 100, "min_steps": 5, "test_acc": acc, **key}
                            for g, kind, geno, acc, key in [("bench", "searched", searched, 0.9, {"search_seed": 0}),
                                                            ("tiny", "random", rand, 0.8, {"sample": 0})]]}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    # every job is in the earlier run: nothing is searched or retrained (a job run here would take a minute
    # and give other numbers)
    assert svr.main(["--targets", "glyph-digits", "--settings", "bench", "--samples", "1", "--retrain-seeds", "1",
                     "--min-steps", "5", "--home", str(suite_home), "--reuse", str(tmp_path / "earlier.json"),
                     "--out", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["summary"]["settings"]["bench"]["median_diff"] == pytest.approx(10.0)
    assert all(r["reused"] for r in again["retrains"]) and "(3 reused)" in capsys.readouterr().out
