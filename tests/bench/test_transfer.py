"""The transfer benchmark end to end at tiny size: every arm, the files, a continued run, bad options."""

import json
import logging

import pytest

from raynas.bench.config import ALL_ARMS, QUICK, TransferBenchConfig
from raynas.bench.transfer import run_transfer_bench
from raynas.cli import main
from raynas.errors import RaynasError

# `--quick` cut down to tiny size by flags, which override it
TINY_FLAGS = {"sources": "digits,glyph-digits,glyph-upper", "targets": "glyph-digits", "arms": ",".join(ALL_ARMS),
              "epochs": 2, "warm-epochs": 1,
              "max-steps": 2,
              "source-epochs": 1, "source-steps": 2, "multi-folds": 1, "race": 2, "retrain-epochs": 1,
              "retrain-steps": 2, "retrain-cells": 3, "retrain-channels": 4, "head": "probe", "random-genotypes": 2}
TINY = TransferBenchConfig(**{
    **QUICK, "sources": ("digits", "glyph-digits", "glyph-upper"), "targets": ("glyph-digits",), "arms": ALL_ARMS,
    "epochs": 2,
    "warm_epochs": 1, "steps": 2, "source_epochs": 1, "source_steps": 2, "multi_folds": 1, "race": 2,
    "retrain_epochs": 1, "retrain_steps": 2, "retrain_cells": 3, "retrain_channels": 4, "head": "probe",
    "random_genotypes": 2})


