"""Deciding to transfer on evidence: do the linear probe and LogME predict what a warm start
gains, and does a threshold on them, fitted on some targets, tell transfer from scratch on
targets it never saw?

After the arms have run, every source an arm started from is scored on its target with both
scores of :mod:`raynas.transfer.probe` (the probe's val accuracy and LogME, on the same frozen
features), beside randomly initialised supernets (what scratch starts from). Then, per protocol:

- **choosing the source**: Spearman's rho of each score (and of OT distance) against the gain
  over scratch of every measured source/target pair, and how much each score's pick among a
  target's measured sources loses against the best of them;
- **the transfer-or-scratch gate**: the OT arm's source on each target, transferred when its
  score beats the random supernets' by at least a threshold. The threshold is fitted on the
  other folds of targets and applied to each held-out fold; the threshold fitted on all targets
  of the first protocol is also applied to the other protocols. Its worth is the mean gain it
  keeps (a target it sends to scratch gains 0), against always and never transferring.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

from raynas.bench.speedup import spearman
from raynas.storage import atomic_write_text

SCORES_FILE = "scores.json"
FOLDS = 5  # cross-validation folds of the gate's threshold, over targets
PROBE_MIN_CUT = 0.33  # the probe's gate as fitted in an earlier run (docs/results.md): applied as it is
MEASURED_ARMS = ("ot", "probe", "random", "farthest", "multi")  # one source per run, and its gain over scratch


def cut(kind: str, score: float, baseline: float) -> float:
    """How far a source's score is above the random supernets': the share of their probe error it
    removes (the probe), or the difference in evidence per image (LogME)."""
    if kind == "probe":
        from raynas.transfer.probe import error_cut

        return error_cut(score, baseline)
    return score - baseline


SCORE_KEYS = {"probe": "accuracy", "logme": "logme"}


def score_sources(runs: Sequence[dict[str, Any]], workspace: Any, out: Path, config: Any) -> dict[str, Any]:
    """``{target: {source: {"accuracy", "logme"}, "scratch": {...}}}`` for every source a measured
    arm started from; kept in ``out/scores.json`` so that a continued benchmark scores each once."""
    from raynas.search.loop import dataset_space
    from raynas.transfer.probe import probe_scratch, probe_zoo

    scores = _read_scores(out / SCORES_FILE)
    path = out / SCORES_FILE
    wanted: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        if run["arm"] in MEASURED_ARMS and run["source"] != "scratch":
            wanted[run["target"]].add(run["source"])
        for t in run.get("trials", []) if run["arm"] == "race" else []:
            wanted[run["target"]].add(t["source"])
    for target, sources in wanted.items():
        have = scores.setdefault(target, {})
        todo = sorted(s for s in sources if s not in have)
        if not todo and "scratch" in have:
            continue
        ds = workspace.store.open(target)
        entries = [workspace.zoo.manifest(s) for s in todo]
        for s in probe_zoo(ds, entries, workspace.zoo):
            have[s.source] = {"accuracy": s.accuracy, "logme": s.logme}
        if "scratch" not in have:
            search = config.search(target)
            info = workspace.store.info(target)
            space = dataset_space(search, info)
            base = probe_scratch(ds, space)
            have["scratch"] = {"accuracy": base.accuracy, "logme": base.logme}
        atomic_write_text(path, json.dumps(scores, indent=2))
    return scores


def _read_scores(path: Path) -> dict[str, Any]:
    """The scores a previous run of this benchmark kept; anything malformed is scored again."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}

    def valid(score: Any) -> bool:
        return isinstance(score, dict) and all(isinstance(score.get(k), (int, float)) for k in SCORE_KEYS.values())

    if not isinstance(data, dict):
        return {}
    return {target: {source: score for source, score in entries.items() if valid(score)}
            for target, entries in data.items() if isinstance(entries, dict)}


def _mean_gain(runs: Sequence[dict[str, Any]], scratch: dict[tuple[str, int], dict[str, Any]]
               ) -> dict[tuple[str, str, str], tuple[float, float | None]]:
    """(target, arm, source) -> (mean gain in final val accuracy over scratch of the same seed, distance)."""
    gains: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    distance: dict[tuple[str, str, str], float | None] = {}
    for run in runs:
        base = scratch.get((run["target"], run["seed"]))
        acc, s_acc = _final(run), _final(base) if base else None
        measured = []
        if run["arm"] in MEASURED_ARMS and run["source"] != "scratch" and acc is not None:
            measured.append((run["arm"], run["source"], run.get("distance"), acc))
        for t in run.get("trials", []) if run["arm"] == "race" else []:
            if t.get("curve") and t.get("finished"):
                measured.append(("race", t["source"], t.get("distance"), t["curve"][-1]))
        for arm, source, d, final in measured:
            if s_acc is not None:
                gains[(run["target"], arm, source)].append(final - s_acc)
                distance[(run["target"], arm, source)] = d
    return {k: (statistics.fmean(v), distance[k]) for k, v in gains.items()}


def _final(run: dict[str, Any] | None) -> float | None:
    acc = [h["val_acc"] for h in (run or {}).get("history", []) if h.get("val_acc") is not None]
    return float(acc[-1]) if acc and math.isfinite(acc[-1]) else None


