"""The benchmark's arithmetic: speed-ups over scratch, never reached, medians and correlations."""

import math

import pytest

from raynas.bench.analysis import analyse, compare, late_gain, race_cost, selection_cost
from raynas.bench.speedup import first_reach, format_speedup, median_or_never, spearman, speed_up, spread


@pytest.mark.parametrize("values, goal, tolerance, expected", [
    ([0.1, 0.5, 0.9], 0.5, 0.0, 2),
    ([0.1, 0.5, 0.9], 0.9, 0.0, 3),
    ([0.1, 0.5, 0.9], 0.95, 0.0, None),
    ([0.1, 0.48, 0.9], 0.5, 0.02, 2),
    ([float("nan"), 0.6], 0.5, 0.0, 2),
    ([], 0.5, 0.0, None),
])
def test_first_reach(values, goal, tolerance, expected):
    assert first_reach(values, goal, tolerance) == expected


def test_speed_up_counts_epochs_and_seconds_to_scratchs_final_accuracy():
    # scratch first reaches its final 0.8 at epoch 3 (it then plateaus), in 3 + 3 + 3 = 9 s
    su = speed_up([0.3, 0.6, 0.8, 0.8], [3, 3, 3, 3], [0.7, 0.85, 0.9, 0.9], [2, 2, 2, 2])
    assert (su.goal, su.scratch_epochs, su.arm_epochs) == (0.8, 3, 2)
    assert su.epochs == pytest.approx(1.5)
    assert su.seconds == pytest.approx(9 / 4)
    assert su.reached and su.to_json()["speedup_epochs"] == pytest.approx(1.5)


def test_an_arm_that_never_reaches_has_no_speed_up():
    su = speed_up([0.3, 0.6, 0.8], [1, 1, 1], [0.5, 0.6, 0.7], [1, 1, 1])
    assert not su.reached and su.epochs is None and su.seconds is None
    assert format_speedup(su.epochs) == "never reached"
    assert su.to_json()["speedup_epochs"] is None


def test_scratch_against_itself_is_one():
    su = speed_up([0.2, 0.5, 0.4], [1, 1, 1], [0.2, 0.5, 0.4], [1, 1, 1])
    assert su.scratch_epochs == 2 and su.epochs == 1.0  # its final 0.4 was first reached at epoch 2


@pytest.mark.parametrize("values, expected", [
    ([1.0, 2.0, 3.0], 2.0),
    ([1.0, 2.0, 3.0, 4.0], 2.5),
    ([None, 2.0, 3.0], 2.0),  # never reached ranks lowest
    ([None, None, 3.0], None),  # the median is never reached: no number
    ([None, 4.0], None),  # between never and a number: no number either
    ([], None),
])
def test_median_or_never(values, expected):
    assert median_or_never(values) == expected


def test_spread_keeps_never_reached_apart():
    s = spread([None, 1.0, 2.0, 3.0, 5.0])
    assert s["n"] == 5 and s["never"] == 1 and s["median"] == 2.0
    assert (s["min"], s["max"]) == (1.0, 5.0) and (s["q1"], s["q3"]) == (1.0, 3.0)
    s = spread([5.0, None, 4.0, None, 1.0])  # quartiles rank never reached as the median does
    assert (s["q1"], s["median"], s["q3"]) == (None, 1.0, 4.0)
    assert spread([1.0, 2.0])["q1"] == pytest.approx(1.25)


def test_spearman():
    assert spearman([1, 2, 3, 4], [8, 6, 4, 2])["rho"] == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2])["rho"] is None  # too few pairs
    assert spearman([1, 1, 1], [1, 2, 3])["rho"] is None  # constant input


def test_race_cost_counts_every_trial_up_to_the_winners_epoch():
    run = {"trials": [{"epochs": 4, "time_s": 8.0}, {"epochs": 1, "time_s": 2.0}, {"epochs": 4, "time_s": 4.0}]}
    assert race_cost(run, 2) == (2 + 1 + 2, pytest.approx(4.0 + 2.0 + 2.0))
    assert race_cost(run, None) == (None, None)


