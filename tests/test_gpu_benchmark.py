"""benchmarks/gpu.py, checked on CPU in its dry mode: every variant steps, ratios and JSON are written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def _dry(tmp_path, *flags):
    out = tmp_path / "dry.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry", "--out", str(out), *flags], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return run, json.loads(out.read_text())


def test_the_dry_run_steps_every_variant_and_writes_json(tmp_path):
    run, result = _dry(tmp_path, "--skip-race")
    assert result["dry"] and result["preset"] == "tiny" and result["race"] is None
    assert [r["batch_size"] for r in result["loader"]] == [32, 64]
    assert all(r["loader_img_s"] > 0 and r["step_img_s"] > 0 and r["loader_over_step"] > 0 for r in result["loader"])
    assert "loader / demand" in run.stdout
    rows = {r["variant"]: r for r in result["rows"]}
    cells_algos = {(r["cell"], r["algo"], r["precision"]) for r in rows.values() if not r["compile"]}
    assert cells_algos == {(c, a, p) for c in ("fused", "reference") for a in ("darts", "darts2", "pcdarts")
                           for p in ("fp32", "bf16")}
    assert rows["fused darts fp32"]["ratio"] == 1.0
    for r in rows.values():
        if r["compile"]:
            assert "skipped" in r  # compiling on a small CPU takes minutes
        else:
            assert r["median_s"] > 0 and r["ratio"] > 0 and r["peak_mib"] is None
    assert "x fused darts fp32" in run.stdout


@pytest.mark.slow
def test_the_dry_race_of_two_trials_finishes(tmp_path):
    run, result = _dry(tmp_path, "--skip-steps", "--skip-loader")  # the first test covers those
    assert result["rows"] == [] and result["loader"] is None and "search step" not in run.stdout
    race = result["race"]
    assert [t["status"] for t in race["trials"]] == ["finished", "finished"]
    assert race["wall_s"] > 0 and race["wall_over_trials"] > 0 and "race of 2 trials" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_asks_for_one_or_the_dry_mode():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no GPU here" in run.stderr and "--dry" in run.stderr
