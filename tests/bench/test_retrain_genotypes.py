"""benchmarks/retrain_genotypes.py: which runs it retrains, and searched minus random with the noise."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "retrain_genotypes.py"
spec = importlib.util.spec_from_file_location("retrain_genotypes", SCRIPT)
rg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rg)


def test_plan_takes_the_protocols_runs_and_the_shared_ones_once_per_seed():
    g = {"nodes": 1, "normal": [["skip_connect", 0], ["skip_connect", 1]],
         "reduce": [["skip_connect", 0], ["skip_connect", 1]]}
    runs = [{"target": "a", "arm": "scratch", "seed": 0, "protocols": [], "genotype": g},
            {"target": "a", "arm": "ot", "seed": 0, "protocols": ["dataset"], "genotype": g},
            {"target": "a", "arm": "ot", "seed": 0, "protocols": ["domain"], "genotype": g},
            {"target": "a", "arm": "random-genotype", "seed": 2, "protocols": [], "genotype": g},
            {"target": "a", "arm": "multi", "seed": 0, "protocols": ["dataset"], "genotype": g},
            {"target": "b", "arm": "scratch", "seed": 0, "protocols": [], "genotype": g}]
    jobs = rg.plan({"config": {}, "runs": runs}, ["a"], ["scratch", "ot", "random-genotype"], "dataset", 2, 500, "h")
    assert [(j["arm"], j["run_seed"], j["seed"]) for j in jobs] == [
        ("scratch", 0, 100), ("scratch", 0, 101), ("ot", 0, 100), ("ot", 0, 101),
        ("random-genotype", 2, 100), ("random-genotype", 2, 101)]
    assert all(j["min_steps"] == 500 and j["target"] == "a" for j in jobs)


def test_summary_compares_each_arm_with_random_beside_the_retrain_noise():
    results = [{"target": t, "arm": a, "test_acc": acc} for t, a, acc in [
        ("a", "scratch", 0.90), ("a", "scratch", 0.92), ("a", "random-genotype", 0.85), ("a", "random-genotype", 0.87),
        ("b", "scratch", 0.70), ("b", "scratch", 0.70), ("b", "random-genotype", 0.80), ("b", "random-genotype", 0.80),
        ("c", "scratch", 0.60), ("c", "scratch", 0.64), ("c", "random-genotype", 0.50), ("c", "random-genotype", 0.52)]]
    out = rg.summarise(results, ["scratch", "random-genotype"])
    assert out["per_target"]["a/scratch"]["mean"] == pytest.approx(0.91)
    s = out["arms"]["scratch"]
    assert (s["targets"], s["higher"], s["lower"]) == (3, 2, 1)
    assert s["median_diff"] == pytest.approx(0.05) and s["mean_diff"] == pytest.approx((0.05 - 0.10 + 0.11) / 3)
    # pooled sd per target: a 0.0141, b 0.0, c sqrt((0.0283^2 + 0.0141^2) / 2) = 0.0224; the median is a's
    assert s["median_noise_sd"] == pytest.approx(0.02 ** 0.5 / 10)
    assert "random-genotype" not in out["arms"]


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/missing"], "not a finished transfer benchmark's results"),
    (["{tmp}", "--targets", "nope"], "not targets of that benchmark"),
    (["{tmp}", "--workers", "0"], "must be at least 1"),
])
def test_bad_input_is_a_clear_error(tmp_path, argv, message):
    import subprocess
    import sys

    (tmp_path / "results.json").write_text('{"targets": ["a"], "runs": [], "config": {}}')
    run = subprocess.run([sys.executable, str(SCRIPT), *[a.format(tmp=tmp_path) for a in argv]],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