def test_a_probe_is_charged_its_seconds_at_its_own_epoch_time():
    scratch = _run("a", "scratch", 0, [0.2, 0.4, 0.6, 0.6])  # reaches 0.6 at epoch 3, 1 s per epoch
    probe = _run("a", "probe", 0, [0.5, 0.6, 0.6, 0.6], "s1", 1.0, selection_s=2.0)
    for h in probe["history"]:
        h["epoch_s"] = 4.0  # the probe's epochs take 4 s, so its 2 s of probing are half an epoch
    assert selection_cost(probe, 2, 8.0) == (pytest.approx(2.5), pytest.approx(10.0))
    assert selection_cost(probe, None, None) == (None, None)
    c = compare(probe, scratch, 0.0)
    assert c["speedup_epochs"] == pytest.approx(3 / 2.5) and c["speedup_s"] == pytest.approx(3.0 / 10.0)
    free = compare({**probe, "selection_s": 0.0}, scratch, 0.0)
    assert free["speedup_epochs"] == pytest.approx(3 / 2)


def _run(target, arm, seed, acc, source="scratch", distance=None, **extra):
    return {"target": target, "arm": arm, "seed": seed, "source": source, "distance": distance, "status": "finished",
            "history": [{"val_acc": a, "epoch_s": 1.0, "alpha_entropy": 2.07 - 0.1 * i} for i, a in enumerate(acc)],
            "retrain_test_acc": extra.pop("test", 0.5), **extra}


def test_analysis_over_targets_arms_and_seeds():
    runs = [
        _run("a", "scratch", 0, [0.2, 0.4, 0.6, 0.6], test=0.5), _run("a", "scratch", 1, [0.2, 0.5, 0.6, 0.6]),
        _run("a", "ot", 0, [0.6, 0.7, 0.7, 0.7], "s1", 1.0, test=0.6),
        _run("a", "ot", 1, [0.5, 0.6, 0.7, 0.7], "s1", 1.0, test=0.6),
        _run("a", "farthest", 0, [0.1, 0.2, 0.3, 0.4], "s2", 5.0), _run("a", "farthest", 1, [0.1, 0.2, 0.3, 0.4],
                                                                         "s2", 5.0),
        _run("a", "zero-shot", 0, [], "s1", 1.0, test=0.55), _run("a", "zero-shot", 1, [], "s1", 1.0, test=0.45),
        _run("b", "scratch", 0, [0.5, 0.5], test=0.5), _run("b", "ot", 0, [0.4, 0.45], "s3", 2.0),
        _run("b", "farthest", 0, [0.6, 0.6], "s4", 3.0),
    ]
    out = analyse(runs)
    rows = {(r["target"], r["arm"]): r for r in out["per_target"]}
    # seed 0: scratch needs 3 epochs, ot 1 (3x); seed 1: 3 and 2 (1.5x); the median of the seeds
    assert rows[("a", "ot")]["speedup_epochs"] == pytest.approx(2.25)
    assert rows[("a", "ot")]["gain"] == pytest.approx(0.1) and rows[("a", "ot")]["transfer"] == "positive"
    assert rows[("a", "ot")]["retrain_gain"] == pytest.approx(0.6 - 0.5)
    assert rows[("a", "farthest")]["speedup_epochs"] is None and rows[("a", "farthest")]["reached"] == 0
    assert rows[("a", "farthest")]["transfer"] == "negative"
    assert not rows[("a", "zero-shot")]["searched"] and rows[("a", "zero-shot")]["speedup_epochs"] is None
    assert rows[("a", "zero-shot")]["retrain_test_acc"] == pytest.approx(0.5)
    assert rows[("a", "scratch")]["entropy_last"] == pytest.approx(2.07 - 0.3)
    arms = {a["arm"]: a for a in out["per_arm"]}
    assert arms["ot"]["positive"] == 1 and arms["ot"]["negative"] == 1 and arms["ot"]["tied"] == 0
    assert arms["ot"]["speedup_epochs"]["never"] == 1  # on b, ot never reaches scratch's 0.5
    # farthest: never on a; on b scratch's final 0.5 at epoch 1, farthest at 1: the median falls between
    assert arms["farthest"]["speedup_epochs"]["median"] is None and arms["farthest"]["speedup_epochs"]["never"] == 1
    pairs = out["distance_vs_gain"]["pairs"]
    assert {(p["target"], p["source"]) for p in pairs} == {("a", "s1"), ("a", "s2"), ("b", "s3"), ("b", "s4")}
    assert out["distance_vs_gain"]["n"] == 4 and math.isfinite(out["distance_vs_gain"]["rho"])
    assert out["scratch"]["a"]["reaches_final_at"] == [3, 3]
    assert out["scratch"]["a"]["late_gain"] == pytest.approx(0.0)  # its last quarter (1 epoch of 4) added nothing


