"""From the arms' runs to the benchmark's answers: speed-up and gain over scratch per target,
their spread across targets, and whether OT distance predicts the gain.

Each run is a dict: target, arm, seed, source, distance, status, ``history`` (the search's
epochs: val_acc, epoch_s, alpha_entropy...), ``retrain_test_acc``; a race run also has
``trials`` (each trial's source, distance, val curve, epochs and time), since the race pays
for every trial it ran: its cost to reach a goal counts every trial's epochs up to then. A run
with ``selection_s`` (probing the sources, fitting the head) is charged those seconds too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

from raynas.bench.speedup import first_reach, mean_std, median_or_never, speed_up, spearman, spread

LN8 = math.log(8)
SINGLE_SOURCE_ARMS = ("ot", "probe", "random", "farthest")  # one measured source/target pair per run
RANDOM_GENOTYPE = "random-genotype"  # no search, no source: the control of the search itself
NOT_TRANSFER = ("scratch", RANDOM_GENOTYPE)  # arms without a warm start: no transfer to count
CHANCE_P = 0.01  # scratch learnt a target when its final val accuracy beats chance at this p
SETTLED = 0.01  # scratch has settled when its last quarter of epochs added at most 1 point
GOAL_SPEEDUP, STRETCH_SPEEDUP, GOAL_POSITIVE = 3.0, 5.0, 0.9  # the paper's lower bound, and past it


def _curve(run: dict[str, Any], key: str = "val_acc") -> list[float]:
    return [float(h[key]) for h in run.get("history", []) if h.get(key) is not None]


def race_cost(run: dict[str, Any], reach_epoch: int | None) -> tuple[int | None, float | None]:
    """Trial-epochs and trial-seconds a race spent until its winner reached the goal at
    ``reach_epoch``: every trial counts its epochs up to then (a stopped one, those it ran)."""
    if reach_epoch is None:
        return None, None
    epochs = seconds = 0.0
    for t in run.get("trials", []):
        ran = max(int(t.get("epochs") or 0), 1)
        used = min(ran, reach_epoch)
        epochs += used
        seconds += float(t.get("time_s") or 0.0) * used / ran
    return int(epochs), seconds


def selection_cost(run: dict[str, Any], reach_epoch: int | None, reach_s: float | None
                   ) -> tuple[float | None, float | None]:
    """Epochs and seconds of an arm that spent ``selection_s`` before its search (choosing its
    source, fitting its head): the seconds are added, and converted to epochs at the arm's own
    mean epoch time."""
    if reach_epoch is None or reach_s is None:
        return None, None
    extra = float(run.get("selection_s") or 0.0)
    epoch_s = _curve(run, "epoch_s")
    per_epoch = sum(epoch_s) / len(epoch_s) if epoch_s and sum(epoch_s) > 0 else None
    return reach_epoch + (extra / per_epoch if per_epoch else 0.0), reach_s + extra


def compare(run: dict[str, Any], scratch: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """One run against scratch on the same target and seed."""
    s_acc, a_acc = _curve(scratch), _curve(run)
    out: dict[str, Any] = {"target": run["target"], "arm": run["arm"], "seed": run["seed"], "source": run["source"],
                           "distance": run.get("distance"), "status": run.get("status"),
                           "retrain_test_acc": run.get("retrain_test_acc"),
                           "retrain_gain": difference(run.get("retrain_test_acc"), scratch.get("retrain_test_acc"))}
    entropy = _curve(run, "alpha_entropy")
    out.update(final_val_acc=a_acc[-1] if a_acc else None, epochs=len(a_acc),
               entropy_first=entropy[0] if entropy else None, entropy_last=entropy[-1] if entropy else None)
    if not a_acc or not s_acc:  # zero-shot searches nothing: no curve, no speed-up
        out.update(gain=None, speedup_epochs=None, speedup_s=None, reached=None)
        return out
    su = speed_up(s_acc, _curve(scratch, "epoch_s"), a_acc, _curve(run, "epoch_s"), tolerance)
    if run["arm"] == "race":  # the race pays for all its trials
        epochs, seconds = race_cost(run, su.arm_epochs)
        speedup_epochs = None if epochs is None else su.scratch_epochs / epochs
        speedup_s = None if not seconds else su.scratch_s / seconds
    elif run.get("selection_s"):  # an arm pays for what it did before it searched
        epochs, seconds = selection_cost(run, su.arm_epochs, su.arm_s)
        speedup_epochs = None if epochs is None else su.scratch_epochs / epochs
        speedup_s = None if not seconds else su.scratch_s / seconds
    else:
        speedup_epochs, speedup_s = su.epochs, su.seconds
    out.update(gain=a_acc[-1] - s_acc[-1], goal=su.goal, scratch_epochs=su.scratch_epochs,
               arm_epochs=su.arm_epochs, reached=su.reached, speedup_epochs=speedup_epochs, speedup_s=speedup_s)
    return out


def difference(a: float | None, b: float | None) -> float | None:
    """a - b, or None when either is missing or not finite (a diverged run, a retrain never run)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return a - b