@pytest.fixture(scope="module")
def bench(suite_home, tmp_path_factory):
    """`raynas bench transfer --quick` at tiny size, through the command line."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, namespace="raynas-test",
                 object_store_memory=256 << 20, log_to_driver=False)
    out = tmp_path_factory.mktemp("bench") / "out"
    flags = [a for k, v in TINY_FLAGS.items() for a in (f"--{k}", str(v))]
    tune_logs = _Records()
    logging.getLogger("ray.tune.logger").addHandler(tune_logs)
    try:
        assert main(["bench", "transfer", "--quick", *flags, "--home", str(suite_home), "--out", str(out),
                     "--json"]) == 0
    finally:
        logging.getLogger("ray.tune.logger").removeHandler(tune_logs)
    notices = [m for m in tune_logs.messages if "hyperparameter" in m]
    assert not notices, f"Tune's per-trial hparams notice reached the log: {notices[:1]}"
    return out, json.loads((out / "results.json").read_text())


class _Records(logging.Handler):
    """Every message logged through the handler's logger, whatever the root logger's level."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_every_arm_runs_and_the_answers_are_consistent(bench):
    out, a = bench
    assert {r["arm"] for r in a["runs"]} == set(TINY.arms)
    runs = {p: [r for r in a["runs"] if not r["protocols"] or p in r["protocols"]] for p in TINY.protocols}
    # each arm's trial folder (its TensorBoard run) is named after its target, arm, protocols and seed
    folders = {d.name.rsplit("_", 2)[0] for d in (out / "store" / "tune" / "bench-arms").iterdir() if d.is_dir()}
    assert {"glyph-digits-scratch-seed0", "glyph-digits-random-genotype-seed1",
            "glyph-digits-ot-domain-seed0"} <= folders
    by_arm = {r["arm"]: r for r in runs["dataset"]}
    for arm, run in by_arm.items():
        assert 0.0 <= run["retrain_test_acc"] <= 1.0
        assert "glyph-digits" not in run["source_datasets"].split(",")  # leave-one-out held
        warm = run["source"] not in ("scratch", "uniform")  # the probe arm may search from scratch, with its budget
        assert len(run["history"]) == (0 if arm in ("zero-shot", "random-genotype") else 1 if warm else 2)
    zoo = a["zoos"]["dataset"]["glyph-digits"]
    assert by_arm["ot"]["source"] == zoo["ranking"][0]["source"]
    assert by_arm["farthest"]["source"] == zoo["ranking"][-1]["source"]
    assert by_arm["multi"]["source"] == "bench-multi-1"
    assert by_arm["probe"]["source"] == zoo["probe_pick"]
    # the multi supernet is probed too, and random supernets (the scratch baseline)
    assert sorted(p["source"] for p in zoo["probe"]) == ["bench-multi-1", "digits", "glyph-upper", "scratch"]
    # charged to the arm: probing the sources, and (--head probe) fitting the head of a warm start
    assert by_arm["probe"]["selection_s"] >= zoo["probe_s"] > 0
    assert by_arm["ot"]["selection_s"] > 0 and by_arm["scratch"]["selection_s"] == 0
    assert len(by_arm["race"]["trials"]) == 2  # the race of the two nearest sources
    assert by_arm["race"]["source"] in {t["source"] for t in by_arm["race"]["trials"]}
    # leave-one-domain-out: glyph-upper (a printed-glyph sibling) left the zoo; no multi supernet is left
    # that never saw a printed glyph, so that arm is reported as skipped, not run
    domain = a["zoos"]["domain"]["glyph-digits"]
    assert domain["excluded"] == ["glyph-upper"] and [r["source"] for r in domain["ranking"]] == ["digits"]
    assert "multi" in domain["skipped"] and domain["multi"] == []
    by_arm_domain = {r["arm"]: r for r in runs["domain"]}
    assert "multi" not in by_arm_domain and by_arm_domain["ot"]["source"] == "digits"
    assert [t["source"] for t in by_arm_domain["race"]["trials"]] == ["digits"]
    for run in runs["domain"]:
        assert not {"glyph-digits", "glyph-upper"} & set(run["source_datasets"].split(",")), run["arm"]
    # random genotypes: two samples, retrained with no search; scratch and they serve both protocols
    sampled = [r for r in a["runs"] if r["arm"] == "random-genotype"]
    assert len(sampled) == 2 and all(r["protocols"] == [] or r["protocols"] == () for r in sampled)
    assert sampled[0]["genotype"] != sampled[1]["genotype"] and all(r["history"] == [] for r in sampled)
    for protocol in TINY.protocols:
        result = a["protocols"][protocol]
        rows = {r["arm"]: r for r in result["per_target"]}
        assert rows["scratch"]["speedup_epochs"] == 1.0 and rows["scratch"]["gain"] == 0.0
        assert not rows["zero-shot"]["searched"] and rows["random-genotype"]["transfer"] is None
        assert set(result["learnt_targets"]) <= {"glyph-digits"} and "per_arm_learnt" in result
        svr = result["search_vs_random"]
        assert svr["targets"] == 1 and svr["random_test_acc"] == pytest.approx(
            sum(r["retrain_test_acc"] for r in sampled) / 2)
    rows = {r["arm"]: r for r in a["per_target"]}  # the first protocol's, at the top level too
    assert rows["ot"]["gain"] == pytest.approx(by_arm["ot"]["history"][-1]["val_acc"]
                                               - by_arm["scratch"]["history"][-1]["val_acc"])
    assert a["pool"]["multi"] == {"bench-multi-1": ["digits", "glyph-upper"]}
    assert a["timings"]["zoo_build_s"] > 0
    for name in ("results.json", "results.md", "curves.png", "curves_time.png", "speedup.png", "distance_gain.png",
                 "bench.json", "plan.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["config"] == TINY.to_json()
    md = (out / "results.md").read_text()
    assert "| ot |" in md and "### glyph-digits" in md and "Spearman" in md
    assert "| leave-one-dataset-out | ot |" in md and "| leave-one-domain-out | ot |" in md
    assert "Does the search beat random genotypes?" in md
    # split by the target's domain; one domain: no table of them
    assert [g["domain"] for g in a["protocols"]["dataset"]["per_domain"]] == ["printed glyphs"]
    assert "## By domain" not in md
    assert "| random-genotype | no search | - | - | - |" in md  # no transfer to count: no positive column
    # the sources the arms started from, scored by the probe and LogME against random supernets
    scored = a["scores"]["glyph-digits"]
    assert {"scratch", by_arm["ot"]["source"], by_arm["farthest"]["source"]} <= set(scored)
    assert all(0 <= s["accuracy"] <= 1 and s["logme"] is not None for s in scored.values())
    assert set(a["transferability"]["choice"]) == set(TINY.protocols)
    assert "Deciding to transfer: OT distance, the linear probe and LogME" in md
    # how much of its source's genotype each warm-started search kept, against scratch's share
    kin = a["kinship"]
    assert {r["arm"] for r in kin["runs"]} >= {"ot", "farthest", "multi"}
    assert not {r["arm"] for r in kin["runs"]} & {"scratch", "zero-shot", "random-genotype"}
    assert all(0 <= r["kept"] <= 1 and 0 <= r["scratch_kept"] <= 1 for r in kin["runs"])
    assert "Do warm starts keep their source's architecture?" in md


def test_running_it_again_continues_without_training(bench, suite_home):
    out, first = bench
    again = run_transfer_bench(TINY, suite_home, out, verbose=False)  # the config --quick and the flags made
    assert again.answer["pool"]["built_now"] == []
    assert [r["history"] for r in again.answer["runs"]] == [r["history"] for r in first["runs"]]
    assert again.answer["timings"]["arms_s"] < first["timings"]["arms_s"]
    # the folder keeps every run's wall time: the report counts both, not only the last
    runs = again.answer["timings"]["invocations"]
    assert runs == json.loads((out / "invocations.json").read_text())
    assert len(runs) == 2 and all(r["finished"] and r["wall_s"] > 0 for r in runs)  # each run recorded once
    assert runs[0]["wall_s"] == pytest.approx(first["timings"]["total_s"], abs=1.0)
    assert "over the folder's 2 runs" in (out / "results.md").read_text()


def test_a_stopped_run_still_counts_its_time(suite_home, tmp_path, monkeypatch):
    import raynas.bench.transfer as transfer

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer, "_run", stop)
    with pytest.raises(KeyboardInterrupt):
        run_transfer_bench(TINY, suite_home, tmp_path / "b", verbose=False)
    runs = json.loads((tmp_path / "b" / "invocations.json").read_text())
    assert len(runs) == 1 and runs[0]["finished"] is False and runs[0]["wall_s"] >= 0
    (tmp_path / "b" / "invocations.json").write_text(json.dumps(runs + ["damaged"]))
    with pytest.raises(KeyboardInterrupt):  # a damaged ledger starts again instead of failing the benchmark
        run_transfer_bench(TINY, suite_home, tmp_path / "b", verbose=False)
    runs = json.loads((tmp_path / "b" / "invocations.json").read_text())
    assert len(runs) == 1 and runs[0]["finished"] is False and runs[0]["wall_s"] >= 0