@pytest.mark.parametrize("acc, expected", [
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.68], 0.08),  # a dip in the last epoch hides a climbing curve
    ([0.1, 0.8, 0.81, 0.8], -0.01),
    ([0.5, 0.6], 0.1),
    ([0.5], None),
])
def test_late_gain_looks_at_the_last_quarter_of_the_epochs(acc, expected):
    got = late_gain(acc)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_settled_targets_and_the_goals():
    runs = [
        _run("flat", "scratch", 0, [0.5, 0.8, 0.8, 0.8], test=0.5), _run("flat", "ot", 0, [0.8, 0.8, 0.8, 0.8],
                                                                          "s1", 1.0, test=0.7),
        _run("climbing", "scratch", 0, [0.2, 0.3, 0.4, 0.6], test=0.5),
        _run("climbing", "ot", 0, [0.6, 0.6, 0.6, 0.7], "s1", 1.0, test=0.4),
    ]
    out = analyse(runs)
    assert out["settled_targets"] == ["flat"]  # scratch's last quarter still added 20 points on "climbing"
    assert [a["targets"] for a in out["per_arm_settled"]] == [1, 1]
    [ot] = out["goals"]
    # speed-ups: 2/1 on flat, 4/1 on climbing: median 3x; positive on climbing only (flat: equal)
    assert ot["median_speedup"] == pytest.approx(3.0) and ot["speedup_met"] and not ot["stretch_met"]
    assert ot["positive_share"] == 0.5 and not ot["positive_met"]
    assert ot["median_retrain_gain"] == pytest.approx(0.05) and ot["retrain_met"]  # +20 and -10 points
    assert not ot["lower_bound_met"]


def test_ties_are_counted_apart_and_shown():
    """Equal to scratch is neither a positive nor a negative transfer; the report names the ties."""
    from raynas.bench.report import _arm_table

    runs = [_run("a", "scratch", 0, [0.5, 0.8]), _run("a", "ot", 0, [0.7, 0.8], "s1", 1.0),
            _run("b", "scratch", 0, [0.5, 0.6]), _run("b", "ot", 0, [0.6, 0.7], "s1", 1.0)]
    ot = {a["arm"]: a for a in analyse(runs)["per_arm"]}["ot"]
    assert (ot["positive"], ot["negative"], ot["tied"]) == (1, 0, 1)
    row = next(line for line in _arm_table([ot]) if line.startswith("| ot |"))
    assert "| 1/2 (1 tied) |" in row
    assert "tied" not in "".join(_arm_table([{**ot, "tied": 0}]))


def test_random_genotypes_are_the_control_of_the_search():
    """Three random samples on one target against two scratch seeds: each sample pairs with a
    scratch seed (sample k with seed k mod 2), none counts as a transfer, and the searched arms'
    retrained accuracy is compared with the samples' mean."""
    runs = [_run("a", "scratch", 0, [0.5, 0.6], test=0.80), _run("a", "scratch", 1, [0.5, 0.6], test=0.70),
            _run("a", "ot", 0, [0.6, 0.7], "s1", 1.0, test=0.72), _run("a", "ot", 1, [0.6, 0.7], "s1", 1.0, test=0.72),
            *[_run("a", "random-genotype", k, [], "uniform", test=t) for k, t in enumerate((0.60, 0.70, 0.65))]]
    out = analyse(runs)
    rows = {r["arm"]: r for r in out["per_target"]}
    sampled = rows["random-genotype"]
    assert sampled["seeds"] == 3 and sampled["retrain_test_acc"] == pytest.approx(0.65)
    assert sampled["retrain_test_acc_sd"] == pytest.approx(0.05)
    # against scratch seeds 0, 1, 0: 0.6 - 0.8, 0.7 - 0.7, 0.65 - 0.8
    assert sampled["retrain_gain"] == pytest.approx((-0.2 + 0.0 - 0.15) / 3)
    assert sampled["transfer"] is None and not sampled["searched"]
    arms = {a["arm"]: a for a in out["per_arm"]}
    assert arms["random-genotype"]["positive"] == arms["random-genotype"]["negative"] == 0
    assert "random-genotype" not in {g["arm"] for g in out["goals"]}
    svr = out["search_vs_random"]
    assert svr["targets"] == 1 and svr["random_test_acc"] == pytest.approx(0.65)
    assert svr["random_sd"] == pytest.approx(0.05)
    by_arm = {a["arm"]: a for a in svr["arms"]}
    assert by_arm["scratch"]["median_diff"] == pytest.approx(0.75 - 0.65) and by_arm["scratch"]["higher"] == 1
    assert by_arm["ot"]["median_diff"] == pytest.approx(0.72 - 0.65) and by_arm["ot"]["lower"] == 0