def _pairs(runs: Sequence[dict[str, Any]], scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured source/target pair with its gain, OT distance and both scores' cuts."""
    scratch = {(r["target"], r["seed"]): r for r in runs if r["arm"] == "scratch"}
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for (target, arm, source), (gain, distance) in _mean_gain(runs, scratch).items():
        s, base = scores.get(target, {}).get(source), scores.get(target, {}).get("scratch")
        if s is None or base is None:
            continue
        row = by_pair.setdefault((target, source), {"target": target, "source": source, "distance": distance,
                                                    "gains": [], "arms": []})
        row["gains"].append(gain)
        row["arms"].append(arm)
        for kind, key in SCORE_KEYS.items():
            row[kind] = cut(kind, s[key], base[key]) if s.get(key) is not None else None
    out = []
    for row in by_pair.values():
        out.append({**row, "gain": statistics.fmean(row.pop("gains"))})
    return sorted(out, key=lambda r: (r["target"], r["source"]))


def choice_quality(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How well each score orders sources by gain: rho over all pairs, and per target the gain
    its pick among the measured sources gives up against the best of them (median over targets)."""
    out: dict[str, Any] = {"pairs": len(pairs)}
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        by_target[p["target"]].append(p)
    for kind, sign in (("distance", -1.0), ("probe", 1.0), ("logme", 1.0)):
        usable = [p for p in pairs if p.get(kind) is not None]
        rho = spearman([sign * p[kind] for p in usable], [p["gain"] for p in usable])
        regrets = []
        for rows in by_target.values():
            rows = [r for r in rows if r.get(kind) is not None]
            if len(rows) >= 2:
                pick = max(rows, key=lambda r: (sign * r[kind], r["source"]))
                regrets.append(max(r["gain"] for r in rows) - pick["gain"])
        out[kind] = {**rho, "targets": len(regrets),
                     "median_regret": statistics.median(regrets) if regrets else None}
    with_distance = [p for p in pairs if p.get("distance") is not None]
    if 0 < len(with_distance) < len(pairs):  # the scores compared with OT distance on the same pairs
        out["with_distance"] = choice_quality(with_distance)
    return out


def gate_cases(runs: Sequence[dict[str, Any]], scores: dict[str, Any]) -> list[dict[str, Any]]:
    """One case per target: the OT arm's source, its gain over scratch and both scores' cuts."""
    return [{"target": p["target"], "source": p["source"], "gain": p["gain"], "probe": p["probe"],
             "logme": p["logme"]} for p in _pairs([r for r in runs if r["arm"] in ("scratch", "ot")], scores)]


def fit_threshold(cases: Sequence[dict[str, Any]], kind: str) -> float | None:
    """The threshold on ``kind`` that keeps the most mean gain on ``cases`` (transfer when the cut
    is at least it); ties: the lowest. None when no case has the score."""
    values = sorted({c[kind] for c in cases if c.get(kind) is not None})
    if not values:
        return None
    candidates = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1.0]
    return max(candidates, key=lambda t: (kept_gain(cases, kind, t), -t))


def kept_gain(cases: Sequence[dict[str, Any]], kind: str, threshold: float) -> float:
    """Mean gain over ``cases`` when only those with a cut of at least ``threshold`` transfer."""
    if not cases:
        return 0.0
    return statistics.fmean(c["gain"] if c.get(kind) is not None and c[kind] >= threshold else 0.0 for c in cases)


def _decisions(cases, decide: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    right = sum(decide(c) == (c["gain"] > 0) for c in cases)
    return {"mean_gain": statistics.fmean(c["gain"] if decide(c) else 0.0 for c in cases) if cases else None,
            "transferred": sum(decide(c) for c in cases), "right": right, "targets": len(cases)}


def cross_validated_gate(cases: Sequence[dict[str, Any]], kind: str, folds: int = FOLDS) -> dict[str, Any]:
    """Each fold's targets decided by the threshold fitted on the other folds."""
    k = max(2, min(folds, len(cases)))
    decided, thresholds = [], []
    for i in range(k):
        held = [c for j, c in enumerate(cases) if j % k == i]
        threshold = fit_threshold([c for j, c in enumerate(cases) if j % k != i], kind)
        thresholds.append(threshold)
        decided += [(c, threshold is not None and c.get(kind) is not None and c[kind] >= threshold) for c in held]
    verdict = {c["target"]: d for c, d in decided}
    return {**_decisions([c for c, _ in decided], lambda c: verdict[c["target"]]), "thresholds": thresholds}


def gate_study(cases_by_protocol: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Always, never, the probe's fixed cut, and thresholds on the probe and on LogME fitted by
    cross-validation within each protocol and on the first protocol for the others."""
    out: dict[str, Any] = {}
    first = next(iter(cases_by_protocol), None)
    fitted = {kind: fit_threshold(cases_by_protocol.get(first, []), kind) for kind in SCORE_KEYS} if first else {}
    for protocol, cases in cases_by_protocol.items():
        if len(cases) < 2:
            out[protocol] = {"targets": len(cases)}
            continue
        row: dict[str, Any] = {"targets": len(cases), "always": _decisions(cases, lambda c: True),
                               "never": _decisions(cases, lambda c: False),
                               "probe_fixed": _decisions(cases, lambda c: c["probe"] is not None
                                                         and c["probe"] >= PROBE_MIN_CUT)}
        for kind in SCORE_KEYS:
            row[f"{kind}_cv"] = cross_validated_gate(cases, kind)
            if protocol != first and fitted.get(kind) is not None:
                t = fitted[kind]
                row[f"{kind}_from_{first}"] = {**_decisions(cases, lambda c, t=t, kind=kind: c.get(kind) is not None
                                                            and c[kind] >= t), "threshold": t}
        out[protocol] = row
    return out


def transferability(runs_by_protocol: dict[str, list[dict[str, Any]]], scores: dict[str, Any]) -> dict[str, Any]:
    """Per protocol, the choice quality of each score; and the gate study over protocols."""
    return {"choice": {p: choice_quality(_pairs(runs, scores)) for p, runs in runs_by_protocol.items()},
            "gate": gate_study({p: gate_cases(runs, scores) for p, runs in runs_by_protocol.items()})}