def test_other_settings_in_the_same_folder_are_refused(bench, suite_home):
    out, _ = bench
    with pytest.raises(RaynasError, match="holds a benchmark with other settings.*epochs"):
        run_transfer_bench(TINY.replace(epochs=3), suite_home, out, verbose=False)


def test_a_folder_started_before_a_setting_existed_continues(bench, suite_home):
    out, first = bench
    saved = json.loads((out / "bench.json").read_text())
    del saved["retrain_min_steps"]  # as written before the setting existed: it ran at its default
    (out / "bench.json").write_text(json.dumps(saved))
    again = run_transfer_bench(TINY, suite_home, out, verbose=False)
    assert [r["history"] for r in again.answer["runs"]] == [r["history"] for r in first["runs"]]
    with pytest.raises(RaynasError, match="other settings.*retrain_min_steps"):
        run_transfer_bench(TINY.replace(retrain_min_steps=50), suite_home, out, verbose=False)


@pytest.mark.parametrize("argv, message", [
    (["--arms", "ot,bogus"], "unknown arm(s) bogus"),
    (["--seeds", "0"], "seeds (--seeds) must be >= 1"),
    (["--arch-lr", "nan"], "must be a finite number"),
    (["--targets", "nope"], "nope"),
    (["--sources", "digits"], "needs at least two sources"),
    (["--transfer-mode", "weight"], "unknown transfer mode 'weight'"),
    (["--alpha-temperature", "0"], "alpha_temperature (--alpha-temperature) must be > 0"),
    (["--head", "linear"], "unknown head initialisation 'linear'"),
    (["--retrain-min-steps", "0"], "retrain_min_steps (--retrain-min-steps) must be >= 1"),
    (["--protocols", "dataset,fold"], "give each of dataset, domain at most once"),
    (["--domains", "handwriting,cats"], "unknown domain(s) 'cats'"),
    (["--domains", "handwriting", "--sources", "digits,mnist5k"], "--domains and --sources both choose"),
    (["--random-genotypes", "0"], "random_genotypes (--random-genotypes) must be >= 1"),
])
def test_bad_options_are_clear_errors(suite_home, tmp_path, capsys, argv, message):
    assert main(["bench", "transfer", "--home", str(suite_home), "--out", str(tmp_path / "o"), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_the_benchmark_never_writes_into_the_users_zoo(tmp_path):
    from raynas.bench.transfer import pool_storage

    out = tmp_path / "bench-out"
    assert pool_storage(out, None) == str((out / "store").resolve())
    assert pool_storage(out, str(tmp_path / "shared")) == f"{tmp_path / 'shared'}/bench/bench-out"
    assert pool_storage(out, "s3://bucket/raynas?region=x").startswith("s3://bucket/raynas/bench/bench-out?")