def test_spread_gives_the_mean_and_geometric_mean_of_the_targets_reached():
    s = spread([1.0, 4.0, None])
    assert s["mean"] == pytest.approx(2.5) and s["geomean"] == pytest.approx(2.0) and s["never"] == 1
    assert "mean" not in spread([None, None])


def test_targets_scratch_learnt_nothing_on_are_set_apart():
    # 'a': 60% of 100 val images, 4 classes (chance 25%): learnt; 'b': 28% of 100, 4 classes: not above
    # chance at p < 0.01; 'c': 12% of 300, 10 classes: chance; 'd' has no class count: kept
    runs = [_run("a", "scratch", 0, [0.4, 0.6]), _run("a", "ot", 0, [0.6, 0.6], "s1", 1.0),
            _run("b", "scratch", 0, [0.3, 0.28]), _run("b", "ot", 0, [0.3, 0.3], "s1", 1.0),
            _run("c", "scratch", 0, [0.10, 0.12]), _run("c", "ot", 0, [0.12, 0.12], "s1", 1.0),
            _run("d", "scratch", 0, [0.1, 0.2]), _run("d", "ot", 0, [0.2, 0.2], "s1", 1.0)]
    chance = {"a": {"classes": 4, "val": 100}, "b": {"classes": 4, "val": 100}, "c": {"classes": 10, "val": 300}}
    out = analyse(runs, chance=chance)
    assert out["learnt_targets"] == ["a", "d"]
    learnt = {a["arm"]: a for a in out["per_arm_learnt"]}
    assert learnt["ot"]["targets"] == 2 and {a["arm"]: a for a in out["per_arm"]}["ot"]["targets"] == 4
    # a bigger val split makes the same accuracy significant: 28% of 2,000 against 25%
    assert "b" in analyse(runs, chance={**chance, "b": {"classes": 4, "val": 2000}})["learnt_targets"]
    assert analyse(runs)["learnt_targets"] == ["a", "b", "c", "d"]  # no chance given: every target kept


def test_the_answer_is_split_by_domain():
    """Each domain gets its own arm summary, and the report a table of them; one domain: no table."""
    from raynas.bench.report import _by_domain

    runs = [_run("a", "scratch", 0, [0.5, 0.6]), _run("a", "ot", 0, [0.6, 0.7], "s1", 1.0),
            _run("b", "scratch", 0, [0.5, 0.6]), _run("b", "ot", 0, [0.5, 0.5], "s1", 1.0),
            _run("c", "scratch", 0, [0.2, 0.4, 0.6]), _run("c", "ot", 0, [0.6, 0.6, 0.6], "s2", 2.0)]
    out = analyse(runs, domains={"a": "marks", "b": "shapes", "c": "marks"})
    groups = {g["domain"]: g for g in out["per_domain"]}
    assert list(groups) == ["marks", "shapes"] and groups["marks"]["targets"] == ["a", "c"]
    ot = {a["arm"]: a for a in groups["marks"]["per_arm"]}["ot"]
    assert ot["targets"] == 2 and ot["positive"] == 1 and ot["tied"] == 1
    assert ot["speedup_epochs"]["median"] == pytest.approx((2 + 3) / 2)  # 2/1 on a, 3/1 on c
    shapes = {a["arm"]: a for a in groups["shapes"]["per_arm"]}["ot"]
    assert shapes["negative"] == 1 and shapes["speedup_epochs"]["never"] == 1
    table = _by_domain({"dataset": out})
    assert any(line.startswith("| leave-one-dataset-out | marks (2) | ot | 2.50x | 2.50x | 1 / 1 / 0 |")
               for line in table), table
    assert not any("| scratch |" in line for line in table)
    assert _by_domain({"dataset": analyse(runs, domains={"a": "m", "b": "m", "c": "m"})}) == []
    assert analyse(runs)["per_domain"] == []
