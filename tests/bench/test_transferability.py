"""Deciding to transfer on evidence: the scores' choice of source and the gate, on made-up runs."""

import pytest

from raynas.bench.transferability import (choice_quality, cross_validated_gate, fit_threshold, gate_cases,
                                          gate_study, kept_gain, transferability, _pairs)


def _run(target, arm, source, final, seed=0, distance=None):
    return {"target": target, "arm": arm, "seed": seed, "source": source, "distance": distance,
            "history": [{"val_acc": final - 0.1}, {"val_acc": final}]}


def _bench(n=8):
    """n targets; on each the OT source gains (i - 3) points and the farthest loses; the probe's cut
    and LogME follow the gain, OT distance does not."""
    runs, scores = [], {}
    for i in range(n):
        t = f"t{i}"
        gain = (i - 3) / 100
        runs += [_run(t, "scratch", "scratch", 0.5), _run(t, "ot", "near", 0.5 + gain, distance=1.0 + (i % 2)),
                 _run(t, "farthest", "far", 0.45, distance=5.0)]
        scores[t] = {"scratch": {"accuracy": 0.5, "logme": -1.0},
                     "near": {"accuracy": 0.5 + gain / 2 + 0.05, "logme": -1.0 + gain},
                     "far": {"accuracy": 0.45, "logme": -1.1}}
    return runs, scores


def test_pairs_carry_gain_distance_and_both_cuts():
    runs, scores = _bench()
    pairs = {(p["target"], p["source"]): p for p in _pairs(runs, scores)}
    near = pairs[("t5", "near")]
    assert near["gain"] == pytest.approx(0.02) and near["distance"] == 2.0
    assert near["probe"] == pytest.approx((0.56 - 0.5) / 0.5) and near["logme"] == pytest.approx(0.02)
    assert pairs[("t0", "far")]["gain"] == pytest.approx(-0.05) and len(pairs) == 16
    assert not any(p["source"] == "scratch" for p in pairs.values())


def test_choice_quality_ranks_the_scores():
    runs, scores = _bench()
    c = choice_quality(_pairs(runs, scores))
    assert c["pairs"] == 16 and c["probe"]["rho"] > 0.8 and c["logme"]["rho"] > 0.8
    # per target, the probe picks near over far; on t0-t1 (near loses more than far) that costs points
    assert c["probe"]["targets"] == 8 and c["probe"]["median_regret"] == pytest.approx(0.0)
    assert c["distance"]["targets"] == 8  # near is always nearer: distance picks near too


def test_each_score_reports_its_own_pairs():
    """A multi-dataset supernet has scores but no OT distance: the distance's rho leaves it out, and the
    report says over how many pairs each rho is."""
    from raynas.bench.report import _transferability

    runs, scores = _bench()
    for i in range(8):
        runs.append(_run(f"t{i}", "multi", "multi-1", 0.5 + i / 100))
        scores[f"t{i}"]["multi-1"] = {"accuracy": 0.5 + i / 200, "logme": -1.0 + i / 100}
    c = choice_quality(_pairs(runs, scores))
    assert c["pairs"] == 24 and c["distance"]["n"] == 16 and c["probe"]["n"] == 24 and c["logme"]["n"] == 24
    lines = _transferability(transferability({"dataset": runs}, scores))
    row = next(line for line in lines if line.startswith("| leave-one-dataset-out | 24 |"))
    assert ", n 16)" in row and row.count(", n 24)") == 2
    same = c["with_distance"]  # the scores on the pairs OT distance has: a like-for-like comparison
    without_multi = choice_quality(_pairs(*_bench()))
    assert same["pairs"] == 16 and same["probe"]["n"] == 16 and "with_distance" not in without_multi
    assert same["probe"]["rho"] == pytest.approx(without_multi["probe"]["rho"])
    assert abs(same["probe"]["rho"] - c["probe"]["rho"]) > 0.01  # the multi pairs moved the all-pairs rho
    assert any(line.startswith("| leave-one-dataset-out, the pairs with an OT distance | 16 |") for line in lines)


def test_the_gate_threshold_keeps_the_gain_and_is_judged_on_held_out_targets():
    runs, scores = _bench()
    cases = gate_cases(runs, scores)
    assert [c["source"] for c in cases] == ["near"] * 8
    t = fit_threshold(cases, "logme")
    assert -0.01 < t < 0.0  # between the target that loses 1 point (t2) and the one that ties (t3)
    assert kept_gain(cases, "logme", t) == pytest.approx(sum(range(1, 5)) / 100 / 8)
    cv = cross_validated_gate(cases, "logme", folds=4)
    assert cv["targets"] == 8 and len(cv["thresholds"]) == 4
    # held out, t2 (-1 point) falls on its fold's threshold and transfers; t3 ties and transfers: 6 of 8 right
    assert cv["right"] == 6 and cv["transferred"] == 6 and cv["mean_gain"] == pytest.approx((-1 + 0 + 10) / 100 / 8)
    study = gate_study({"dataset": cases, "domain": cases})
    assert study["dataset"]["always"]["mean_gain"] == pytest.approx(sum(i - 3 for i in range(8)) / 100 / 8)
    assert study["dataset"]["never"]["mean_gain"] == 0.0
    assert study["domain"]["logme_from_dataset"]["threshold"] == pytest.approx(t)
    assert study["domain"]["logme_from_dataset"]["mean_gain"] == pytest.approx(kept_gain(cases, "logme", t))
    assert "logme_from_dataset" not in study["dataset"]


def test_transferability_per_protocol():
    runs, scores = _bench(4)
    out = transferability({"dataset": runs}, scores)
    assert set(out["choice"]) == {"dataset"} and out["gate"]["dataset"]["targets"] == 4
    assert gate_study({"dataset": gate_cases(runs[:3], scores)})["dataset"] == {"targets": 1}  # too few to judge


def test_kept_scores_that_are_malformed_are_scored_again(tmp_path):
    from raynas.bench.transferability import _read_scores

    path = tmp_path / "scores.json"
    path.write_text('{"t0": {"near": {"accuracy": 0.5, "logme": -1.0}, "far": {"accuracy": "x"}}, "t1": [1]}')
    assert _read_scores(path) == {"t0": {"near": {"accuracy": 0.5, "logme": -1.0}}}
    path.write_text("[1, 2]")
    assert _read_scores(path) == {}
    path.write_text("{not json")
    assert _read_scores(path) == {}