def per_target(comparisons: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target and arm: seed means and spreads; a speed-up over seeds is their
    median, "never reached" when the median falls on a seed that never reached."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in comparisons:
        groups[(c["target"], c["arm"])].append(c)
    rows = []
    for (target, arm), cs in groups.items():
        gain, gain_sd = mean_std([c["gain"] for c in cs])
        test, test_sd = mean_std([c["retrain_test_acc"] for c in cs])
        rgain, rgain_sd = mean_std([c["retrain_gain"] for c in cs])
        val, val_sd = mean_std([c["final_val_acc"] for c in cs])
        searched = [c for c in cs if c["reached"] is not None]
        rows.append({
            "target": target, "arm": arm, "seeds": len(cs), "sources": sorted({c["source"] for c in cs}),
            "distance": mean_std([c["distance"] for c in cs])[0],
            "final_val_acc": val, "final_val_acc_sd": val_sd, "gain": gain, "gain_sd": gain_sd,
            "retrain_test_acc": test, "retrain_test_acc_sd": test_sd, "retrain_gain": rgain,
            "retrain_gain_sd": rgain_sd,
            "speedup_epochs": median_or_never([c["speedup_epochs"] for c in searched]) if searched else None,
            "speedup_s": median_or_never([c["speedup_s"] for c in searched]) if searched else None,
            "reached": sum(bool(c["reached"]) for c in searched), "searched": bool(searched),
            "transfer": _sign(gain if searched else rgain) if arm not in NOT_TRANSFER else None,
            "entropy_first": mean_std([c["entropy_first"] for c in cs])[0],
            "entropy_last": mean_std([c["entropy_last"] for c in cs])[0],
        })
    return rows


def _sign(gain: float | None) -> str | None:
    if gain is None:
        return None
    return "positive" if gain > 0 else "negative" if gain < 0 else "none"


def per_arm(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Across targets: the spread of speed-ups (never reached kept apart), positive transfers."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["arm"]].append(r)
    out = []
    for arm, rs in groups.items():
        searched = [r for r in rs if r["searched"]]
        out.append({
            "arm": arm, "targets": len(rs),
            "speedup_epochs": spread([r["speedup_epochs"] for r in searched]) if searched else None,
            "speedup_s": spread([r["speedup_s"] for r in searched]) if searched else None,
            "positive": sum(r["transfer"] == "positive" for r in rs),
            "negative": sum(r["transfer"] == "negative" for r in rs),
            "tied": sum(r["transfer"] == "none" for r in rs),  # equal to scratch: neither positive nor negative
            "median_gain": median_or_never([r["gain"] for r in rs if r["gain"] is not None]),
            "median_retrain_gain": median_or_never([r["retrain_gain"] for r in rs if r["retrain_gain"] is not None]),
            "median_retrain_test_acc": median_or_never([r["retrain_test_acc"] for r in rs
                                                        if r["retrain_test_acc"] is not None]),
            "entropy_first": median_or_never([r["entropy_first"] for r in rs if r["entropy_first"] is not None]),
            "entropy_last": median_or_never([r["entropy_last"] for r in rs if r["entropy_last"] is not None]),
        })
    return out


def per_domain(rows: Sequence[dict[str, Any]], domains: dict[str, str]) -> list[dict[str, Any]]:
    """``per_arm`` within each domain of the targets (in the order the targets came): where the
    transfer holds and where it fails, since a domain's targets share their nearest sources."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["target"] in domains:
            groups[domains[r["target"]]].append(r)
    return [{"domain": d, "targets": list(dict.fromkeys(r["target"] for r in rs)), "per_arm": per_arm(rs)}
            for d, rs in groups.items()]


def distance_vs_gain(runs: Sequence[dict[str, Any]], scratch: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Every measured source/target pair (single-source arms and the race trials that ran all
    their epochs): OT distance against the gain in final val accuracy over scratch (same seed),
    averaged per pair; Spearman's rho < 0 means nearer sources gain more."""
    gains: dict[tuple[str, str], list[float]] = defaultdict(list)
    distance: dict[tuple[str, str], float] = {}
    for run in runs:
        base = scratch.get((run["target"], run["seed"]))
        s_acc = _curve(base) if base else []
        if not s_acc:
            continue
        measured = []
        if run["arm"] in SINGLE_SOURCE_ARMS and run.get("distance") is not None:
            acc = _curve(run)
            if acc:
                measured.append((run["source"], run["distance"], acc[-1]))
        for t in run.get("trials", []) if run["arm"] == "race" else []:
            if t.get("distance") is not None and t.get("curve") and t.get("finished"):
                measured.append((t["source"], t["distance"], t["curve"][-1]))
        for source, d, final in measured:
            gains[(run["target"], source)].append(final - s_acc[-1])
            distance[(run["target"], source)] = d
    pairs = [{"target": t, "source": s, "distance": distance[(t, s)], "gain": sum(g) / len(g), "runs": len(g)}
             for (t, s), g in sorted(gains.items())]
    return {"pairs": pairs, **spearman([p["distance"] for p in pairs], [p["gain"] for p in pairs])}


def late_gain(acc: Sequence[float]) -> float | None:
    """What the last quarter of the epochs (at least one) added: near zero once a curve has
    settled. One epoch's change alone can hide a curve still climbing behind a noisy dip."""
    if len(acc) < 2:
        return None
    k = max(1, len(acc) // 4)
    return acc[-1] - acc[-1 - k]


def scratch_convergence(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Did scratch converge within the budget? The gain of its last epoch and of its last
    quarter of epochs, and the epoch at which it first reached its final accuracy, per target
    (seed means)."""
    out: dict[str, Any] = {}
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["arm"] == "scratch":
            by_target[r["target"]].append(r)
    for target, rs in by_target.items():
        last_gain, late, reach = [], [], []
        for r in rs:
            acc = _curve(r)
            if len(acc) >= 2:
                last_gain.append(acc[-1] - acc[-2])
                late.append(late_gain(acc))
            if acc:
                reach.append(first_reach(acc, acc[-1]))
        out[target] = {"last_epoch_gain": mean_std(last_gain)[0], "late_gain": mean_std(late)[0],
                       "reaches_final_at": reach, "epochs": len(_curve(rs[0])) if rs else 0}
    return out


def settled_targets(convergence: dict[str, Any]) -> list[str]:
    """Targets on which scratch had settled: only there is its final accuracy a fair bar."""
    return [t for t, s in convergence.items() if s.get("late_gain") is not None and s["late_gain"] <= SETTLED]


def learnt_targets(runs: Sequence[dict[str, Any]], chance: dict[str, dict[str, int]]) -> list[str]:
    """Targets on which scratch's final val accuracy (seed mean) beats chance, 1 / classes, by a
    one-sided binomial test at p < CHANCE_P over the val images. On the others the preset learns
    nothing measurable, and which arm first reaches scratch's final accuracy is noise."""
    from scipy.stats import binomtest

    finals: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r["arm"] == "scratch" and _curve(r):
            finals[r["target"]].append(_curve(r)[-1])
    out = []
    for target, accs in finals.items():
        c = chance.get(target)
        if c is None or not c.get("val") or not c.get("classes"):
            out.append(target)  # nothing to test against: kept
            continue
        hits = round(sum(accs) / len(accs) * c["val"])
        if binomtest(hits, c["val"], 1 / c["classes"], alternative="greater").pvalue < CHANCE_P:
            out.append(target)
    return out


def goals(arms: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each searching arm against the paper's lower bound (median speed-up of at least 3x,
    positive transfer on at least 90% of targets, retrained test accuracy no worse than
    scratch's in median) and the stretch goal (a median of 5x)."""
    out = []
    for a in arms:
        if a["arm"] == "scratch" or not a["speedup_epochs"]:
            continue
        median, retrain = a["speedup_epochs"]["median"], a["median_retrain_gain"]
        share = a["positive"] / a["targets"] if a["targets"] else 0.0
        row = {"arm": a["arm"], "median_speedup": median,
               "speedup_met": median is not None and median >= GOAL_SPEEDUP,
               "stretch_met": median is not None and median >= STRETCH_SPEEDUP, "positive_share": share,
               "positive_met": share >= GOAL_POSITIVE, "median_retrain_gain": retrain,
               "retrain_met": retrain is not None and retrain >= 0}
        row["lower_bound_met"] = row["speedup_met"] and row["positive_met"] and row["retrain_met"]
        out.append(row)
    return out


def search_vs_random(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Does searching beat drawing genotypes at random? Per arm that searched (or derived) a
    genotype: its retrained test accuracy minus the random genotypes' mean on the same target,
    the median over targets and on how many it was higher; and the random genotypes' own spread
    (sd over samples, its median over targets): the noise any retrain difference sits in."""
    random_rows = {r["target"]: r for r in rows if r["arm"] == RANDOM_GENOTYPE}
    arms: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        base = random_rows.get(r["target"])
        diff = None if base is None or r["arm"] == RANDOM_GENOTYPE else difference(r["retrain_test_acc"],
                                                                                base["retrain_test_acc"])
        if diff is not None:
            arms[r["arm"]].append(diff)
    sds = [r["retrain_test_acc_sd"] for r in random_rows.values() if r.get("retrain_test_acc_sd") is not None]
    return {"targets": len(random_rows),
            "random_test_acc": median_or_never([r["retrain_test_acc"] for r in random_rows.values()
                                                if r["retrain_test_acc"] is not None]) if random_rows else None,
            "random_sd": median_or_never(sds) if sds else None,
            "arms": [{"arm": arm, "targets": len(d), "median_diff": median_or_never(d),
                      "higher": sum(x > 0 for x in d), "lower": sum(x < 0 for x in d)} for arm, d in arms.items()]}


def _paired_scratch(run: dict[str, Any], scratch: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any] | None:
    """Scratch's run on the same target and seed; a random genotype's sample k (there may be
    more samples than seeds) pairs with scratch's seed k mod the seeds."""
    if run["arm"] != RANDOM_GENOTYPE:
        return scratch.get((run["target"], run["seed"]))
    seeds = sorted(s for t, s in scratch if t == run["target"])
    return scratch[(run["target"], seeds[run["seed"] % len(seeds)])] if seeds else None


def analyse(runs: Sequence[dict[str, Any]], tolerance: float = 0.0,
            chance: dict[str, dict[str, int]] | None = None, domains: dict[str, str] | None = None
            ) -> dict[str, Any]:
    """Every answer for one protocol's runs; ``chance`` (per target: classes and val images)
    marks the targets scratch learnt nothing on; ``domains`` (per target) splits the answer by
    domain."""
    scratch = {(r["target"], r["seed"]): r for r in runs if r["arm"] == "scratch"}
    comparisons = [compare(r, base, tolerance) for r in runs if (base := _paired_scratch(r, scratch)) is not None]
    rows = per_target(comparisons)
    arms, convergence = per_arm(rows), scratch_convergence(runs)
    settled = settled_targets(convergence)
    learnt = learnt_targets(runs, chance or {})
    return {"comparisons": comparisons, "per_target": rows, "per_arm": arms, "goals": goals(arms),
            "search_vs_random": search_vs_random(rows),
            "learnt_targets": learnt, "per_arm_learnt": per_arm([r for r in rows if r["target"] in learnt]),
            "settled_targets": settled, "per_arm_settled": per_arm([r for r in rows if r["target"] in settled]),
            "per_domain": per_domain(rows, domains or {}),
            "distance_vs_gain": distance_vs_gain(runs, scratch), "scratch": convergence, "max_entropy": LN8}
